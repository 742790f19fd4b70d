"""Credentials that expire are refreshed on the new async path, as botocore's chain promises.

A container-credentials endpoint (what ECS gives a task role) is served on
loopback; every answer is a new key that expires in 11 minutes, inside
botocore's 15-minute advisory window, so every call is due a refresh. The
emulator records the access key each request was signed with.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from processes import SERVICE_DEFAULTS

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EMULATOR_CREDENTIALS, EmulatorHandle, ServiceHandle
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc

KEY_PREFIX = "ASIAROTATED"
EXPIRES_IN = timedelta(minutes=11)


class ContainerCredentials:
    """AWS_CONTAINER_CREDENTIALS_FULL_URI on loopback, a new short-lived key per request."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                body = json.dumps(source.issue()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep the test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/credentials"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def issue(self) -> dict[str, str]:
        key = f"{KEY_PREFIX}{len(self.issued):05d}"
        self.issued.append(key)
        expiry = datetime.now(UTC) + EXPIRES_IN
        return {
            "AccessKeyId": key,
            "SecretAccessKey": f"secret-{key}",
            "Token": f"token-{key}",
            "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def container_credentials() -> Iterator[ContainerCredentials]:
    served = ContainerCredentials()
    yield served
    served.close()


@pytest.fixture
def role_service(
    emulator: EmulatorHandle, container_credentials: ContainerCredentials, log_dir: Path
) -> Iterator[ServiceHandle]:
    """The inference service with no keys in its environment: only the container role."""
    env = {
        key: value
        for key, value in emulator.aws_env().items()
        if key not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = container_credentials.url
    assert "AWS_ACCESS_KEY_ID" in EMULATOR_CREDENTIALS  # what was removed above
    handle = ServiceHandle(
        "inference service (container role)",
        "inference_service",
        "INFERENCE_LISTEN",
        {**SERVICE_DEFAULTS, **env},
        log_path=log_dir / "inference_service-container-role.log",
    )
    handle.start()
    yield handle
    handle.stop()


def ask() -> inference_pb2.ChatRequest:
    return inference_pb2.ChatRequest(
        model="micro", messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, text="Hello")]
    )


def test_calls_keep_succeeding_with_each_refreshed_key(
    role_service: ServiceHandle,
    emulator: EmulatorHandle,
    container_credentials: ContainerCredentials,
) -> None:
    with grpc.insecure_channel(role_service.address) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        for _ in range(3):
            events = list(stub.Chat(ask(), timeout=15))
            assert events[-1].WhichOneof("event") == "stop"

    streams = [e for e in emulator.requests() if e["operation"] == "ConverseStream"]
    used = [entry["access_key"] for entry in streams]
    assert len(used) == 3
    # Each call was due a refresh, so each was signed with a key issued for it, and never
    # with one issued before the previous call's.
    assert len(set(used)) == 3, used
    assert all(key in container_credentials.issued for key in used)
    assert [container_credentials.issued.index(key) for key in used] == sorted(
        container_credentials.issued.index(key) for key in used
    )
    assert all(entry["completed"] for entry in streams)
