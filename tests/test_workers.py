"""Several worker processes on one port (INFERENCE_WORKERS, GATEWAY_WORKERS), and a taken port.

A supervisor starts N workers that share the listen port with SO_REUSEPORT;
the kernel spreads connections over them, SIGTERM drains every one and the
supervisor exits 0. Anywhere else the port is not shared: a second server on
a taken port stops at start with one line naming it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from health_support import question
from polling import wait_until
from processes import SERVICE_DEFAULTS
from startup import assert_refused_to_start
from telemetry_support import log_lines
from test_inference_config import GOOD_AWS, run_service
from test_shutdown import StreamReader

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.inference.v1 import inference_pb2_grpc
from dualnova.server import telemetry

MICRO = "amazon.nova-micro-v1:0"
# Calls on fresh connections: the kernel hashes each to a worker, so all of them
# landing on one of two workers has a chance of 2 in 2**CALLS.
CALLS = 24
SLOW_STREAMS = 14
SLOW_DELTA_MS = 100
# Channels in one process share connections to the same target unless told not to.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def start_service(
    module: str, listen_variable: str, log: Path, env: dict[str, str]
) -> ServiceHandle:
    handle = ServiceHandle(
        module, module, listen_variable, {**SERVICE_DEFAULTS, **env}, log_path=log
    )
    handle.start()
    return handle


def wait_for_workers(log: Path, count: int) -> dict[int, int]:
    """Block until the supervisor says all `count` workers serve; worker index -> pid."""
    wait_until(
        lambda: any(line["message"] == f"{count} workers serving" for line in log_lines(log)),
        f"{count} workers serving",
    )
    return {line["worker"]: line["pid"] for line in log_lines(log) if "worker" in line}


def lines_with(log: Path, message: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(log) if line["message"] == message]


def chat_once(address: str) -> None:
    with grpc.insecure_channel(address, OWN_CONNECTION) as channel:
        events = list(inference_pb2_grpc.InferenceServiceStub(channel).Chat(question("micro")))
    assert events[-1].HasField("stop")


def maps_of(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_inference_workers_share_the_port_and_drain_on_sigterm(
    own_emulator: EmulatorHandle, log_dir: Path
) -> None:
    own_emulator.reset()
    log = log_dir / "inference_service-workers.log"
    service = start_service(
        "inference_service",
        "INFERENCE_LISTEN",
        log,
        {
            **own_emulator.aws_env(),
            "INFERENCE_WORKERS": "2",
            "INFERENCE_SHUTDOWN_DELAY": "0.3",
            "INFERENCE_SHUTDOWN_GRACE": "30",
        },
    )
    try:
        pids = wait_for_workers(log, 2)
        assert sorted(pids) == [0, 1] and service.pid not in pids.values()
        # The supervisor never loaded grpc (grpc does not survive fork); the workers did.
        assert "cygrpc" not in maps_of(service.pid)
        assert all("cygrpc" in maps_of(pid) for pid in pids.values())

        with futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: chat_once(service.address), range(CALLS)))
        served = {line["worker"] for line in lines_with(log, "chat finished")}
        assert served == {0, 1}

        # Streams running on both workers when SIGTERM reaches the supervisor.
        own_emulator.add_fault(kind="slow", delay_ms=SLOW_DELTA_MS, times=SLOW_STREAMS)
        channels = [
            grpc.insecure_channel(service.address, OWN_CONNECTION) for _ in range(SLOW_STREAMS)
        ]
        streams = [
            StreamReader(inference_pb2_grpc.InferenceServiceStub(c).Chat(question("micro")))
            for c in channels
        ]
        wait_until(
            lambda: all(any(e.HasField("delta") for e in s.events) for s in streams),
            "a first delta on every stream",
        )
        os.kill(service.pid, signal.SIGTERM)
        wait_until(lambda: not service.running, "the supervisor to exit", timeout=40)
        for channel in channels:
            channel.close()
        assert [s.code for s in streams] == [grpc.StatusCode.OK] * SLOW_STREAMS
        assert all(s.events[-1].HasField("stop") for s in streams)
        request_ids = {s.events[0].start.request_id for s in streams}
        slow_workers = {
            line["worker"]
            for line in lines_with(log, "chat finished")
            if line.get("request_id") in request_ids
        }
        assert slow_workers == {0, 1}  # both workers drained a running stream
        assert {line["worker"] for line in lines_with(log, "inference service stopped")} == {0, 1}
    finally:
        status = service.stop()
    assert status == 0


def test_a_worker_that_dies_stops_the_service_with_status_1(
    own_emulator: EmulatorHandle, log_dir: Path
) -> None:
    log = log_dir / "inference_service-worker-dies.log"
    service = start_service(
        "inference_service",
        "INFERENCE_LISTEN",
        log,
        {**own_emulator.aws_env(), "INFERENCE_WORKERS": "2", "INFERENCE_SHUTDOWN_DELAY": "0"},
    )
    try:
        pids = wait_for_workers(log, 2)
        os.kill(pids[1], signal.SIGKILL)
        wait_until(lambda: not service.running, "the supervisor to exit")
        # The survivor drained as on SIGTERM rather than being left alone or killed.
        assert [line["worker"] for line in lines_with(log, "inference service stopped")] == [0]
    finally:
        status = service.stop()
    assert status == 1


def test_gateway_workers_share_the_port_and_exit_0(
    own_emulator: EmulatorHandle, log_dir: Path
) -> None:
    inference = start_service(
        "inference_service",
        "INFERENCE_LISTEN",
        log_dir / "inference_service-behind-gateway-workers.log",
        own_emulator.aws_env(),
    )
    log = log_dir / "gateway-workers.log"
    gateway = start_service(
        "gateway",
        "GATEWAY_LISTEN",
        log,
        {"INFERENCE_TARGET": inference.address, "GATEWAY_WORKERS": "2"},
    )
    request = gateway_pb2.DualChatRequest(
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, text="Hello")]
    )

    def dual_chat(_: int) -> None:
        with grpc.insecure_channel(gateway.address, OWN_CONNECTION) as channel:
            events = list(gateway_pb2_grpc.GatewayStub(channel).DualChat(request, timeout=30))
        assert events[-1].HasField("summary")

    try:
        pids = wait_for_workers(log, 2)
        assert "cygrpc" not in maps_of(gateway.pid)
        assert sorted(pids) == [0, 1]
        with futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(dual_chat, range(CALLS)))
        assert {line["worker"] for line in lines_with(log, "dual chat finished")} == {0, 1}
    finally:
        status = gateway.stop()
        inference.stop()
    assert status == 0
    assert {line["worker"] for line in lines_with(log, "gateway stopped")} == {0, 1}


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port held by a gRPC server with gRPC's defaults (SO_REUSEPORT on), like a first `up`."""
    holder = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = holder.add_insecure_port("127.0.0.1:0")
    holder.start()
    yield port
    holder.stop(None)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_inference_service_on_a_taken_port_stops_with_one_line(
    taken_port: int, workers: str
) -> None:
    address = f"127.0.0.1:{taken_port}"
    result = run_service({**GOOD_AWS, "INFERENCE_LISTEN": address, "INFERENCE_WORKERS": workers})
    assert_refused_to_start(result, "inference_service", "INFERENCE_LISTEN", address, "in use")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_gateway_on_a_taken_port_stops_with_one_line(taken_port: int, workers: str) -> None:
    address = f"127.0.0.1:{taken_port}"
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--workers", workers],
        env={"PATH": os.environ["PATH"], "GATEWAY_LISTEN": address},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert_refused_to_start(result, "gateway", "GATEWAY_LISTEN", address, "in use")


