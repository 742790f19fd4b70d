"""What the gateway tells OpenTelemetry: the caller's trace id, and one span per route.

The DualChat server span comes from dualnova.server.rpc_tracing (it continues the
caller's traceparent); its trace id is what the caller sees in x-trace-id and
in the summary. Each route's upstream Chat is a CLIENT span "route micro" /
"route pro" under it, whose context travels to the inference service as
traceparent together with the route name (x-dualnova-route), so the
inference service's spans and metrics hang under, and are labelled by, the
right route. Each route call is also counted, by route and final status, in
dualnova.gateway.route.calls. When the caller presented a token, its name
(never the token) is on the route spans and the count (dualnova.caller) and
goes upstream as x-dualnova-caller, for the inference service's log line.

A route span also says, in the GenAI conventions' words and as the
inference service's Bedrock span does, what the route's answer did: each tool
call is a "gen_ai.tool.call" event (gen_ai.tool.name, gen_ai.tool.call.id,
gen_ai.tool.type "function"; never its input), the route's guardrail is
aws.bedrock.guardrail.id, an intervention is one "gen_ai.guardrail.result"
event, and the stop reason is gen_ai.response.finish_reasons. So a trace
viewer shows which route called which tool or was stopped by a guardrail
without opening the inference service's spans.

A route span carries its answer's estimated cost (dualnova.cost.usd), and a
route the caller stopped (DualChatSession) ends with dualnova.route.stopped
"stopped by caller" and status code CANCELLED, but not as an error: nothing
failed. A grounded DualChat's one Retrieve is a CLIENT span "retrieve" of its
own, before the route spans, with the knowledge base and how many passages came back.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable, Iterator

import grpc
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind

from dualnova.chat.v1 import chat_pb2
from dualnova.gateway.v1 import gateway_pb2
from dualnova.server.callers import CALLER_ATTRIBUTE, CALLER_METADATA_KEY, current_caller
from dualnova.server.rpc_tracing import outgoing_metadata, record_status
from dualnova.server.telemetry import (
    INSTRUMENTATION_NAME,
    ROUTE_ATTRIBUTE,
    ROUTE_METADATA_KEY,
    format_trace_id,
)

__all__ = [
    "COST_ATTRIBUTE",
    "STOPPED_ATTRIBUTE",
    "TRACE_ID_METADATA_KEY",
    "RetrieveCall",
    "RouteCall",
    "current_trace_id",
    "retrieve_call",
    "route_call",
]

# Initial response metadata key carrying the trace id, before any event.
TRACE_ID_METADATA_KEY = "x-trace-id"
_UPSTREAM_METHOD = "dualnova.inference.v1.InferenceService/Chat"
_RETRIEVE_METHOD = "dualnova.inference.v1.InferenceService/Retrieve"
# A route's estimated cost in US dollars (dualnova.pricing), and why a route ended early.
COST_ATTRIBUTE = "dualnova.cost.usd"
STOPPED_ATTRIBUTE = "dualnova.route.stopped"

# The GenAI conventions' names, as inference_service.chat_telemetry writes them.
TOOL_CALL_EVENT = "gen_ai.tool.call"
GUARDRAIL_EVENT = "gen_ai.guardrail.result"
GUARDRAIL_INTERVENED = "guardrail_intervened"
_GUARDRAIL_COMPONENT = "Amazon Bedrock Guardrails"
_PROVIDER = "aws.bedrock"

_tracer = trace.get_tracer(INSTRUMENTATION_NAME)
_route_calls = metrics.get_meter(INSTRUMENTATION_NAME).create_counter(
    "dualnova.gateway.route.calls",
    unit="{call}",
    description="Upstream Chat calls per DualChat route, by final gRPC status.",
)


def current_trace_id() -> str:
    """The current span's trace id: the caller's when it sent a traceparent, sampled or not.

    Only a gateway embedded without telemetry.setup() (no SDK tracer
    provider, so no span ids are made) gets a random W3C id instead, so
    callers always have something to quote.
    """
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        return format_trace_id(context.trace_id)
    return format_trace_id(secrets.randbits(128) or 1)


class RouteCall:
    """One route's upstream call: the metadata to send, what its answer did, how it ended."""

    def __init__(
        self, span: trace.Span, route: str, guardrail: chat_pb2.GuardrailConfig | None = None
    ) -> None:
        self._span = span
        self._route = route
        self._guardrail = guardrail
        self._intervened = False

    def observe(self, event: gateway_pb2.DualChatResponse) -> None:
        """Note a relayed event that is not text (deltas are not worth a look each)."""
        kind = event.WhichOneof("event")
        if kind == "tool_use_start":
            start = event.tool_use_start
            self._span.add_event(
                TOOL_CALL_EVENT,
                {
                    "gen_ai.tool.name": start.name,
                    "gen_ai.tool.call.id": start.tool_use_id,
                    "gen_ai.tool.type": "function",
                },
            )
        elif kind == "guardrail_trace":
            if event.guardrail_trace.intervened:
                # Bedrock's own word for a guardrail that acted (its GuardrailEvent action).
                self._guardrail_result("action", "INTERVENED")
        elif kind == "stop":
            reason = event.stop.stop_reason
            self._span.set_attribute("gen_ai.response.finish_reasons", (reason,))
            if reason == GUARDRAIL_INTERVENED:
                self._guardrail_result("stopReason", reason)

    def _guardrail_result(self, result_type: str, value: str) -> None:
        """One intervention event per route, from the trace or (without a trace) the stop."""
        if self._intervened:
            return
        self._intervened = True
        attributes = {
            "gen_ai.provider.name": _PROVIDER,
            "gen_ai.guardrail.component.name": _GUARDRAIL_COMPONENT,
            "gen_ai.guardrail.result.type": result_type,
            "gen_ai.guardrail.result.value": value,
        }
        if self._guardrail is not None:
            attributes["gen_ai.guardrail.policy.id"] = self._guardrail.identifier
            attributes["gen_ai.guardrail.policy.version"] = self._guardrail.version
        self._span.add_event(GUARDRAIL_EVENT, attributes)

    def metadata(self, extra: Iterable[tuple[str, str]] = ()) -> tuple[tuple[str, str], ...]:
        """`extra`, this span's traceparent, the route and caller names, for the upstream call."""
        return _upstream_metadata((*extra, (ROUTE_METADATA_KEY, self._route)))

    def cost(self, cost: chat_pb2.Cost) -> None:
        """The route's estimated cost, from its usage and model."""
        self._span.set_attribute(COST_ATTRIBUTE, cost.total_usd)

    def ended(self, code: grpc.StatusCode) -> None:
        record_status(self._span, code, server=False)
        self._count(code)

    def stopped(self, reason: str) -> None:
        """The caller stopped the route: CANCELLED, said why, and not an error."""
        self._span.set_attribute("rpc.response.status_code", grpc.StatusCode.CANCELLED.name)
        self._span.set_attribute(STOPPED_ATTRIBUTE, reason)
        self._count(grpc.StatusCode.CANCELLED)

    def _count(self, code: grpc.StatusCode) -> None:
        attributes = {ROUTE_ATTRIBUTE: self._route, "rpc.response.status_code": code.name}
        caller = current_caller()
        if caller is not None:
            attributes[CALLER_ATTRIBUTE] = caller
        _route_calls.add(1, attributes)


