"""What the health tests share: own processes with short probe intervals, and ways to read health.

Health tests stop, deny and restart things, so they run their own emulator,
inference service and gateway (dualnova.dev.stack, like the shared fixtures)
instead of disturbing the session's processes. Waits poll with a deadline;
none of them sleeps and hopes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from polling import wait_until
from processes import SERVICE_DEFAULTS, TEST_PACE

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.inference.v1 import inference_pb2

# Seconds between probes in these tests, and the bound the issue sets: a change
# shows within two intervals. SLACK is for a loaded 2-core CI machine.
INTERVAL_S = 0.5
SLACK_S = 2.0

STATUS_NAMES = {value: name for name, value in health_pb2.HealthCheckResponse.ServingStatus.items()}


def status_name(response: health_pb2.HealthCheckResponse) -> str:
    return STATUS_NAMES[response.status]


def listed(address: str) -> dict[str, str]:
    """Every health name of the server at `address` and its status, via List."""
    with grpc.insecure_channel(address) as channel:
        response = health_pb2_grpc.HealthStub(channel).List(
            health_pb2.HealthListRequest(), timeout=5
        )
    return {name: status_name(entry) for name, entry in response.statuses.items()}


def check(address: str, name: str) -> str:
    with grpc.insecure_channel(address) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=name), timeout=5
        )
    return status_name(response)


def wait_for_statuses(address: str, expected: Mapping[str, str]) -> dict[str, str]:
    """Wait until List shows every name in `expected` with its status; returns the whole list."""

    def matches() -> dict[str, str] | None:
        now = listed(address)
        return now if all(now.get(k) == v for k, v in expected.items()) else None

    return wait_until(matches, f"health {dict(expected)} on {address}")


class Watcher:
    """A Watch stream read on a thread; remembers each status and when it arrived."""

    def __init__(self, address: str, name: str) -> None:
        self.name = name
        self.seen: list[tuple[float, str]] = []
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        self._channel = grpc.insecure_channel(address)
        self._call = health_pb2_grpc.HealthStub(self._channel).Watch(
            health_pb2.HealthCheckRequest(service=name)
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for response in self._call:
                self.seen.append((time.monotonic(), status_name(response)))
        except grpc.RpcError as error:
            self.error = error
        finally:
            self.ended.set()

    def statuses(self) -> list[str]:
        return [status for _, status in self.seen]

    def wait_for(self, status: str, since: float = 0.0) -> float:
        """When `status` arrived (the first time at or after `since`)."""

        def arrival() -> float | None:
            return next((t for t, s in list(self.seen) if s == status and t >= since), None)

        return wait_until(arrival, f"Watch({self.name!r}) to report {status}")

    def close(self) -> None:
        self._call.cancel()
        self._thread.join(5)
        self._channel.close()


@contextmanager
def watching(address: str, name: str) -> Iterator[Watcher]:
    watcher = Watcher(address, name)
    try:
        yield watcher
    finally:
        watcher.close()


def start_emulator(log_dir: Path, name: str) -> EmulatorHandle:
    emulator = EmulatorHandle(pace=TEST_PACE, log_path=log_dir / f"emulator-{name}.log")
    emulator.start()
    return emulator


def start_inference(
    emulator: EmulatorHandle, log_dir: Path, name: str, **env: str
) -> ServiceHandle:
    """An inference service probing every INTERVAL_S seconds, one Bedrock attempt per call."""
    handle = ServiceHandle(
        f"inference service ({name})",
        "inference_service",
        "INFERENCE_LISTEN",
        {
            **SERVICE_DEFAULTS,
            **emulator.aws_env(),
            "DUALNOVA_HEALTH_INTERVAL": str(INTERVAL_S),
            "DUALNOVA_BEDROCK_MAX_ATTEMPTS": "1",
            **env,
        },
        log_path=log_dir / f"inference_service-{name}.log",
    )
    handle.start()
    return handle


def start_gateway(inference: ServiceHandle, log_dir: Path, name: str, **env: str) -> ServiceHandle:
    handle = ServiceHandle(
        f"gateway ({name})",
        "gateway",
        "GATEWAY_LISTEN",
        {
            **SERVICE_DEFAULTS,
            "INFERENCE_TARGET": inference.address,
            "DUALNOVA_HEALTH_INTERVAL": str(INTERVAL_S),
            **env,
        },
        log_path=log_dir / f"gateway-{name}.log",
    )
    handle.start()
    return handle


def question(
    model: str, text: str = "What does a readiness probe check?"
) -> inference_pb2.ChatRequest:
    return inference_pb2.ChatRequest(
        model=model, messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, text=text)]
    )
