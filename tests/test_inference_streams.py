"""Streams against a Bedrock that accepts the connection and never answers.

A call waiting for Bedrock's response headers holds a slot under the stream
cap and a socket. These tests pin what the service does with them: a call
over the cap is refused at once while the first one waits; when the waiting
caller leaves, its socket to Bedrock is closed at once and its slot is free
for the next call; and SIGTERM ends the process promptly even then.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from polling import wait_until
from processes import SERVICE_DEFAULTS

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import ServiceHandle
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc

# Long enough that no pump thread ends by botocore's read timeout during a test.
READ_TIMEOUT_S = "60"
# A guard against hanging, far above the 1 s grace; not a timing claim.
EXIT_WITHIN_S = 15.0


class BlackHole:
    """A TCP server on loopback that accepts connections, reads, and never answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._received: list[bytearray] = []
        self._hung_up: list[bool] = []
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def converse_stream_calls(self) -> int:
        """How many ConverseStream requests arrived (health probes hit this endpoint too)."""
        with self._lock:
            return sum(_is_converse_stream(data) for data in self._received)

    def converse_stream_hang_ups(self) -> int:
        """How many ConverseStream connections the caller closed."""
        with self._lock:
            return sum(
                hung_up and _is_converse_stream(data)
                for data, hung_up in zip(self._received, self._hung_up, strict=True)
            )

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                connection.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            received = bytearray()
            with self._lock:
                index = len(self._received)
                self._connections.append(connection)
                self._received.append(received)
                self._hung_up.append(False)
            threading.Thread(
                target=self._read, args=(connection, received, index), daemon=True
            ).start()

    def _read(self, connection: socket.socket, received: bytearray, index: int) -> None:
        while True:
            try:
                chunk = connection.recv(65536)
            except OSError:
                return
            if not chunk:
                with self._lock:
                    self._hung_up[index] = True
                return
            with self._lock:
                received += chunk


def _is_converse_stream(data: bytearray) -> bool:
    return b"/converse-stream" in data.split(b"\r\n", 1)[0]


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


def silent_bedrock_service(
    aws_env: dict[str, str], hole: BlackHole, log_dir: Path, name: str
) -> ServiceHandle:
    return ServiceHandle(
        f"inference service ({name})",
        "inference_service",
        "INFERENCE_LISTEN",
        {
            **SERVICE_DEFAULTS,
            **aws_env,
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": hole.url,
            "DUALNOVA_BEDROCK_READ_TIMEOUT": READ_TIMEOUT_S,
            "DUALNOVA_BEDROCK_MAX_ATTEMPTS": "1",
            "INFERENCE_MAX_STREAMS": "1",
            # The start-up probe meets the black hole too: give up on it quickly.
            "DUALNOVA_HEALTH_TIMEOUT": "0.5",
            "INFERENCE_SHUTDOWN_GRACE": "1",
        },
        log_path=log_dir / f"inference_service-{name}.log",
    )


def ask() -> inference_pb2.ChatRequest:
    return inference_pb2.ChatRequest(
        model="micro",
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, text="Are you there?")],
    )


def chat_error(stub: inference_pb2_grpc.InferenceServiceStub, timeout: float) -> grpc.RpcError:
    try:
        events = list(stub.Chat(ask(), timeout=timeout))
    except grpc.RpcError as error:
        return error
    raise AssertionError(f"Chat succeeded: {events}")


def test_a_call_waiting_for_headers_holds_its_slot_until_its_caller_leaves(
    aws_env: dict[str, str], black_hole: BlackHole, log_dir: Path
) -> None:
    service = silent_bedrock_service(aws_env, black_hole, log_dir, "black-hole-cap")
    service.start()
    try:
        with grpc.insecure_channel(service.address) as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)

            waiting = stub.Chat(ask(), timeout=EXIT_WITHIN_S)
            wait_until(black_hole.converse_stream_calls, "the request to reach the black hole")

            # The first call is still waiting for Bedrock's headers: it holds the one slot,
            # so this call is refused at once rather than accepted and left waiting.
            refused = chat_error(stub, timeout=EXIT_WITHIN_S)
            assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "too many concurrent streams" in refused.details()
            assert "limit 1, INFERENCE_MAX_STREAMS" in refused.details()
            # RetryInfo in the status details says when to try again.
            status = rpc_status.from_call(refused)
            assert status is not None and status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
            (detail,) = status.details
            retry = error_details_pb2.RetryInfo()
            assert detail.Unpack(retry) and retry.retry_delay.ToTimedelta().total_seconds() == 1.0
            assert black_hole.converse_stream_calls() == 1

            # Its caller leaves: the socket to Bedrock is closed at once, the slot is free.
            waiting.cancel()
            wait_until(black_hole.converse_stream_hang_ups, "the service to hang up on Bedrock")
            late = chat_error(stub, timeout=1)
            assert late.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert black_hole.converse_stream_calls() == 2
            wait_until(
                lambda: black_hole.converse_stream_hang_ups() == 2,
                "the service to hang up on Bedrock after the deadline",
            )
    finally:
        # Also the SIGTERM path with a call waiting; the next test asserts on it.
        service.stop()


def test_sigterm_exits_while_a_call_waits_for_headers(
    aws_env: dict[str, str], black_hole: BlackHole, log_dir: Path
) -> None:
    service = silent_bedrock_service(aws_env, black_hole, log_dir, "black-hole-sigterm")
    service.start()
    with grpc.insecure_channel(service.address) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        call = stub.Chat(ask(), timeout=60)
        wait_until(black_hole.converse_stream_calls, "the request to reach the black hole")

        status = service.stop(signal.SIGTERM, timeout=EXIT_WITHIN_S)

        # 0, not -9: it exited by itself (dualnova.dev.stack kills it after the timeout).
        assert status == 0
        with pytest.raises(grpc.RpcError) as ended:
            list(call)
        assert ended.value.code() in {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE}
