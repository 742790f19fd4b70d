"""bedrock-agent-runtime Retrieve and bedrock-agent GetKnowledgeBase, on the emulator's port.

Both run like the control plane (control_plane.answer): credentials, then
faults (a rule naming the operation), then the answer. Retrieve then checks
its body in this order: knowledgeBaseId's shape, the body, retrievalQuery,
retrievalConfiguration (numberOfResults 1 to 100, default 5;
overrideSearchType HYBRID or SEMANTIC, logged but scored alike; the
filter), then that the knowledge base exists and is ACTIVE.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bedrock_emulator import knowledge_base, retrieval
from bedrock_emulator.auth import Caller
from bedrock_emulator.control_plane import answer
from bedrock_emulator.errors import constraint, validation
from bedrock_emulator.retrieval_filter import Predicate, compile_filter
from bedrock_emulator.validation import parse_body

DEFAULT_RESULTS = 5
MAX_RESULTS = 100
SEARCH_TYPES = ("HYBRID", "SEMANTIC")
_VECTOR = "retrievalConfiguration.vectorSearchConfiguration"


async def get_knowledge_base(request: web.Request) -> web.StreamResponse:
    """GET /knowledgebases/{knowledgeBaseId}."""
    identifier = request.match_info["knowledge_base_id"]

    def describe(caller: Caller) -> Any:
        return {"knowledgeBase": knowledge_base.find(identifier).describe(caller.region)}

    return await answer(request, "GetKnowledgeBase", identifier, (identifier,), describe)


async def retrieve(request: web.Request) -> web.StreamResponse:
    """POST /knowledgebases/{knowledgeBaseId}/retrieve."""
    identifier = request.match_info["knowledge_base_id"]
    raw = await request.read()

    def describe(caller: Caller) -> Any:
        kb_id = knowledge_base.from_arn(identifier)
        knowledge_base.check_id(kb_id)
        body = parse_body(raw)
        query = _query(body)
        count, keep = _configuration(body)
        kb = knowledge_base.find(kb_id)
        if kb.status != "ACTIVE":
            raise knowledge_base.not_active(kb)
        found = [
            s for s in retrieval.rank(knowledge_base.corpus(), query) if keep(s.passage.metadata)
        ]
        return {"retrievalResults": [_result(scored) for scored in found[:count]]}

    return await answer(request, "Retrieve", identifier, (identifier,), describe, raw=raw)


def _query(body: Mapping[str, Any]) -> str:
    query = body.get("retrievalQuery")
    if not isinstance(query, Mapping) or not isinstance(query.get("text"), str):
        raise validation(
            "1 validation error detected: Value null at 'retrievalQuery.text' failed to satisfy "
            "constraint: Member must not be null"
        )
    text: str = query["text"]
    if len(text) > 20000:
        raise constraint(
            "retrievalQuery.text",
            text[:40] + "...",
            "Member must have length less than or equal to 20000",
        )
    return text


def _configuration(body: Mapping[str, Any]) -> tuple[int, Predicate]:
    """How many results, and which passages the filter keeps."""
    config = body.get("retrievalConfiguration") or {}
    vector = config.get("vectorSearchConfiguration") if isinstance(config, Mapping) else None
    if vector is None:
        return DEFAULT_RESULTS, _everything
    if not isinstance(vector, Mapping):
        raise validation(f"{_VECTOR} must be an object.")
    count = vector.get("numberOfResults", DEFAULT_RESULTS)
    if isinstance(count, bool) or not isinstance(count, int):
        raise validation(f"{_VECTOR}.numberOfResults must be an integer.")
    if count < 1:
        raise constraint(
            f"{_VECTOR}.numberOfResults", count, "Member must have value greater than or equal to 1"
        )
    if count > MAX_RESULTS:
        raise constraint(
            f"{_VECTOR}.numberOfResults", count, "Member must have value less than or equal to 100"
        )
    search_type = vector.get("overrideSearchType")
    if search_type is not None and search_type not in SEARCH_TYPES:
        raise constraint(
            f"{_VECTOR}.overrideSearchType",
            search_type,
            f"Member must satisfy enum value set: [{', '.join(SEARCH_TYPES)}]",
        )
    spec = vector.get("filter")
    keep = _everything if spec is None else compile_filter(spec, f"{_VECTOR}.filter")
    return count, keep


def _everything(metadata: Mapping[str, Any]) -> bool:
    return True


def _result(scored: retrieval.Scored) -> dict[str, Any]:
    passage = scored.passage
    return {
        "content": {"text": passage.text, "type": "TEXT"},
        "location": {
            "type": "S3",
            "s3Location": {"uri": knowledge_base.source_uri(passage.id)},
        },
        "score": scored.score,
        "metadata": dict(passage.metadata),
    }
