"""Knowledge Base Retrieve: the one place that calls bedrock-agent-runtime.

A RetrieveQuery goes out as Retrieve's rest-json request (POST
/knowledgebases/{id}/retrieve) through the same signed aiohttp transport
ConverseStream uses (transport.py), with the same retries before an answer:
throttling, 5xx and connection failures, up to the configured attempts. A
failure is raised as botocore's exception for statuses.map_retrieve_error().
Retrieve is billed per query, so health never calls it (probes.py asks the
control plane's GetKnowledgeBase instead).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.utils import percent_encode

from inference_service.bedrock.session import call_transport
from inference_service.bedrock.transport import AwsTransport, read_body
from inference_service.config import Settings

if TYPE_CHECKING:
    import boto3

__all__ = [
    "KnowledgeBases",
    "RetrieveQuery",
    "Retrieved",
    "RetrievedPassage",
    "build_knowledge_bases",
    "retrieve_body",
]

_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@dataclass(frozen=True)
class RetrieveQuery:
    """One Retrieve call, in Bedrock's terms."""

    knowledge_base_id: str
    text: str
    number_of_results: int
    # overrideSearchType: "HYBRID" or "SEMANTIC"; None leaves it to the knowledge base.
    search_type: str | None = None
    # A RetrievalFilter, as Bedrock's JSON.
    filter: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RetrievedPassage:
    """One of Retrieve's retrievalResults."""

    text: str
    score: float
    location_type: str = ""
    location_uri: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Retrieved:
    """Retrieve's answer: the passages as Bedrock ranked them, and its request id."""

    passages: tuple[RetrievedPassage, ...]
    request_id: str = ""


def retrieve_body(query: RetrieveQuery) -> dict[str, Any]:
    """Retrieve's JSON body; no key for an option the caller left unset."""
    search: dict[str, Any] = {"numberOfResults": query.number_of_results}
    if query.search_type is not None:
        search["overrideSearchType"] = query.search_type
    if query.filter is not None:
        search["filter"] = dict(query.filter)
    return {
        "retrievalQuery": {"text": query.text},
        "retrievalConfiguration": {"vectorSearchConfiguration": search},
    }


class KnowledgeBases:
    """The bedrock-agent-runtime transport; retrieve() is one Retrieve call."""

    def __init__(self, transport: AwsTransport) -> None:
        self.transport = transport

    async def retrieve(self, query: RetrieveQuery) -> Retrieved:
        """The passages; raises botocore's exceptions when Bedrock refuses or cannot be reached."""
        response = await self.transport.send(
            "POST",
            f"/knowledgebases/{percent_encode(query.knowledge_base_id)}/retrieve",
            operation="Retrieve",
            body=json.dumps(retrieve_body(query)).encode(),
            headers=_HEADERS,
        )
        try:
            payload = await read_body(response, self.transport.endpoint.url)
        finally:
            response.release()
        answer = json.loads(payload) if payload else {}
        return Retrieved(
            tuple(_passage(result) for result in answer.get("retrievalResults", [])),
            response.headers.get("x-amzn-RequestId", ""),
        )

    async def aclose(self) -> None:
        await self.transport.aclose()


def _passage(result: Mapping[str, Any]) -> RetrievedPassage:
    location = result.get("location") or {}
    return RetrievedPassage(
        text=str((result.get("content") or {}).get("text", "")),
        score=float(result.get("score") or 0.0),
        location_type=str(location.get("type", "")),
        location_uri=_location_uri(location),
        metadata=result.get("metadata") or {},
    )


def _location_uri(location: Mapping[str, Any]) -> str:
    """The URI of whichever location Retrieve gave (s3Location.uri, webLocation.url, ...)."""
    for key, value in location.items():
        if key.endswith("Location") and isinstance(value, Mapping):
            for name in ("uri", "url", "id"):
                if value.get(name):
                    return str(value[name])
    return ""


def build_knowledge_bases(settings: Settings, session: boto3.session.Session) -> KnowledgeBases:
    """The Retrieve transport, built once at start with Chat's timeouts and attempts.

    Its endpoint comes from AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME (or the region's).
    """
    transport = call_transport(settings, session, "bedrock-agent-runtime")
    return KnowledgeBases(transport)
