"""One Knowledge Base retrieval, for Retrieve and for a grounded Chat: call, time, trace, map.

The Retrieve call is one CLIENT span named "retrieval {knowledge base id}",
after the OpenTelemetry GenAI conventions' retrieval span:
gen_ai.operation.name "retrieval", gen_ai.provider.name "aws.bedrock",
gen_ai.data_source.id the knowledge base, gen_ai.request.top_k the number of
results asked for, and at the end aws.request_id, dualnova.retrieval.passages
(how many came back) or error.type. Its log line ("retrieve finished") says the
same, with the latency; the query and the passages' text go into neither
(they are the caller's content). A failure is mapped here, at the one
boundary, with the Knowledge Base meanings of Bedrock's codes
(statuses.map_retrieve_error), and raised as RetrieveFailed.
"""

from __future__ import annotations

import logging
import time

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from dualnova.chat.v1 import chat_pb2
from dualnova.server.telemetry import INSTRUMENTATION_NAME, ROUTE_ATTRIBUTE
from inference_service.bedrock import (
    KnowledgeBases,
    MappedError,
    Retrieved,
    RetrieveQuery,
    map_retrieve_error,
)
from inference_service.grounding import retrieval_of

__all__ = ["OPERATION", "RetrieveFailed", "Retriever"]

logger = logging.getLogger(__name__)

OPERATION = "retrieval"
_PROVIDER = "aws.bedrock"


class RetrieveFailed(Exception):
    """Retrieve failed; `mapped` is the status the caller gets."""

    def __init__(self, mapped: MappedError) -> None:
        super().__init__(mapped.message)
        self.mapped = mapped


class Retriever:
    """Runs Retrieve through the service's bedrock-agent-runtime transport."""

    def __init__(self, knowledge_bases: KnowledgeBases) -> None:
        self._knowledge_bases = knowledge_bases
        self._tracer = trace.get_tracer(INSTRUMENTATION_NAME)

    async def retrieve(self, query: RetrieveQuery, route: str) -> chat_pb2.Retrieval:
        """The passages as a Retrieval; RetrieveFailed when Bedrock refused or failed."""
        started = time.monotonic()
        attributes: dict[str, str | int] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.provider.name": _PROVIDER,
            "gen_ai.data_source.id": query.knowledge_base_id,
            "gen_ai.request.top_k": query.number_of_results,
            ROUTE_ATTRIBUTE: route,
        }
        with self._tracer.start_as_current_span(
            f"{OPERATION} {query.knowledge_base_id}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                retrieved = await self._knowledge_bases.retrieve(query)
            except Exception as exc:  # the one boundary: Bedrock's failure becomes a status
                mapped = map_retrieve_error(exc)
                span.set_attribute("error.type", mapped.cause)
                span.set_status(Status(StatusCode.ERROR, mapped.cause))
                _log(query, route, started, mapped.code.name, mapped.cause)
                if mapped.code.name == "INTERNAL":
                    logger.error("unexpected failure of a Retrieve call", exc_info=exc)
                raise RetrieveFailed(mapped) from exc
            if retrieved.request_id:
                span.set_attribute("aws.request_id", retrieved.request_id)
            span.set_attribute("dualnova.retrieval.passages", len(retrieved.passages))
        latency_ms = (time.monotonic() - started) * 1000.0
        _log(query, route, started, "OK", None, retrieved)
        return retrieval_of(query, retrieved, latency_ms)


def _log(
    query: RetrieveQuery,
    route: str,
    started: float,
    status: str,
    error: str | None,
    retrieved: Retrieved | None = None,
) -> None:
    found = "" if retrieved is None else f", {len(retrieved.passages)} passages"
    logger.log(
        logging.INFO if status == "OK" else logging.WARNING,
        f"retrieve finished ({query.knowledge_base_id}{found})",
        extra={
            "request_id": retrieved.request_id or None if retrieved is not None else None,
            "route": route,
            "status": status,
            "error": error,
            "latency_ms": round((time.monotonic() - started) * 1000.0, 3),
        },
    )
