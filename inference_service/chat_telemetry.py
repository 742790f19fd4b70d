"""What each Chat call tells its log line, OpenTelemetry and the CloudWatch publisher.

One ChatCall per call observes it, on one clock started when the call
begins: the request id, the first token, the usage, the stop reason, the
outcome. Its log line, its span, its metrics and the caller's Stop event are
all written from those same readings, so they cannot disagree (the time to
first token in the log, on the span, in the metric and in Stop is one number).

The Bedrock call is one CLIENT span named "chat {model id}", following the
OpenTelemetry GenAI semantic conventions: gen_ai.operation.name "chat",
gen_ai.provider.name "aws.bedrock", the model and parameters of the request
as sent to Bedrock (0.3, not the proto's float32 0.30000001192092896), and at
the end Bedrock's request id, finish reason, token usage (as Bedrock reported
it: input_tokens excludes cached tokens, which have their own attributes) and
time to first chunk. It is a child of the Chat server span, so it sits under
the gateway's route span in the caller's trace. Nova's top-k becomes
gen_ai.request.top_k and a guardrail's id aws.bedrock.guardrail.id (the
conventions' AWS Bedrock attributes). Each tool call the model makes is a
span event "gen_ai.tool.call" (gen_ai.tool.name, gen_ai.tool.call.id,
gen_ai.tool.type "function"; never its input), and a guardrail's verdicts are
"gen_ai.guardrail.result" events as the conventions' guardrail events name
them: one per assessment in Bedrock's trace that reports an action (source
INPUT or OUTPUT, result type "action" and Bedrock's value, the policy and
rule; guardrail_events.py reads them off the trace), and one for a stop
reason of guardrail_intervened. Matched words and PII are never copied from
the trace; requestMetadata is never read here.

Metrics, all with gen_ai.request.model and dualnova.route attributes:
gen_ai.client.token.usage (histogram, gen_ai.token.type input/output),
gen_ai.client.operation.duration (s, error.type when it failed),
gen_ai.client.operation.time_to_first_chunk (s),
dualnova.inference.cost (histogram, {USD}: each call's estimated cost, its
token counts times the model's price in DUALNOVA_PRICES_FILE or the built-in
table of dualnova.pricing; no point for a model without a price; also the
span's dualnova.cost.usd), and dualnova.inference.requests (count by
rpc.response.status_code, including requests refused before Bedrock).

The log line ("chat finished") carries the same ids, tokens, status and
times; the prompt and the answer only with DUALNOVA_LOG_CONTENT. No prompt or
answer text goes into spans or metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from dualnova.chat.v1 import chat_pb2
from dualnova.pricing import DEFAULT_PRICES, PriceTable, estimate
from dualnova.routes import ROUTES
from dualnova.server.telemetry import INSTRUMENTATION_NAME, ROUTE_ATTRIBUTE, ROUTE_METADATA_KEY
from inference_service.bedrock import (
    FailureKind,
    GuardrailTraced,
    MappedError,
    Started,
    Stopped,
    TextDelta,
    ToolUseStarted,
    UsageReport,
)
from inference_service.guardrail_events import (
    GUARDRAIL_COMPONENT,
    GUARDRAIL_EVENT,
    GUARDRAIL_INTERVENED,
    guardrail_results,
)
from inference_service.validation import quoted_name

__all__ = [
    "DIRECT_ROUTE",
    "OTHER_ROUTE",
    "ChatCall",
    "ChatTelemetry",
    "UsageSink",
    "call_route",
]

# The log line keeps the servicer's logger name, which log filters already select on.
logger = logging.getLogger("inference_service.chat")

OPERATION = "chat"
# The metric attribute for a model name that was not accepted: caller text never becomes a series.
OTHER_MODEL = "_OTHER"
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

    def record(
        self, model_id: str, route: str, usage: UsageReport, cost_usd: float | None = None
    ) -> None: ...


class ChatCall:
    """One Chat call as it happens, on one clock: what its log line, span and metrics say.

    chat.py shows it every event and the outcome; it opens the Bedrock span
    (bedrock()), and finish() writes the log line and counts the request.
    """

    def __init__(
        self,
        telemetry: ChatTelemetry,
        model: str,
        route: str,
        prompt: list[dict[str, str]] | None = None,
    ) -> None:
        self._telemetry = telemetry
        self.started = time.monotonic()
        # The model as the caller named it, then the id it resolved to.
        self.model = model
        self.route = route
        self.status = "OK"
        # For the log line: the validation error naming the field, or the failure's cause.
        self.error: str | None = None
        # For the span and the metrics: Bedrock's error code, the exception class, "cancelled".
        self.error_type: str | None = None
        self.failure_kind: FailureKind | None = None
        self.request_id = ""
        self.first_token_at: float | None = None
        self.usage: UsageReport | None = None
        self.stop_reason: str | None = None
        # Only with DUALNOVA_LOG_CONTENT: the prompt given, and the answer as it streams.
        self.prompt = prompt
        self.answer: str | None = None if prompt is None else ""
        # The guardrail's (identifier, version) when the request applied one.
        self._guardrail: tuple[str, str] | None = None
        self._span: trace.Span | None = None

    def ms_since_start(self, moment: float) -> float:
        return round((moment - self.started) * 1000.0, 3)

    def time_to_first_token_ms(self) -> float | None:
        return None if self.first_token_at is None else self.ms_since_start(self.first_token_at)

    @contextlib.contextmanager
    def bedrock(self, request: Mapping[str, Any]) -> Iterator[None]:
        """The span around one ConverseStream (current inside); `request` is what was sent."""
        guardrail = request.get("guardrailConfig")
        if guardrail is not None:
            self._guardrail = (
                str(guardrail.get("guardrailIdentifier", "")),
                str(guardrail.get("guardrailVersion", "")),
            )
        with self._telemetry.bedrock_span(request, self.route) as span:
            self._span = span
            try:
                yield
            except asyncio.CancelledError:
                if self.error_type is None:
                    self.error_type = "cancelled"
                raise
            finally:
                self._span = None
                self._telemetry.bedrock_call_ended(self, str(request["modelId"]), span)

    def observe(self, event: object) -> None:
        """One event of Bedrock's stream, about to be sent to the caller."""
        if isinstance(event, TextDelta):
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
                if self._span is not None:
                    self._span.add_event("gen_ai.first_token")
            if self.answer is not None:
                self.answer += event.text
        elif isinstance(event, Started):
            self.request_id = event.request_id
        elif isinstance(event, ToolUseStarted):
            if self._span is not None:
                self._span.add_event(
                    "gen_ai.tool.call",
                    {
                        "gen_ai.tool.name": event.name,
                        "gen_ai.tool.call.id": event.tool_use_id,
                        "gen_ai.tool.type": "function",
                    },
                )
        elif isinstance(event, GuardrailTraced):
            if self._span is not None:
                for attributes in guardrail_results(json.loads(event.trace_json)):
                    self._span.add_event(
                        GUARDRAIL_EVENT, {**self._guardrail_policy(), **attributes}
                    )
        elif isinstance(event, UsageReport):
            self.usage = event
        elif isinstance(event, Stopped):
            self.stop_reason = event.stop_reason
            if event.stop_reason == GUARDRAIL_INTERVENED:
                if self._span is not None:
                    self._span.add_event(
                        GUARDRAIL_EVENT,
                        {
                            **self._guardrail_policy(),
                            "gen_ai.guardrail.result.type": "stopReason",
                            "gen_ai.guardrail.result.value": GUARDRAIL_INTERVENED,
                        },
                    )

    def _guardrail_policy(self) -> dict[str, str]:
        """The attributes every guardrail result event of this call carries."""
        attributes = {
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.guardrail.component.name": GUARDRAIL_COMPONENT,
        }
        if self._guardrail is not None:
            attributes["gen_ai.guardrail.policy.id"] = self._guardrail[0]
            attributes["gen_ai.guardrail.policy.version"] = self._guardrail[1]
        return attributes

    def refused(self, status: str, error: str | None = None) -> None:
        """The call ends with `status` (a gRPC status name); `error` says why, for the log."""
        self.status = status
        if error is not None:
            self.error = error

    def failed(self, mapped: MappedError) -> None:
        """Bedrock's stream failed; `mapped` is the status the caller gets (refused() follows)."""
        self.error_type = mapped.cause
        self.failure_kind = mapped.failure.kind

    def interrupted(self) -> None:
        """The RPC ended by cancellation or teardown rather than by a status of ours."""
        if self.status == "OK":
            self.status = "CANCELLED"

    def finish(self, metric_model: str) -> None:
        """The log line and the request count; `metric_model` is a resolved id or "_OTHER"."""
        if metric_model == OTHER_MODEL:
            # A name that was not accepted is the caller's text, of any length: cut it short.
            self.model = quoted_name(self.model)
        self._log()
        self._telemetry.count_request(metric_model, self.route, self.status)

    def _log(self) -> None:
        usage = self.usage
        logger.log(
            self._level(),
            "chat finished",
            extra={
                "request_id": self.request_id or None,
                "model": self.model,
                "route": self.route or None,
                "status": self.status,
                "error": self.error,
                "input_tokens": usage.input_tokens if usage else None,
                "output_tokens": usage.output_tokens if usage else None,
                "total_tokens": usage.total_tokens if usage else None,
                "latency_ms": self.ms_since_start(time.monotonic()),
                "time_to_first_token_ms": self.time_to_first_token_ms(),
                "prompt": self.prompt,
                "answer": self.answer,
            },
        )

    def _level(self) -> int:
        # Refused credentials are this service's misconfiguration: an operator must act.
        if self.status == "INTERNAL" or self.failure_kind is FailureKind.CREDENTIALS:
            return logging.ERROR
        return logging.INFO if self.status in ("OK", "CANCELLED") else logging.WARNING


