"""Bedrock failures through the real stack: each arrives as the mapped gRPC status with
Bedrock's message; cancelling a Chat hangs up on Bedrock; the stream cap answers at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from deltas import assert_whole_pieces
from polling import wait_until
from processes import SERVICE_DEFAULTS

from bedrock_emulator.answers import compose_answer
from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle, ServiceHandle, free_port
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc

PREMIER = "amazon.nova-premier-v1:0"
WAIT_S = 10.0


def ask(model: str = "micro") -> inference_pb2.ChatRequest:
    question = "장애가 나면 어떻게 되나요?"
    return inference_pb2.ChatRequest(
        model=model, messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, text=question)]
    )


def own_instance(env: dict[str, str], log_dir: Path, name: str) -> Iterator[ServiceHandle]:
    """A second inference service with its own settings, launched like the shared one."""
    handle = ServiceHandle(
        f"inference service ({name})",
        "inference_service",
        "INFERENCE_LISTEN",
        {**SERVICE_DEFAULTS, "DUALNOVA_BEDROCK_MAX_ATTEMPTS": "1", **env},
        log_path=log_dir / f"inference_service-{name}.log",
    )
    handle.start()
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def restricted(emulator: EmulatorHandle, log_dir: Path) -> Iterator[ServiceHandle]:
    """One stream at a time, and Nova Premier (no access in the emulated account) allowed."""
    env = {
        **emulator.aws_env(),
        "INFERENCE_MAX_STREAMS": "1",
        "DUALNOVA_ALLOWED_MODELS": PREMIER,
    }
    yield from own_instance(env, log_dir, "restricted")


@pytest.fixture(scope="module")
def unreachable(emulator: EmulatorHandle, log_dir: Path) -> Iterator[ServiceHandle]:
    """Pointed at a loopback port nobody listens on."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = {
        **emulator.aws_env(),
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": nowhere,
        "DUALNOVA_BEDROCK_CONNECT_TIMEOUT": "2",
    }
    yield from own_instance(env, log_dir, "unreachable")


@pytest.fixture(scope="module")
def bad_credentials(emulator: EmulatorHandle, log_dir: Path) -> Iterator[ServiceHandle]:
    """Keys Bedrock does not recognise (the emulator refuses keys starting with INVALID)."""
    env = {**emulator.aws_env(), "AWS_ACCESS_KEY_ID": "INVALIDKEY0000"}
    yield from own_instance(env, log_dir, "bad-credentials")


def channel_to(handle: ServiceHandle) -> grpc.Channel:
    return grpc.insecure_channel(handle.address)


def failure_of(
    stub: inference_pb2_grpc.InferenceServiceStub, request: inference_pb2.ChatRequest
) -> tuple[grpc.RpcError, list[inference_pb2.ChatResponse]]:
    """The error a Chat ends with and the events that came before it."""
    received: list[inference_pb2.ChatResponse] = []
    try:
        for event in stub.Chat(request, timeout=15):
            received.append(event)
    except grpc.RpcError as error:
        return error, received
    raise AssertionError(f"Chat succeeded: {[e.WhichOneof('event') for e in received]}")


@pytest.mark.parametrize(
    ("kind", "status", "bedrock_words"),
    [
        ("throttling", grpc.StatusCode.RESOURCE_EXHAUSTED, "Too many requests"),
        ("access_denied", grpc.StatusCode.PERMISSION_DENIED, "don't have access to the model"),
        ("service_unavailable", grpc.StatusCode.UNAVAILABLE, "unable to process your request"),
        ("internal", grpc.StatusCode.UNAVAILABLE, "unexpected error during processing"),
    ],
)
def test_bedrock_errors_before_the_stream_map_to_statuses(
    stub: inference_pb2_grpc.InferenceServiceStub,
    emulator: EmulatorHandle,
    kind: str,
    status: grpc.StatusCode,
    bedrock_words: str,
) -> None:
    emulator.add_fault(kind=kind)
    error, received = failure_of(stub, ask())
    assert error.code() == status
    assert bedrock_words in error.details()
    assert received == []
    # Exactly one call: the shared service runs with one botocore attempt, and nothing
    # above botocore retries.
    assert len(emulator.requests()) == 1