class RetrieveCall:
    """The one Retrieve of a grounded DualChat: its metadata, what came back, how it ended."""

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def metadata(self, extra: Iterable[tuple[str, str]] = ()) -> tuple[tuple[str, str], ...]:
        """`extra`, this span's traceparent and the caller's name, for the upstream call."""
        return _upstream_metadata(extra)

    def retrieved(self, retrieval: chat_pb2.Retrieval) -> None:
        self._span.set_attribute("aws.bedrock.knowledge_base.id", retrieval.knowledge_base_id)
        self._span.set_attribute("dualnova.retrieval.passages", len(retrieval.passages))

    def ended(self, code: grpc.StatusCode) -> None:
        record_status(self._span, code, server=False)


def _upstream_metadata(extra: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    caller = current_caller()
    named = () if caller is None else ((CALLER_METADATA_KEY, caller),)
    return outgoing_metadata((*extra, *named))


@contextlib.contextmanager
def route_call(
    route: str, target: str, guardrail: chat_pb2.GuardrailConfig | None = None
) -> Iterator[RouteCall]:
    """The CLIENT span of `route`'s call to the inference service at `target` (current inside).

    `guardrail` is the guardrail config the route's request applies, if any.
    """
    attributes = {
        ROUTE_ATTRIBUTE: route,
        "rpc.system.name": "grpc",
        "rpc.method": _UPSTREAM_METHOD,
        "server.address": target,
    }
    if guardrail is not None:
        attributes["aws.bedrock.guardrail.id"] = guardrail.identifier
    caller = current_caller()
    if caller is not None:
        attributes[CALLER_ATTRIBUTE] = caller
    with _tracer.start_as_current_span(
        f"route {route}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield RouteCall(span, route, guardrail)


@contextlib.contextmanager
def retrieve_call(target: str, knowledge_base_id: str) -> Iterator[RetrieveCall]:
    """The CLIENT span of a grounded DualChat's Retrieve at `target` (current inside).

    `knowledge_base_id` as the request names it (empty: the inference service's default).
    """
    attributes = {
        "rpc.system.name": "grpc",
        "rpc.method": _RETRIEVE_METHOD,
        "server.address": target,
    }
    if knowledge_base_id:
        attributes["aws.bedrock.knowledge_base.id"] = knowledge_base_id
    caller = current_caller()
    if caller is not None:
        attributes[CALLER_ATTRIBUTE] = caller
    with _tracer.start_as_current_span(
        "retrieve",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield RetrieveCall(span)