class ChatTelemetry:
    """Spans and instruments for Chat calls; one per server, over the global providers."""

    def __init__(
        self, usage_sink: UsageSink | None = None, prices: PriceTable = DEFAULT_PRICES
    ) -> None:
        self._sink = usage_sink
        self._prices = prices
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
            description="Bedrock ConverseStream calls, from the Chat call's start to the end.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="From the Chat call's start to Bedrock's first text delta.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._cost = meter.create_histogram(
            "dualnova.inference.cost",
            unit="{USD}",
            description="Estimated US dollars per Bedrock call: its tokens times the configured"
            " prices (an estimate, not the bill).",
        )
        self._requests = meter.create_counter(
            "dualnova.inference.requests",
            unit="{request}",
            description="Chat calls by final gRPC status.",
        )

    def call(self, model: str, route: str, prompt: list[dict[str, str]] | None = None) -> ChatCall:
        """The observer of one Chat call, its clock started now."""
        return ChatCall(self, model, route, prompt)

    @contextlib.contextmanager
    def bedrock_span(self, request: Mapping[str, Any], route: str) -> Iterator[trace.Span]:
        """The CLIENT span of one ConverseStream, its request attributes read off `request`."""
        model_id = str(request["modelId"])
        attributes: dict[str, str | int | float | list[str]] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": model_id,
            ROUTE_ATTRIBUTE: route,
        }
        inference = request.get("inferenceConfig", {})
        for field_name, attribute in _REQUEST_ATTRIBUTES.items():
            value = inference.get(field_name)
            if value is not None:
                attributes[attribute] = list(value) if isinstance(value, list) else value
        top_k = request.get("additionalModelRequestFields", {}).get("inferenceConfig", {})
        if "topK" in top_k:
            attributes["gen_ai.request.top_k"] = top_k["topK"]
        guardrail = request.get("guardrailConfig")
        if guardrail is not None:
            attributes["aws.bedrock.guardrail.id"] = str(guardrail.get("guardrailIdentifier", ""))
        with self._tracer.start_as_current_span(
            f"{OPERATION} {model_id}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span

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

    def bedrock_call_ended(self, call: ChatCall, model_id: str, span: trace.Span) -> None:
        """What the call observed, onto its span and into the metrics."""
        if call.request_id:
            span.set_attribute("aws.request_id", call.request_id)
        if call.stop_reason is not None:
            span.set_attribute("gen_ai.response.finish_reasons", [call.stop_reason])
        first_chunk_s = None
        if call.first_token_at is not None:
            first_chunk_s = call.first_token_at - call.started
            span.set_attribute("gen_ai.response.time_to_first_chunk", first_chunk_s)
        usage = call.usage
        cost = None if usage is None else self.cost_usd(model_id, usage)
        if cost is not None:
            span.set_attribute("dualnova.cost.usd", cost)
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
            "gen_ai.request.model": model_id,
            ROUTE_ATTRIBUTE: call.route,
        }
        ended = {**common, "error.type": call.error_type} if call.error_type else common
        self._duration.record(time.monotonic() - call.started, ended)
        if first_chunk_s is not None:
            self._first_chunk.record(first_chunk_s, common)
        if usage is not None:
            self._tokens.record(usage.input_tokens, {**common, "gen_ai.token.type": "input"})
            self._tokens.record(usage.output_tokens, {**common, "gen_ai.token.type": "output"})
            if cost is not None:
                self._cost.record(cost, common)
            if self._sink is not None:
                self._sink.record(model_id, call.route, usage, cost)

    def cost_usd(self, model_id: str, usage: UsageReport) -> float | None:
        """The call's estimated total in US dollars; None for a model without a price."""
        cost = estimate(
            self._prices,
            model_id,
            chat_pb2.Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                total_tokens=usage.total_tokens,
                cache_read_input_tokens=usage.cache_read_input_tokens,
                cache_write_input_tokens=usage.cache_write_input_tokens,
            ),
        )
        return None if cost is None else cost.total_usd


# ConverseStream's inferenceConfig fields -> the GenAI request attributes they become.
_REQUEST_ATTRIBUTES = {
    "maxTokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "topP": "gen_ai.request.top_p",
    "stopSequences": "gen_ai.request.stop_sequences",
}
