"""Chat through the real inference service and real boto3 against the emulator.

What a caller relies on: events in order (start, deltas, usage, stop), the
exact text and usage Bedrock sent, and the request Bedrock saw carrying the
caller's settings, system prompts and cache point.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from deltas import assert_whole_pieces
from usage_shape import usage_dict

from bedrock_emulator.answers import compose_answer, count_tokens
from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc

QUESTION = "서울에서 부산까지 가장 빠르게 가는 방법은? 🚄"
USER = chat_pb2.ROLE_USER
ASSISTANT = chat_pb2.ROLE_ASSISTANT


def ask(model: str, question: str = QUESTION, **fields: Any) -> inference_pb2.ChatRequest:
    return inference_pb2.ChatRequest(
        model=model, messages=[chat_pb2.Message(role=USER, text=question)], **fields
    )


def converse_body(question: str, **extra: Any) -> dict[str, Any]:
    """The Converse request a one-question Chat should become (server default maxTokens 1024)."""
    return {
        "messages": [{"role": "user", "content": [{"text": question}]}],
        "inferenceConfig": {"maxTokens": 1024},
        **extra,
    }


def chat(
    stub: inference_pb2_grpc.InferenceServiceStub, request: inference_pb2.ChatRequest
) -> list[inference_pb2.ChatResponse]:
    return list(stub.Chat(request, timeout=15))


def kinds(events: list[inference_pb2.ChatResponse]) -> list[str]:
    return [event.WhichOneof("event") for event in events]


def text_of(events: list[inference_pb2.ChatResponse]) -> str:
    return "".join(event.delta.text for event in events if event.HasField("delta"))


@pytest.mark.parametrize(
    ("alias", "model_id"),
    [("micro", "amazon.nova-micro-v1:0"), ("pro", "amazon.nova-pro-v1:0")],
)
def test_chat_streams_start_deltas_usage_stop(
    stub: inference_pb2_grpc.InferenceServiceStub,
    emulator: EmulatorHandle,
    alias: str,
    model_id: str,
) -> None:
    events = chat(stub, ask(alias))

    expected = compose_answer(model_id, converse_body(QUESTION))
    deltas = [e.delta.text for e in events[1:-2]]
    assert kinds(events) == ["start"] + ["delta"] * len(deltas) + ["usage", "stop"]
    assert_whole_pieces(deltas, expected.pieces)
    assert text_of(events) == expected.text
    assert "🚀" in text_of(events)

    (sent,) = emulator.requests()
    start, usage, stop = events[0].start, events[-2].usage, events[-1].stop
    assert start.model_id == model_id
    assert sent["model_id"] == model_id
    assert start.request_id == sent["id"]
    assert usage_dict(usage) == sent["usage"]
    assert usage.output_tokens == len(expected.pieces)
    assert usage.input_tokens == count_tokens(QUESTION)
    assert stop.stop_reason == sent["stop_reason"] == "end_turn"
    assert 0 < stop.time_to_first_token_ms <= stop.latency_ms
    assert sent["completed"] and not sent["disconnected"]


def test_inference_config_and_system_prompts_reach_bedrock(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    config = chat_pb2.InferenceConfig(
        max_tokens=7, temperature=0.3, top_p=0.9, stop_sequences=["STOP-HERE", "끝"]
    )
    system = ["You answer briefly.", "한국어로 답하세요."]
    events = chat(stub, ask("micro", system=system, inference_config=config))

    (sent,) = emulator.requests()
    assert sent["body"]["inferenceConfig"] == {
        "maxTokens": 7,
        "temperature": 0.3,
        "topP": 0.9,
        "stopSequences": ["STOP-HERE", "끝"],
    }
    assert sent["body"]["system"] == [{"text": text} for text in system]
    assert sent["body"]["messages"] == [{"role": "user", "content": [{"text": QUESTION}]}]
    # The emulator honoured the settings, and we relayed its verdict.
    assert events[-2].usage.output_tokens == 7 == sent["usage"]["outputTokens"]
    assert text_of(events) == sent["response_text"]
    assert events[-1].stop.stop_reason == "max_tokens"
    assert events[-2].usage.input_tokens == sum(count_tokens(t) for t in [*system, QUESTION])


def test_unset_settings_send_only_the_server_default_max_tokens(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    chat(stub, ask("micro"))
    (sent,) = emulator.requests()
    assert sent["body"]["inferenceConfig"] == {"maxTokens": 1024}
    assert "system" not in sent["body"]


def test_stop_sequence_cuts_the_answer(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    full = compose_answer("amazon.nova-micro-v1:0", converse_body(QUESTION)).text
    cut_word = full.split()[4]
    config = chat_pb2.InferenceConfig(stop_sequences=[cut_word])
    events = chat(stub, ask("micro", inference_config=config))
    assert text_of(events) == full[: full.find(cut_word)]
    assert events[-1].stop.stop_reason == "stop_sequence"


def test_conversation_history_reaches_bedrock_in_order(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    turns = [
        (USER, "안녕하세요"),
        (ASSISTANT, "안녕하세요! 무엇을 도와드릴까요?"),
        (USER, QUESTION),
    ]
    request = inference_pb2.ChatRequest(
        model="pro", messages=[chat_pb2.Message(role=r, text=t) for r, t in turns]
    )
    events = chat(stub, request)
    (sent,) = emulator.requests()
    assert sent["body"]["messages"] == [
        {"role": "user", "content": [{"text": "안녕하세요"}]},
        {"role": "assistant", "content": [{"text": "안녕하세요! 무엇을 도와드릴까요?"}]},
        {"role": "user", "content": [{"text": QUESTION}]},
    ]
    assert text_of(events) == compose_answer("amazon.nova-pro-v1:0", sent["body"]).text


def test_cache_system_writes_then_reads_the_prompt_cache(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    system = "당신은 여행 도우미입니다. 항상 예의 바르게, 짧고 정확하게 답하세요."
    request = ask("micro", system=[system], cache_system=True)

    first = chat(stub, request)
    second = chat(stub, request)

    sent = emulator.requests()
    assert [entry["body"]["system"] for entry in sent] == [
        [{"text": system}, {"cachePoint": {"type": "default"}}]
    ] * 2
    cached = count_tokens(system)
    first_usage, second_usage = first[-2].usage, second[-2].usage
    assert first_usage.cache_write_input_tokens == cached
    assert first_usage.cache_read_input_tokens == 0
    assert second_usage.cache_write_input_tokens == 0
    assert second_usage.cache_read_input_tokens == cached
    assert first_usage.input_tokens == second_usage.input_tokens == count_tokens(QUESTION)
    assert [usage_dict(u) for u in (first_usage, second_usage)] == [e["usage"] for e in sent]


def test_cache_system_without_system_prompts_sends_no_cache_point(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    chat(stub, ask("micro", cache_system=True))
    (sent,) = emulator.requests()
    assert "system" not in sent["body"]


def test_max_tokens_over_the_model_limit_is_bedrocks_invalid_argument(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    request = ask("micro", inference_config=chat_pb2.InferenceConfig(max_tokens=20_000))
    with pytest.raises(grpc.RpcError) as failure:
        chat(stub, request)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details().startswith("Bedrock rejected the request: ")
    assert "exceeds the model limit of 10000" in failure.value.details()
    (sent,) = emulator.requests()  # it was Bedrock's call, not ours
    assert sent["body"]["inferenceConfig"]["maxTokens"] == 20_000
    assert sent["error"] == "ValidationException"
