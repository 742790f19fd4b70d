"""Grounded answers and document citations: what the emulated model does with sources.

Pure functions, so tests compute the exact text and citation they must receive.

Rules (the issue-13 contract; the inference service writes the sources):
- Sources: the text blocks of the last user turn that start "[S<n>] " (a
  source id in square brackets, one space, the passage text).
- Grounded answer: "According to [S1], <the first sentence of S1's text>",
  where S1 is the first source block; Pro adds " See also [S2]." when a
  second source block exists (naming its id). A sentence ends at the first
  ".", "!" or "?" followed by whitespace or the end of the text; a text
  without one is its own first sentence.
- Citation: the first document block of the last user turn with
  `"citations": {"enabled": true}` is cited once, by a contentBlockDelta
  right after the first text delta: its name as title, its first 40
  characters (bytes decoded as UTF-8) as sourceContent, and the character
  location 0 to 40 of document 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bedrock_emulator.content import source_bytes

CITED_CHARS = 40
_SOURCE = re.compile(r"\[(?P<id>S\d+)\] (?P<text>.*)", re.DOTALL)
_SENTENCE = re.compile(r".*?[.!?](?=\s|$)", re.DOTALL)


@dataclass(frozen=True)
class Source:
    source_id: str  # "S1"
    text: str


def sources(blocks: Sequence[Mapping[str, Any]]) -> list[Source]:
    """The source blocks of a user turn, in order."""
    found = []
    for block in blocks:
        text = block.get("text")
        match = _SOURCE.match(text) if isinstance(text, str) else None
        if match:
            found.append(Source(match.group("id"), match.group("text")))
    return found


def first_sentence(text: str) -> str:
    stripped = text.strip()
    match = _SENTENCE.match(stripped)
    return match.group(0) if match else stripped


def grounded_text(family: str, blocks: Sequence[Mapping[str, Any]]) -> str | None:
    """The grounded answer to a user turn holding sources, or None without them."""
    found = sources(blocks)
    if not found:
        return None
    text = f"According to [{found[0].source_id}], {first_sentence(found[0].text)}"
    if family == "pro" and len(found) > 1:
        text += f" See also [{found[1].source_id}]."
    return text


def citation(blocks: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The `citation` delta for the first document that asks to be cited, if any."""
    for block in blocks:
        document = block.get("document")
        if not isinstance(document, Mapping):
            continue
        config = document.get("citations")
        if not isinstance(config, Mapping) or config.get("enabled") is not True:
            continue
        return {
            "title": document.get("name"),
            "sourceContent": [{"text": _document_text(document.get("source"))[:CITED_CHARS]}],
            "location": {
                "documentChar": {"documentIndex": 0, "start": 0, "end": CITED_CHARS},
            },
        }
    return None


def _document_text(source: Any) -> str:
    data = source_bytes(source)
    if data is not None:
        return data.decode("utf-8", errors="replace")
    if isinstance(source, Mapping) and isinstance(source.get("text"), str):
        return str(source["text"])
    return ""
