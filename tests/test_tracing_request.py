"""The Bedrock span describes the request Bedrock received, and its times are the call's own.

The span's request attributes are read off the ConverseStream request as
sent, so they are compared here, exactly, with the body the emulator logged:
0.3 on the wire must be 0.3 on the span, not the proto's float32
0.30000001192092896. The span's time to first chunk comes from the same
reading as the caller's Stop event.
"""

from __future__ import annotations

import secrets

import grpc
import pytest
from gateway_client import ROUTE_DEFAULTS, ask, dual_chat
from telemetry_support import MICRO, PRO, OtlpCollector, Pair, Span

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc

MODELS = {"micro": MICRO, "pro": PRO}


def bedrock_span(spans: list[Span], model: str) -> Span:
    found = [s for s in spans if s.name == f"chat {model}" and s.kind == "CLIENT"]
    assert len(found) == 1, found
    return found[0]


def sent_body(emulator: EmulatorHandle, request_id: str) -> dict:
    """The ConverseStream body the emulator received for the call with this request id."""
    (entry,) = [e for e in emulator.requests() if e["id"] == request_id]
    return entry["body"]


def test_a_dual_chats_spans_carry_the_parameters_bedrock_received(
    exporting_pair: Pair, collector: OtlpCollector, emulator: EmulatorHandle
) -> None:
    result = dual_chat(exporting_pair.gateway.address, ask("Which temperature did you get?"))
    spans = collector.wait_for_trace(result.summary.trace_id, 7)
    for route, model in MODELS.items():
        received = result.routes[route]
        attributes = bedrock_span(spans, model).attributes
        config = sent_body(emulator, received.start.request_id)["inferenceConfig"]
        assert config["temperature"] == ROUTE_DEFAULTS[route]["temperature"]
        assert attributes["gen_ai.request.temperature"] == config["temperature"]
        assert attributes["gen_ai.request.max_tokens"] == config["maxTokens"]
        # One clock: the span's time to first chunk is the caller's Stop reading.
        assert attributes["gen_ai.response.time_to_first_chunk"] * 1000 == pytest.approx(
            received.stop.time_to_first_token_ms, abs=0.001
        )


def test_a_callers_own_parameters_reach_the_span_as_bedrock_received_them(
    exporting_pair: Pair, collector: OtlpCollector, emulator: EmulatorHandle
) -> None:
    trace_id = secrets.token_hex(16)
    request = inference_pb2.ChatRequest(
        model="micro",
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, text="Answer warmly")],
        inference_config=chat_pb2.InferenceConfig(
            max_tokens=64, temperature=0.7, top_p=0.9, stop_sequences=["never there"]
        ),
    )
    with grpc.insecure_channel(exporting_pair.inference.address) as channel:
        events = list(
            inference_pb2_grpc.InferenceServiceStub(channel).Chat(
                request,
                timeout=30,
                metadata=(("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"),),
            )
        )
    request_id = events[0].start.request_id
    config = sent_body(emulator, request_id)["inferenceConfig"]
    attributes = bedrock_span(collector.wait_for_trace(trace_id, 2), MICRO).attributes
    assert (config["temperature"], config["topP"]) == (0.7, 0.9)
    assert attributes["gen_ai.request.temperature"] == config["temperature"]
    assert attributes["gen_ai.request.top_p"] == config["topP"]
    assert attributes["gen_ai.request.max_tokens"] == config["maxTokens"] == 64
    assert list(attributes["gen_ai.request.stop_sequences"]) == config["stopSequences"]
    assert attributes["dualnova.route"] == "direct"
