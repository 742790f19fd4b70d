"""One DualChat is one trace: caller -> gateway -> both routes -> inference service -> Bedrock.

Both services export over OTLP/gRPC (configured only by OTEL_* variables) to
a collector the test runs, so what is checked is what Jaeger or Tempo would
receive: span names and kinds, parent links across both process hops, and
the GenAI attributes of each Bedrock call, whose token counts must equal what
the emulator billed and what the caller was told.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from gateway_client import ROUTE_DEFAULTS, ask, dual_chat, route_converse_request
from startup import assert_refused_to_start
from telemetry_support import (
    FAST_EXPORT,
    MICRO,
    PRO,
    OtlpCollector,
    Pair,
    Span,
    closed_port,
    log_lines,
    running_pair,
    silent_listener,
)

from bedrock_emulator.answers import compose_answer
from dualnova.dev.stack import EmulatorHandle

GATEWAY_SPAN = "dualnova.gateway.v1.Gateway/DualChat"
INFERENCE_SPAN = "dualnova.inference.v1.InferenceService/Chat"
MODELS = {"micro": MICRO, "pro": PRO}
QUESTION = "트레이스 하나에 몇 개의 스팬이 있나요?"


def one(spans: list[Span], **where: object) -> Span:
    found = [s for s in spans if all(getattr(s, key) == value for key, value in where.items())]
    assert len(found) == 1, f"expected one span with {where}, got {found}"
    return found[0]


def stream_log(emulator: EmulatorHandle) -> dict[str, dict]:
    return {e["model_id"]: e for e in emulator.requests() if e["operation"] == "ConverseStream"}


def test_one_dual_chat_is_one_trace_of_seven_spans_with_bedrocks_usage(
    exporting_pair: Pair, collector: OtlpCollector, emulator: EmulatorHandle
) -> None:
    result = dual_chat(exporting_pair.gateway.address, ask(QUESTION))
    trace_id = result.summary.trace_id
    assert result.trace_header == trace_id
    spans = collector.wait_for_trace(trace_id, 7)
    assert len(spans) == 7, [s.name for s in spans]
    billed = stream_log(emulator)

    root = one(spans, name=GATEWAY_SPAN)
    assert (root.service, root.kind, root.parent_span_id) == ("gateway", "SERVER", "")
    assert root.attributes["rpc.response.status_code"] == "OK"

    for route, model in MODELS.items():
        received = result.routes[route]
        route_span = route_span_of(spans, route)
        assert route_span.parent_span_id == root.span_id
        assert route_span.name == f"route {route}"

        server = one(spans, name=INFERENCE_SPAN, parent_span_id=route_span.span_id)
        assert (server.service, server.kind) == ("inference_service", "SERVER")

        bedrock = one(spans, name=f"chat {model}")
        assert (bedrock.service, bedrock.kind) == ("inference_service", "CLIENT")
        assert bedrock.parent_span_id == server.span_id
        attributes = bedrock.attributes
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == "aws.bedrock"
        assert attributes["gen_ai.request.model"] == model
        assert attributes["dualnova.route"] == route
        defaults = ROUTE_DEFAULTS[route]
        assert attributes["gen_ai.request.max_tokens"] == defaults["maxTokens"]
        assert attributes["gen_ai.request.temperature"] == pytest.approx(defaults["temperature"])
        assert attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
        assert attributes["aws.request_id"] == received.start.request_id == billed[model]["id"]
        usage = billed[model]["usage"]
        assert attributes["gen_ai.usage.input_tokens"] == usage["inputTokens"]
        assert attributes["gen_ai.usage.output_tokens"] == usage["outputTokens"]
        assert attributes["gen_ai.usage.input_tokens"] == received.usage.input_tokens
        assert attributes["gen_ai.usage.output_tokens"] == received.usage.output_tokens
        assert attributes["gen_ai.usage.cache_read.input_tokens"] == 0
        assert 0 < attributes["gen_ai.response.time_to_first_chunk"]
        assert "gen_ai.first_token" in bedrock.events
        assert bedrock.status == "UNSET" and "error.type" not in attributes


def route_span_of(spans: list[Span], route: str) -> Span:
    """The gateway's CLIENT span for `route`: the upstream Chat call that route made."""
    found = [
        s
        for s in spans
        if (s.service, s.kind) == ("gateway", "CLIENT")
        and s.attributes.get("dualnova.route") == route
    ]
    assert len(found) == 1, f"expected one gateway span for route {route}, got {found}"
    return found[0]


