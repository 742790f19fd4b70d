"""The words the views use for grounding and cost: the retrieved passages, a citation, a price.

Shared by the live and plain views (dualnova.cli.render) so both say the
same: one header line for the Retrieve, then one line per passage (its
source id, score, location and a short excerpt), a citation as one line of
its route, and an estimated cost as `$0.000123`.
"""

from __future__ import annotations

from dualnova.chat.v1 import chat_pb2

__all__ = ["EXCERPT_CHARS", "citation_line", "cost_cell", "passage_line", "retrieval_header"]

# How much of a passage the views show: enough to recognise it, not the whole text.
EXCERPT_CHARS = 72


def retrieval_header(retrieval: chat_pb2.Retrieval) -> str:
    """`sources from KBDUALNOVA: 3 passages (12 ms)`; `no passages` when Retrieve found none."""
    count = len(retrieval.passages)
    found = "no passages" if count == 0 else f"{count} passage{'' if count == 1 else 's'}"
    kb = retrieval.knowledge_base_id or "the default knowledge base"
    return f"sources from {kb}: {found} ({retrieval.latency_ms:.0f} ms)"


def passage_line(passage: chat_pb2.Passage) -> str:
    """`[S1] 3.141593 s3://dualnova-kb/x.md "Amazon Nova Micro is ..."`."""
    location = passage.location_uri or passage.location_type or "-"
    return f'[{passage.source_id}] {passage.score:.6f} {location} "{_excerpt(passage.text)}"'


def citation_line(citation: chat_pb2.Citation) -> str:
    """`cites report.pdf: "the first words ..."`: what the model said it drew on."""
    title = citation.title or "a source"
    quoted = f': "{_excerpt(citation.source_text)}"' if citation.source_text else ""
    return f"cites {title}{quoted}"


def cost_cell(cost: chat_pb2.Cost | None) -> str:
    """An estimated cost in US dollars, to the millionth: `$0.000123`; `-` when none."""
    return "-" if cost is None else f"${cost.total_usd:.6f}"


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) <= EXCERPT_CHARS:
        return flat
    return flat[: EXCERPT_CHARS - 3].rstrip() + "..."
