"""DualChat through the real processes: gateway -> inference service -> boto3 -> emulator.

The expected text and usage come from the emulator's own answer function, so
these tests fail on any change to what reaches the caller: a lost, reordered
or re-encoded delta, an estimated token count, a wrong total.
"""

from __future__ import annotations

import re
from typing import Any

import grpc
import pytest
from gateway_client import dual_chat, route_converse_request, user
from usage_shape import usage_dict

from bedrock_emulator.answers import compose_answer
from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc

MICRO = "amazon.nova-micro-v1:0"
PRO = "amazon.nova-pro-v1:0"
QUESTION = "서울에서 부산까지 KTX로 얼마나 걸리나요? 🚄"


def stream_entries(emulator: EmulatorHandle) -> dict[str, dict[str, Any]]:
    """The emulator's ConverseStream log entries keyed by model id."""
    entries = [e for e in emulator.requests() if e["operation"] == "ConverseStream"]
    by_model = {e["model_id"]: e for e in entries}
    assert len(by_model) == len(entries), f"more than one stream per model: {entries}"
    return by_model


def test_dual_chat_streams_both_answers_exactly(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = dual_chat(gateway.address, gateway_pb2.DualChatRequest(messages=[user(QUESTION)]))
    log = stream_entries(emulator)

    for route, model in (("micro", MICRO), ("pro", PRO)):
        got = result.routes[route]
        expected = compose_answer(model, route_converse_request(route, QUESTION))
        assert got.error is None
        assert got.events[0] == "start" and got.events[-2:] == ["usage", "stop"]
        assert got.start.model_id == model
        assert got.start.request_id == log[model]["id"]
        assert got.text == expected.text  # Korean and the emoji, byte for byte
        assert "🚀" in got.text and "질문" in got.text
        assert usage_dict(got.usage) == expected.usage() == log[model]["usage"]
        assert got.stop.stop_reason == "end_turn"
        assert 0 < got.stop.time_to_first_token_ms <= got.stop.latency_ms
        assert log[model]["completed"] and not log[model]["disconnected"]

    assert len(result.routes["pro"].text) > len(result.routes["micro"].text)
    summary = result.summary
    assert set(summary.usage_by_route) == {"micro", "pro"}
    for route in ("micro", "pro"):
        assert summary.usage_by_route[route] == result.routes[route].usage
    for name in ("input_tokens", "output_tokens", "total_tokens"):
        assert getattr(summary.total, name) == sum(
            getattr(summary.usage_by_route[r], name) for r in ("micro", "pro")
        )
    assert re.fullmatch(r"[0-9a-f]{32}", summary.trace_id) and summary.trace_id != "0" * 32
    assert result.trace_header == summary.trace_id


@pytest.mark.parametrize(
    "ordering", [gateway_pb2.ORDERING_INTERLEAVED, gateway_pb2.ORDERING_MICRO_FIRST]
)
def test_each_ordering_delivers_both_answers_whole(
    gateway: ServiceHandle, emulator: EmulatorHandle, ordering: int
) -> None:
    # The orderings themselves are pinned down in test_gateway_fanout.py with hooks that
    # hold a route back; here the real processes carry the choice and both answers arrive.
    question = "Which ordering suits a chat window?"
    result = dual_chat(
        gateway.address, gateway_pb2.DualChatRequest(messages=[user(question)], ordering=ordering)
    )

    for route, model in (("micro", MICRO), ("pro", PRO)):
        got = result.routes[route]
        assert got.error is None
        assert got.events[0] == "start" and got.events[-2:] == ["usage", "stop"]
        assert got.text == compose_answer(model, route_converse_request(route, question)).text
    if ordering == gateway_pb2.ORDERING_MICRO_FIRST:
        # Both routes start at once upstream, so Pro's start is held back, not merely late.
        micro_stop = result.order.index(("micro", "stop"))
        first_pro = next(i for i, (route, _) in enumerate(result.order) if route == "pro")
        assert first_pro > micro_stop, result.order


def test_per_route_overrides_reach_bedrock(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    request = gateway_pb2.DualChatRequest(
        messages=[user("Explain gRPC deadlines")],
        system=["You are concise."],
        inference_config=chat_pb2.InferenceConfig(top_p=0.9),
        micro=gateway_pb2.RouteOverride(
            system=["한국어로 답하세요."],
            inference_config=chat_pb2.InferenceConfig(max_tokens=12, temperature=0.1),
        ),
        pro=gateway_pb2.RouteOverride(
            system=["Answer in English."],
            inference_config=chat_pb2.InferenceConfig(stop_sequences=["셋째"]),
        ),
    )
    result = dual_chat(gateway.address, request)
    log = stream_entries(emulator)

    micro_body = log[MICRO]["body"]
    assert micro_body["system"] == [{"text": "한국어로 답하세요."}]
    assert micro_body["inferenceConfig"]["maxTokens"] == 12
    assert micro_body["inferenceConfig"]["temperature"] == pytest.approx(0.1)
    assert micro_body["inferenceConfig"]["topP"] == pytest.approx(0.9)
    assert result.routes["micro"].stop.stop_reason == "max_tokens"
    assert result.routes["micro"].usage.output_tokens == 12

    pro_body = log[PRO]["body"]
    assert pro_body["system"] == [{"text": "Answer in English."}]
    assert pro_body["inferenceConfig"]["maxTokens"] == 2048
    assert pro_body["inferenceConfig"]["temperature"] == pytest.approx(0.5)
    assert pro_body["inferenceConfig"]["stopSequences"] == ["셋째"]
    assert result.routes["pro"].stop.stop_reason == "stop_sequence"
    assert "셋째" not in result.routes["pro"].text
    assert result.routes["pro"].text == compose_answer(PRO, pro_body).text


def test_cache_system_sends_a_separate_cache_point_and_reports_cache_tokens(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    request = gateway_pb2.DualChatRequest(
        messages=[user("What does caching save?")],
        system=["You are a careful assistant who explains AWS costs."],
        cache_system=True,
    )
    first = dual_chat(gateway.address, request)
    bodies = [e["body"] for e in emulator.requests() if e["operation"] == "ConverseStream"]
    assert bodies and all(
        body["system"]
        == [
            {"text": "You are a careful assistant who explains AWS costs."},
            {"cachePoint": {"type": "default"}},
        ]
        for body in bodies
    )
    second = dual_chat(gateway.address, request)
    for route in ("micro", "pro"):
        written = first.routes[route].usage
        read = second.routes[route].usage
        assert written.cache_write_input_tokens > 0 and written.cache_read_input_tokens == 0
        assert read.cache_read_input_tokens == written.cache_write_input_tokens
        assert read.cache_write_input_tokens == 0
    assert second.summary.total.cache_read_input_tokens == sum(
        second.routes[r].usage.cache_read_input_tokens for r in ("micro", "pro")
    )


def test_one_route_failing_mid_stream_leaves_the_other_complete(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="mid_stream_error", model=PRO, after_deltas=3)
    result = dual_chat(gateway.address, gateway_pb2.DualChatRequest(messages=[user(QUESTION)]))

    pro = result.routes["pro"]
    assert pro.error is not None and pro.error.code == "UNAVAILABLE"
    assert pro.error.message  # says what Bedrock said
    # Three pieces were sent before the error (deltas that queued up may arrive merged).
    pro_pieces = compose_answer(PRO, route_converse_request("pro", QUESTION)).pieces
    assert pro.text == "".join(pro_pieces[:3]) and pro.usage is None and pro.stop is None
    assert pro.events[-1] == "error"

    micro = result.routes["micro"]
    assert micro.error is None
    assert micro.text == compose_answer(MICRO, route_converse_request("micro", QUESTION)).text
    assert set(result.summary.usage_by_route) == {"micro"}
    assert result.summary.total == micro.usage


def test_request_bedrock_rejects_is_invalid_argument_with_bedrocks_message(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    # The services leave model-specific limits to Bedrock; the emulator enforces Nova's.
    result = dual_chat(
        gateway.address,
        gateway_pb2.DualChatRequest(
            messages=[user("Write a very long essay")],
            inference_config=chat_pb2.InferenceConfig(max_tokens=100_000),
        ),
    )
    entries = [e for e in emulator.requests() if e["operation"] == "ConverseStream"]
    assert {e["error"] for e in entries} == {"ValidationException"}
    for route in ("micro", "pro"):
        error = result.routes[route].error
        assert error is not None and error.code == "INVALID_ARGUMENT"
        # Bedrock's own words, naming the model's limit.
        assert "maximum tokens you requested exceeds the model limit of 10000" in error.message
    assert len(result.summary.usage_by_route) == 0


def test_invalid_request_is_rejected_by_the_gateway_before_any_bedrock_call(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        with grpc.insecure_channel(gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayStub(channel)
            list(stub.DualChat(gateway_pb2.DualChatRequest(messages=[]), timeout=10))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "messages" in raised.value.details()
    assert emulator.requests() == []
