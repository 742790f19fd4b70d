"""Requests the inference service refuses itself: INVALID_ARGUMENT naming the field, and
no call to Bedrock (the emulator's log stays empty)."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc

USER = chat_pb2.ROLE_USER
ASSISTANT = chat_pb2.ROLE_ASSISTANT
Edit = Callable[[inference_pb2.ChatRequest], None]


def valid_request() -> inference_pb2.ChatRequest:
    return inference_pb2.ChatRequest(
        model="micro",
        messages=[
            chat_pb2.Message(role=USER, text="첫 질문"),
            chat_pb2.Message(role=ASSISTANT, text="첫 답"),
            chat_pb2.Message(role=USER, text="두 번째 질문"),
        ],
        system=["be brief"],
    )


def set_model(name: str) -> Edit:
    return lambda r: setattr(r, "model", name)


def set_messages(*turns: tuple[int, str]) -> Edit:
    def edit(request: inference_pb2.ChatRequest) -> None:
        del request.messages[:]
        request.messages.extend(chat_pb2.Message(role=role, text=text) for role, text in turns)

    return edit


def set_config(**fields: object) -> Edit:
    return lambda r: r.inference_config.CopyFrom(chat_pb2.InferenceConfig(**fields))


def set_system(*texts: str) -> Edit:
    def edit(request: inference_pb2.ChatRequest) -> None:
        del request.system[:]
        request.system.extend(texts)

    return edit


CASES: dict[str, tuple[Edit, str]] = {
    "model missing": (set_model(""), "model: is required; use one of 'micro', 'pro'"),
    "model unknown": (set_model("gpt-4"), "model: 'gpt-4' is not accepted; use one of 'micro'"),
    "model not on allow list": (set_model("amazon.nova-premier-v1:0"), "model: "),
    "no messages": (set_messages(), "messages: must contain at least one message"),
    "role unset": (
        set_messages((USER, "a"), (chat_pb2.ROLE_UNSPECIFIED, "b"), (USER, "c")),
        "messages[1].role: ",
    ),
    "empty text": (set_messages((USER, "a"), (ASSISTANT, ""), (USER, "c")), "messages[1].text: "),
    "blank text": (set_messages((USER, "  \n")), "messages[0].text: "),
    "starts with assistant": (
        set_messages((ASSISTANT, "a"), (USER, "b")),
        "messages[0].role: the conversation must start with the user",
    ),
    "not alternating": (
        set_messages((USER, "a"), (USER, "b")),
        "messages[1].role: user and assistant turns must alternate",
    ),
    "ends with assistant": (
        set_messages((USER, "a"), (ASSISTANT, "b")),
        "messages[1].role: the conversation must end with the user",
    ),
    "empty system prompt": (set_system("be brief", ""), "system[1]: must not be empty"),
    "max_tokens zero": (set_config(max_tokens=0), "inference_config.max_tokens: "),
    "max_tokens negative": (set_config(max_tokens=-3), "inference_config.max_tokens: "),
    "temperature above 1": (set_config(temperature=1.5), "inference_config.temperature: "),
    "temperature below 0": (set_config(temperature=-0.1), "inference_config.temperature: "),
    "temperature not a number": (
        set_config(temperature=float("nan")),
        "inference_config.temperature: ",
    ),
    "top_p above 1": (set_config(top_p=1.01), "inference_config.top_p: "),
    "five stop sequences": (
        set_config(stop_sequences=["a", "b", "c", "d", "e"]),
        "inference_config.stop_sequences: at most 4",
    ),
    "empty stop sequence": (
        set_config(stop_sequences=["ok", ""]),
        "inference_config.stop_sequences[1]: ",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_invalid_request_names_the_field_and_never_reaches_bedrock(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle, case: str
) -> None:
    edit, expected_prefix = CASES[case]
    request = valid_request()
    edit(request)

    with pytest.raises(grpc.RpcError) as failure:
        list(stub.Chat(request, timeout=10))

    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details().startswith(expected_prefix), failure.value.details()
    assert emulator.requests() == []


def test_the_valid_base_request_does_reach_bedrock(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    """Guards the cases above: their base request is fine, so each failure is the edit's."""
    events = list(stub.Chat(valid_request(), timeout=10))
    assert events[-1].WhichOneof("event") == "stop"
    assert len(emulator.requests()) == 1


def test_boundary_values_are_accepted(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    request = valid_request()
    request.inference_config.CopyFrom(
        chat_pb2.InferenceConfig(
            max_tokens=1, temperature=0.0, top_p=1.0, stop_sequences=["w", "x", "y", "z"]
        )
    )
    events = list(stub.Chat(request, timeout=10))
    assert events[-1].stop.stop_reason == "max_tokens"
    (sent,) = emulator.requests()
    assert sent["body"]["inferenceConfig"] == {
        "maxTokens": 1,
        "temperature": 0.0,
        "topP": 1.0,
        "stopSequences": ["w", "x", "y", "z"],
    }