@pytest.mark.parametrize(
    ("exception", "status"),
    [
        ("modelStreamErrorException", grpc.StatusCode.UNAVAILABLE),
        ("throttlingException", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("validationException", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_error_mid_stream_ends_the_rpc_after_the_deltas_already_sent(
    stub: inference_pb2_grpc.InferenceServiceStub,
    emulator: EmulatorHandle,
    exception: str,
    status: grpc.StatusCode,
) -> None:
    emulator.add_fault(kind="mid_stream_error", after_deltas=3, exception=exception)
    error, received = failure_of(stub, ask("pro"))
    assert error.code() == status
    deltas = [e.delta.text for e in received[1:]]
    assert [e.WhichOneof("event") for e in received] == ["start", *["delta"] * len(deltas)]
    (sent,) = emulator.requests()
    assert sent["error"] == exception
    assert_whole_pieces(deltas, compose_answer("amazon.nova-pro-v1:0", sent["body"]).pieces[:3])
    assert "".join(deltas) == sent["response_text"]


def test_model_without_access_is_permission_denied(
    restricted: ServiceHandle, emulator: EmulatorHandle
) -> None:
    with channel_to(restricted) as channel:
        error, _ = failure_of(inference_pb2_grpc.InferenceServiceStub(channel), ask(PREMIER))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    (sent,) = emulator.requests()
    assert sent["model_id"] == PREMIER


def test_unreachable_bedrock_is_unavailable(unreachable: ServiceHandle) -> None:
    with channel_to(unreachable) as channel:
        error, received = failure_of(inference_pb2_grpc.InferenceServiceStub(channel), ask())
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "cannot reach Bedrock" in error.details()
    assert received == []


def test_rejected_credentials_are_unavailable_not_the_callers_fault(
    bad_credentials: ServiceHandle, emulator: EmulatorHandle
) -> None:
    with channel_to(bad_credentials) as channel:
        error, _ = failure_of(inference_pb2_grpc.InferenceServiceStub(channel), ask())
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "credentials" in error.details()
    assert "security token included in the request is invalid" in error.details()
    assert len(emulator.requests()) == 1


@pytest.mark.parametrize("kind", ["slow", "hang"])
def test_cancelling_a_chat_hangs_up_on_bedrock(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle, kind: str
) -> None:
    emulator.add_fault(kind=kind, delay_ms=300, after_deltas=2)
    call = stub.Chat(ask("pro"), timeout=30)
    received = [next(call), next(call), next(call)]
    assert [e.WhichOneof("event") for e in received] == ["start", "delta", "delta"]

    call.cancel()

    entry = wait_until(
        lambda: next((e for e in emulator.requests() if e["disconnected"]), None),
        "the emulator to see the hang-up",
        timeout=WAIT_S,
    )
    assert not entry["completed"]
    assert entry["fault"] is not None


def test_stream_cap_refuses_at_once_and_frees_the_slot_after(
    restricted: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="slow", delay_ms=300)
    with channel_to(restricted) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        running = stub.Chat(ask(), timeout=30)
        assert next(running).WhichOneof("event") == "start"  # holds the only slot

        error, received = failure_of(stub, ask())
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "too many concurrent streams" in error.details()
        assert received == []
        assert len(emulator.requests()) == 1  # the refused call never reached Bedrock

        running.cancel()
        emulator.clear_faults()

        def finishes() -> bool:
            try:
                events = list(stub.Chat(ask(), timeout=15))
            except grpc.RpcError as refused:
                assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                return False
            return events[-1].WhichOneof("event") == "stop"

        wait_until(finishes, "the slot to be released", timeout=WAIT_S)