def test_a_port_held_by_workers_is_refused_to_a_plain_listener(
    own_emulator: EmulatorHandle, log_dir: Path
) -> None:
    """What the workers share, nobody else takes: a plain bind (SO_REUSEADDR) fails."""
    log = log_dir / "gateway-workers-hold.log"
    gateway = start_service(
        "gateway",
        "GATEWAY_LISTEN",
        log,
        {"INFERENCE_TARGET": "127.0.0.1:1", "GATEWAY_WORKERS": "2"},
    )
    try:
        wait_for_workers(log, 2)
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError, match="in use"):
                other.bind(("127.0.0.1", gateway.port))
    finally:
        assert gateway.stop() == 0


def test_workers_that_cannot_start_say_why_once() -> None:
    # No credentials: worker 0 refuses with its one line; the supervisor adds nothing.
    env = {"AWS_REGION": "us-east-1", "INFERENCE_LISTEN": "127.0.0.1:0", "INFERENCE_WORKERS": "3"}
    result = run_service(env)
    assert_refused_to_start(result, "inference_service", "no AWS credentials")


def test_bad_worker_count_names_the_variable() -> None:
    result = run_service({**GOOD_AWS, "INFERENCE_WORKERS": "0"})
    assert_refused_to_start(result, "inference_service", "INFERENCE_WORKERS")


def test_each_worker_exports_under_its_own_instance_id(monkeypatch: pytest.MonkeyPatch) -> None:
    # An operator's id (the pod name) reaches every worker alike; their metric series
    # must still not collide, so each worker appends its index.
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-7")
    ids = [
        telemetry.build_resource("gateway", {}, worker=index).attributes["service.instance.id"]
        for index in (0, 1)
    ]
    assert ids == ["pod-7-worker-0", "pod-7-worker-1"]
    alone = telemetry.build_resource("gateway", {})
    assert alone.attributes["service.instance.id"] == "pod-7"
