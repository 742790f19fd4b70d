"""Retries as botocore's standard mode makes them, on the event-loop path: before the stream only.

The service under test makes up to three attempts (DUALNOVA_BEDROCK_MAX_ATTEMPTS);
the emulator's request log counts what reached Bedrock.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from processes import SERVICE_DEFAULTS

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc


def service(emulator: EmulatorHandle, log_dir: Path, name: str, **env: str) -> ServiceHandle:
    return ServiceHandle(
        f"inference service ({name})",
        "inference_service",
        "INFERENCE_LISTEN",
        {**SERVICE_DEFAULTS, **emulator.aws_env(), **env},
        log_path=log_dir / f"inference_service-{name}.log",
    )


@pytest.fixture(scope="module")
def three_attempts(emulator: EmulatorHandle, log_dir: Path) -> Iterator[ServiceHandle]:
    handle = service(emulator, log_dir, "three-attempts", DUALNOVA_BEDROCK_MAX_ATTEMPTS="3")
    handle.start()
    yield handle
    handle.stop()


def chat(handle: ServiceHandle) -> tuple[grpc.StatusCode, list[str]]:
    """The call's final status and the kinds of the events it received."""
    request = inference_pb2.ChatRequest(
        model="micro", messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, text="Hello")]
    )
    kinds: list[str] = []
    with grpc.insecure_channel(handle.address) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        try:
            for event in stub.Chat(request, timeout=30):
                kinds.append(event.WhichOneof("event"))
        except grpc.RpcError as error:
            return error.code(), kinds
    return grpc.StatusCode.OK, kinds


def attempts(emulator: EmulatorHandle) -> list[int | None]:
    """The HTTP status of each ConverseStream that reached the emulator, in order."""
    return [e["status"] for e in emulator.requests() if e["operation"] == "ConverseStream"]


def test_a_5xx_before_the_stream_is_retried_and_the_call_succeeds(
    three_attempts: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="service_unavailable", operations=["ConverseStream"], times=2)
    status, kinds = chat(three_attempts)
    assert status == grpc.StatusCode.OK and kinds[0] == "start" and kinds[-1] == "stop"
    assert attempts(emulator) == [503, 503, 200]


def test_throttling_is_retried_until_the_attempts_run_out(
    three_attempts: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="throttling", operations=["ConverseStream"], times=10)
    status, kinds = chat(three_attempts)
    assert status == grpc.StatusCode.RESOURCE_EXHAUSTED and kinds == []
    assert attempts(emulator) == [429, 429, 429]


def test_a_request_bedrock_rejects_is_not_retried(
    three_attempts: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="access_denied", operations=["ConverseStream"], times=10)
    status, _ = chat(three_attempts)
    assert status == grpc.StatusCode.PERMISSION_DENIED
    assert len(attempts(emulator)) == 1


def test_nothing_is_retried_once_the_stream_has_begun(
    three_attempts: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="mid_stream_error", after_deltas=2, times=10)
    status, kinds = chat(three_attempts)
    assert status == grpc.StatusCode.UNAVAILABLE and kinds[0] == "start"
    assert attempts(emulator) == [200]


def test_aws_max_attempts_applies_when_the_service_setting_is_unset(
    emulator: EmulatorHandle, log_dir: Path
) -> None:
    handle = service(emulator, log_dir, "aws-max-attempts", AWS_MAX_ATTEMPTS="2")
    handle.start()
    try:
        emulator.add_fault(kind="internal", operations=["ConverseStream"], times=10)
        status, _ = chat(handle)
    finally:
        handle.stop()
    assert status == grpc.StatusCode.UNAVAILABLE
    assert attempts(emulator) == [500, 500]
