"""What each Chat call tells OpenTelemetry (and the CloudWatch publisher): GenAI spans and metrics.

The Bedrock call is one CLIENT span named "chat {model id}", following the
OpenTelemetry GenAI semantic conventions: gen_ai.operation.name "chat",
gen_ai.provider.name "aws.bedrock", the request's model and parameters, and at
the end Bedrock's request id, finish reason, token usage (as Bedrock reported
it: input_tokens excludes cached tokens, which have their own attributes) and
time to first chunk. It is a child of the Chat server span, so it sits under
the gateway's route span in the caller's trace.

Metrics, all with gen_ai.request.model and dualnova.route attributes:
gen_ai.client.token.usage (histogram, gen_ai.token.type input/output),
gen_ai.client.operation.duration (s, error.type when it failed),
gen_ai.client.operation.time_to_first_chunk (s), and
dualnova.inference.requests (count by rpc.response.status_code, including
requests refused before Bedrock).

No prompt or answer text goes into spans or metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from dualnova.routes import ROUTES
from dualnova.telemetry import INSTRUMENTATION_NAME, ROUTE_ATTRIBUTE, ROUTE_METADATA_KEY
from inference_service.bedrock import Conversation, Started, Stopped, TextDelta, UsageReport

__all__ = [
    "DIRECT_ROUTE",
    "OTHER_ROUTE",
    "BedrockCall",
    "ChatTelemetry",
    "UsageSink",
    "call_route",
]

OPERATION = "chat"
PROVIDER = "aws.bedrock"
# A Chat call that did not come through the gateway (no route metadata).
DIRECT_ROUTE = "direct"
# A route name this service does not know; kept out of metrics so callers cannot add series.
OTHER_ROUTE = "other"
_KNOWN_ROUTES = frozenset(ROUTES)

# Bucket boundaries the GenAI conventions advise.
_TOKEN_BUCKETS = [4**i for i in range(14)]  # 1 .. 67,108,864
_SECONDS_BUCKETS = [0.01 * 2**i for i in range(14)]  # 0.01 .. 81.92


def call_route(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The DualChat route a call serves, from the gateway's x-dualnova-route metadata."""
    for key, value in metadata or ():
        if key == ROUTE_METADATA_KEY:
            return value if isinstance(value, str) and value in _KNOWN_ROUTES else OTHER_ROUTE
    return DIRECT_ROUTE


class UsageSink(Protocol):
    """Something else that wants each call's token usage (the CloudWatch publisher)."""

    def record(self, model_id: str, route: str, usage: UsageReport) -> None: ...


@dataclass
class BedrockCall:
    """One Bedrock call as it streams; chat.py shows it every event and any failure."""

    span: trace.Span
    model_id: str
    route: str
    started: float = field(default_factory=time.monotonic)
    request_id: str = ""
    first_chunk_s: float | None = None
    usage: UsageReport | None = None
    stop_reason: str | None = None
    error_type: str | None = None

    def observe(self, event: object) -> None:
        if isinstance(event, TextDelta):
            if self.first_chunk_s is None:
                self.first_chunk_s = time.monotonic() - self.started
                self.span.add_event("gen_ai.first_token")
        elif isinstance(event, Started):
            self.request_id = event.request_id
        elif isinstance(event, UsageReport):
            self.usage = event
        elif isinstance(event, Stopped):
            self.stop_reason = event.stop_reason

    def failed(self, error_type: str) -> None:
        """The call ended in error; `error_type` is Bedrock's error code or the exception class."""
        self.error_type = error_type


class ChatTelemetry:
    """Spans and instruments for Chat calls; one per server, over the global providers."""

    def __init__(self, usage_sink: UsageSink | None = None) -> None:
        self._sink = usage_sink
        self._tracer = trace.get_tracer(INSTRUMENTATION_NAME)
        meter = metrics.get_meter(INSTRUMENTATION_NAME)
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens per Bedrock call, as Bedrock reported them.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Bedrock ConverseStream calls, from the request to the stream's end.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="From the Bedrock request to the first text delta.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._requests = meter.create_counter(
            "dualnova.inference.requests",
            unit="{request}",
            description="Chat calls by final gRPC status.",
        )

    @contextlib.contextmanager
    def bedrock_call(self, conversation: Conversation, route: str) -> Iterator[BedrockCall]:
        """The span around one ConverseStream (current inside the block); records at the end."""
        attributes: dict[str, str | int | float | list[str]] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": conversation.model_id,
            ROUTE_ATTRIBUTE: route,
        }
        if conversation.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = conversation.max_tokens
        if conversation.temperature is not None:
            attributes["gen_ai.request.temperature"] = conversation.temperature
        if conversation.top_p is not None:
            attributes["gen_ai.request.top_p"] = conversation.top_p
        if conversation.stop_sequences:
            attributes["gen_ai.request.stop_sequences"] = list(conversation.stop_sequences)
        with self._tracer.start_as_current_span(
            f"{OPERATION} {conversation.model_id}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            call = BedrockCall(span, conversation.model_id, route)
            try:
                yield call
            except asyncio.CancelledError:
                if call.error_type is None:
                    call.failed("cancelled")
                raise
            finally:
                self._finish(call)

    def count_request(self, model_id: str, route: str, status: str) -> None:
        """One finished Chat call; `model_id` is a resolved id or "_OTHER", never caller text."""
        self._requests.add(
            1,
            {
                "gen_ai.request.model": model_id,
                ROUTE_ATTRIBUTE: route,
                "rpc.response.status_code": status,
            },
        )

    def _finish(self, call: BedrockCall) -> None:
        span = call.span
        if call.request_id:
            span.set_attribute("aws.request_id", call.request_id)
        if call.stop_reason is not None:
            span.set_attribute("gen_ai.response.finish_reasons", [call.stop_reason])
        if call.first_chunk_s is not None:
            span.set_attribute("gen_ai.response.time_to_first_chunk", call.first_chunk_s)
        usage = call.usage
        if usage is not None:
            span.set_attributes(
                {
                    "gen_ai.usage.input_tokens": usage.input_tokens,
                    "gen_ai.usage.output_tokens": usage.output_tokens,
                    "gen_ai.usage.cache_read.input_tokens": usage.cache_read_input_tokens,
                    "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_input_tokens,
                }
            )
        if call.error_type is not None:
            span.set_attribute("error.type", call.error_type)
            span.set_status(Status(StatusCode.ERROR, call.error_type))

        common = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": call.model_id,
            ROUTE_ATTRIBUTE: call.route,
        }
        ended = {**common, "error.type": call.error_type} if call.error_type else common
        self._duration.record(time.monotonic() - call.started, ended)
        if call.first_chunk_s is not None:
            self._first_chunk.record(call.first_chunk_s, common)
        if usage is not None:
            self._tokens.record(usage.input_tokens, {**common, "gen_ai.token.type": "input"})
            self._tokens.record(usage.output_tokens, {**common, "gen_ai.token.type": "output"})
            if self._sink is not None:
                self._sink.record(call.model_id, call.route, usage)