def test_a_callers_traceparent_is_continued_and_its_id_returned(
    exporting_pair: Pair, collector: OtlpCollector
) -> None:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    result = dual_chat(
        exporting_pair.gateway.address,
        ask("Is my trace continued?"),
        metadata=(("traceparent", f"00-{trace_id}-{parent_id}-01"),),
    )
    assert result.summary.trace_id == trace_id
    assert result.trace_header == trace_id
    spans = collector.wait_for_trace(trace_id, 7)
    root = one(spans, name=GATEWAY_SPAN)
    assert root.parent_span_id == parent_id
    assert {s.service for s in spans} == {"gateway", "inference_service"}


def test_an_unsampled_callers_trace_id_still_comes_back(exporting_pair: Pair) -> None:
    trace_id = secrets.token_hex(16)
    result = dual_chat(
        exporting_pair.gateway.address,
        ask("Not sampled"),
        metadata=(("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-00"),),
    )
    assert result.summary.trace_id == result.trace_header == trace_id


def test_a_failed_bedrock_call_is_an_error_span_under_its_route(
    exporting_pair: Pair, collector: OtlpCollector, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="throttling", model=PRO)
    result = dual_chat(exporting_pair.gateway.address, ask("Throttle pro"))
    assert result.routes["pro"].error.code == "RESOURCE_EXHAUSTED"
    spans = collector.wait_for_trace(result.summary.trace_id, 7)

    bedrock = one(spans, name=f"chat {PRO}")
    assert bedrock.status == "ERROR"
    assert bedrock.attributes["error.type"] == "ThrottlingException"
    assert "gen_ai.usage.input_tokens" not in bedrock.attributes
    server = one(spans, span_id=bedrock.parent_span_id)
    # RESOURCE_EXHAUSTED is the caller's to handle: a server span stays unset, a client span fails.
    assert server.attributes["rpc.response.status_code"] == "RESOURCE_EXHAUSTED"
    route_span = route_span_of(spans, "pro")
    assert server.parent_span_id == route_span.span_id
    assert route_span.status == "ERROR"
    assert route_span.attributes["rpc.response.status_code"] == "RESOURCE_EXHAUSTED"

    micro = one(spans, name=f"chat {MICRO}")
    assert micro.status == "UNSET" and micro.attributes["gen_ai.usage.output_tokens"] > 0


def test_log_lines_carry_the_trace_and_span_ids(
    exporting_pair: Pair, collector: OtlpCollector
) -> None:
    result = dual_chat(exporting_pair.gateway.address, ask("Find my logs"))
    trace_id = result.summary.trace_id
    spans = collector.wait_for_trace(trace_id, 7)
    servers = {s.span_id for s in spans if s.name == INFERENCE_SPAN}

    finished = [
        line
        for line in log_lines(exporting_pair.log_dir / "inference_service.log")
        if line.get("message") == "chat finished" and line.get("trace_id") == trace_id
    ]
    assert len(finished) == 2
    assert {line["span_id"] for line in finished} == servers
    assert {line["route"] for line in finished} == {"micro", "pro"}
    assert {line["model"] for line in finished} == {MICRO, PRO}
    assert all(line["input_tokens"] > 0 and line["status"] == "OK" for line in finished)
    gateway_lines = [
        line
        for line in log_lines(exporting_pair.log_dir / "gateway.log")
        if line.get("trace_id") == trace_id
    ]
    assert any(line["message"] == "dual chat finished" for line in gateway_lines)


def test_an_unreachable_collector_neither_fails_nor_holds_up_chats(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The gateway's collector refuses connections; the inference service's accepts and never
    # answers. A 30 s export timeout means a chat that waited for an export would miss its
    # 10 s deadline, and a process that waited at exit would be killed rather than exit 0.
    with silent_listener() as hung_port:
        hung = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{hung_port}",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "30",
            **FAST_EXPORT,
        }
        refused = {
            **hung,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
        }
        with running_pair(
            emulator,
            tmp_path_factory.mktemp("unreachable"),
            inference_env=hung,
            gateway_env=refused,
        ) as started:
            for question in (
                "First, while the exporters start",
                "Second, with spans queued",
            ):
                result = dual_chat(started.gateway.address, ask(question), timeout=10)
                for route, model in MODELS.items():
                    assert result.routes[route].error is None
                    assert (
                        result.routes[route].text
                        == compose_answer(model, route_converse_request(route, question)).text
                    )
    assert started.exit_codes == {"gateway": 0, "inference_service": 0}


@pytest.mark.parametrize(
    ("variable", "value"),
    [("OTEL_TRACES_EXPORTER", "zipkin"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
)
def test_an_otel_setting_this_service_cannot_honour_stops_it_at_start(
    variable: str, value: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway"],
        env={
            **os.environ,
            variable: value,
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
        },
        capture_output=True,
        text=True,
        timeout=20,
    )
    line = assert_refused_to_start(result, "gateway")
    assert line.startswith(f"gateway: configuration error: {variable}={value!r}: expected")
