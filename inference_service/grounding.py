"""Grounding an answer in Knowledge Base passages: the Retrieval a caller sees, and the turn
Bedrock reads.

Retrieve's results become a chat.v1 Retrieval: passages most relevant first,
each named by its rank ("S1" is the highest score), its location and metadata
kept. The passages go into the conversation's last user turn, BEFORE its own
content, as text blocks (Nova Micro reads text only, so never documents):

    [S1] <passage text>
    [S2] <passage text>
    Answer from the sources above and cite them as [S1], [S2].
    <the turn's own text and blocks>

A Retrieval with no passages leaves the conversation as it was: there is
nothing to cite, and an instruction to cite nothing would only confuse the
model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from dualnova.chat.v1 import chat_pb2
from inference_service.bedrock import USER, Retrieved, RetrieveQuery

__all__ = [
    "DEFAULT_RESULTS",
    "INSTRUCTION",
    "SEARCH_TYPES",
    "grounded",
    "passage_block",
    "retrieval_of",
    "retrieve_query",
]

# Passages a grounding asks for when number_of_results is 0.
DEFAULT_RESULTS = 5
INSTRUCTION = "Answer from the sources above and cite them as [S1], [S2]."
SEARCH_TYPES = {
    chat_pb2.SEARCH_TYPE_HYBRID: "HYBRID",
    chat_pb2.SEARCH_TYPE_SEMANTIC: "SEMANTIC",
}

Turn = tuple[str, str | Sequence[dict[str, Any]]]


def retrieve_query(
    grounding: chat_pb2.Grounding, knowledge_base_id: str, text: str
) -> RetrieveQuery:
    """A validated grounding as Retrieve's terms; `knowledge_base_id` is resolved already."""
    return RetrieveQuery(
        knowledge_base_id=knowledge_base_id,
        text=text,
        number_of_results=grounding.number_of_results or DEFAULT_RESULTS,
        search_type=SEARCH_TYPES.get(grounding.search_type),
        filter=json.loads(grounding.filter_json) if grounding.filter_json else None,
    )


def retrieval_of(
    query: RetrieveQuery, retrieved: Retrieved, latency_ms: float
) -> chat_pb2.Retrieval:
    """Retrieve's answer as the Retrieval event: passages ranked, source ids S1, S2, ..."""
    # Bedrock ranks most relevant first; a stable sort keeps its order among equal scores.
    ranked = sorted(retrieved.passages, key=lambda passage: -passage.score)
    return chat_pb2.Retrieval(
        knowledge_base_id=query.knowledge_base_id,
        query=query.text,
        latency_ms=round(latency_ms, 3),
        passages=[
            chat_pb2.Passage(
                text=passage.text,
                score=passage.score,
                source_id=f"S{rank}",
                location_uri=passage.location_uri,
                location_type=passage.location_type,
                metadata_json=json.dumps(
                    dict(passage.metadata), separators=(",", ":"), ensure_ascii=False
                ),
            )
            for rank, passage in enumerate(ranked, start=1)
        ],
    )


def passage_block(passage: chat_pb2.Passage) -> dict[str, str]:
    """One passage as the text block Bedrock reads: "[S1] <text>"."""
    return {"text": f"[{passage.source_id}] {passage.text}"}


def grounded(messages: Sequence[Turn], retrieval: chat_pb2.Retrieval) -> tuple[Turn, ...]:
    """The conversation with the passages and the instruction before the last user turn's own
    content."""
    turns = tuple(messages)
    if not retrieval.passages:
        return turns
    last = max(index for index, (role, _content) in enumerate(turns) if role == USER)
    role, content = turns[last]
    own = [{"text": content}] if isinstance(content, str) else list(content)
    blocks: list[dict[str, Any]] = [passage_block(passage) for passage in retrieval.passages]
    blocks.append({"text": INSTRUCTION})
    blocks.extend(own)
    return (*turns[:last], (role, blocks), *turns[last + 1 :])
