"""Three inference replicas behind one gateway: spread, rolling SIGTERM restarts, a SIGKILL.

Real processes (dualnova.dev.stack with replicas=3, what `dualnova up --replicas 3`
runs, and `dualnova up --replicas 2` itself once): the gateway's INFERENCE_TARGET
is an ipv4: list of the three, balanced round robin, with gRPC's retry policy
for calls refused before any response and client-side health checking
(gateway.upstream.SERVICE_CONFIG). Which
replica served a route is read from its per-call log line ("chat finished",
with the Bedrock request id the route's start event carries). Short drain
delays and a fast emulator keep the module well under a minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from gateway_client import DualChatSeen, ask, read_dual_chat, route_converse_request
from gateway_client import dual_chat as one_dual_chat
from grpc_health.v1 import health_pb2, health_pb2_grpc
from processes import SERVICE_DEFAULTS

from bedrock_emulator.answers import compose_answer
from dualnova.dev.stack import Stack
from dualnova.gateway.v1 import gateway_pb2_grpc
from dualnova.server.grpc_server import common_server_options
from inference_service import config

REPLICAS = 3
MODELS = {"micro": "amazon.nova-micro-v1:0", "pro": "amazon.nova-pro-v1:0"}
# Seconds one DualChat may take here.
CALL_TIMEOUT_S = 20
INFERENCE_ENV = {
    "DUALNOVA_HEALTH_INTERVAL": "3600",
    # Long enough for the gateway's health checks to see NOT_SERVING (they are streams:
    # milliseconds), short enough for nine restarts in one test.
    "INFERENCE_SHUTDOWN_DELAY": "0.3",
    "INFERENCE_SHUTDOWN_GRACE": "10",
}
GATEWAY_ENV = {
    # Caps the gateway's reconnect backoff: a restarted replica is back in use within it.
    "DUALNOVA_HEALTH_INTERVAL": "0.3",
    "GATEWAY_SHUTDOWN_DELAY": "0",
}


def question(tag: str, index: int) -> str:
    return f"Replica question {tag}-{index}: which replica answers call {index}?"


def wrong(call: DualChatSeen) -> list[str]:
    """What is wrong with a call that should have succeeded on both routes, exactly."""
    where = f"DualChat {call.question[:28]!r}"
    if call.status != "OK":
        return [f"{where}: ended {call.status}"]
    found = [] if call.summary_last else [f"{where}: no summary last"]
    for route, model in MODELS.items():
        seen = call.routes.get(route)
        if seen is None:
            found.append(f"{where}: nothing for {route}")
        elif seen.error is not None:
            found.append(f"{where} {route}: {seen.error.code} {seen.error.message}")
        elif seen.text != compose_answer(model, route_converse_request(route, call.question)).text:
            found.append(f"{where} {route}: text differs from the emulator's answer")
    return found


def served_by(log: Path) -> dict[str, str]:
    """Request id -> status of every Chat this replica's log line says it finished."""
    served = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("message") == "chat finished" and record.get("request_id"):
            served[record["request_id"]] = record.get("status", "")
    return served


class Load:
    """`concurrency` DualChats at a time, each followed by the next, until stopped (a thread)."""

    def __init__(self, address: str, concurrency: int) -> None:
        self.calls: list[DualChatSeen] = []
        self._address = address
        self._concurrency = concurrency
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        channel = grpc.aio.insecure_channel(self._address)
        stub = gateway_pb2_grpc.GatewayStub(channel)

        async def worker(index: int) -> None:
            number = 0
            while not self._stop.is_set():
                self.calls.append(
                    await read_dual_chat(stub, question(f"load{index}", number), CALL_TIMEOUT_S)
                )
                number += 1

        try:
            await asyncio.gather(*(worker(index) for index in range(self._concurrency)))
        finally:
            await channel.close()

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(CALL_TIMEOUT_S + 5)


def logs(stack: Stack, log_dir: Path) -> list[Path]:
    return [log_dir / f"inference_service-{index}.log" for index in range(len(stack.replicas))]


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replicas")


@pytest.fixture(scope="module")
def stack(log_dir: Path) -> Iterator[Stack]:
    with Stack(
        pace=0.05,
        replicas=REPLICAS,
        log_dir=log_dir,
        inference_env=INFERENCE_ENV,
        gateway_env=GATEWAY_ENV,
    ) as running:
        yield running


def gateway_status(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        return (
            health_pb2_grpc.HealthStub(channel)
            .Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            .status
        )


async def many(address: str, tag: str, count: int) -> list[DualChatSeen]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        return await asyncio.gather(
            *(read_dual_chat(stub, question(tag, i), CALL_TIMEOUT_S) for i in range(count))
        )


@pytest.mark.timeout(60)
def test_every_replica_serves_a_fair_share(stack: Stack, log_dir: Path) -> None:
    calls = asyncio.run(many(stack.gateway.address, "spread", 300))

    found = [problem for call in calls for problem in wrong(call)]
    assert not found, f"{len(found)} problems, first: {found[:5]}"
    ids = {seen.request_id for call in calls for seen in call.routes.values()}
    shares = [len(ids & served_by(log).keys()) for log in logs(stack, log_dir)]
    assert sum(shares) == len(ids) == 600, shares
    assert min(shares) >= 0.2 * len(ids), f"routes per replica: {shares}"


@pytest.mark.timeout(90)
def test_rolling_sigterm_restarts_fail_no_dual_chat(stack: Stack) -> None:
    restarted = 0
    with Load(stack.gateway.address, 50) as load:
        time.sleep(0.5)
        for _ in range(3):
            for replica in stack.replicas:
                assert replica.stop(signal.SIGTERM) == 0, f"{replica.name} did not drain cleanly"
                replica.start()
                restarted += 1
                # The gateway reconnects within its capped backoff (0.3 s).
                time.sleep(0.5)
        time.sleep(0.3)
    calls = list(load.calls)

    assert restarted == 9
    assert len(calls) >= 300, f"only {len(calls)} DualChats ran"
    found = [problem for call in calls for problem in wrong(call)]
    assert not found, f"{len(found)} of {len(calls)} DualChats wrong, first: {found[:5]}"


@pytest.mark.timeout(60)
def test_sigkill_of_a_replica_fails_only_its_streams(stack: Stack, log_dir: Path) -> None:
    # Slow enough that every stream is still running when the replica dies.
    stack.emulator.set_pace(1.0)
    victim = stack.replicas[1]
    try:
        address = stack.gateway.address

        async def scenario() -> tuple[list[DualChatSeen], list[DualChatSeen], float]:
            running = asyncio.ensure_future(many(address, "kill", 30))
            await asyncio.sleep(0.6)
            killed = time.monotonic()
            await asyncio.to_thread(victim.stop, signal.SIGKILL)
            stack.emulator.set_pace(0.05)
            after = []
            for index in range(5):
                after.append(asyncio.ensure_future(many(address, f"after{index}", 2)))
                await asyncio.sleep(0.2)
            return await running, [c for batch in after for c in await batch], killed

        async def watched() -> tuple[list[DualChatSeen], list[DualChatSeen], float, list[int]]:
            # The gateway's "" every 50 ms from before the kill until the calls end.
            statuses: list[int] = []
            done = asyncio.Event()

            async def poll() -> None:
                async with grpc.aio.insecure_channel(address) as channel:
                    health = health_pb2_grpc.HealthStub(channel)
                    while not done.is_set():
                        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                        statuses.append(reply.status)
                        await asyncio.sleep(0.05)

            poller = asyncio.ensure_future(poll())
            try:
                before, after, killed = await scenario()
            finally:
                done.set()
                await poller
            return before, after, killed, statuses

        before, after, killed, statuses = asyncio.run(watched())
        serving = health_pb2.HealthCheckResponse.SERVING
        assert len(statuses) > 20 and set(statuses) == {serving}, statuses
        assert gateway_status(address) == serving
    finally:
        stack.emulator.set_pace(0.05)
        if not victim.running:
            victim.start()

    survivors: dict[str, str] = {}
    for replica, log in zip(stack.replicas, logs(stack, log_dir), strict=True):
        if replica is not victim:
            survivors.update(served_by(log))
    failed = [
        (call, route, seen)
        for call in before
        for route, seen in call.routes.items()
        if seen.error is not None
    ]
    assert failed, "no stream failed: the killed replica served none of them"
    for _call, route, seen in failed:
        assert seen.error.code == "UNAVAILABLE", (route, seen.error)
        assert seen.request_id not in survivors, f"a surviving replica's stream failed: {seen}"
    assert all(call.status == "OK" and call.summary_last for call in before)
    for call in before:
        for route, model in MODELS.items():
            seen = call.routes[route]
            if seen.error is None:
                expected = compose_answer(model, route_converse_request(route, call.question))
                assert seen.text == expected.text, f"{call.question} {route}"
    # New calls from the kill on: all succeed, the first within a second of it.
    found = [problem for call in after for problem in wrong(call)]
    assert not found, found
    assert min(call.started for call in after) - killed < 1.0


def test_the_inference_server_caps_connection_age() -> None:
    settings = config.load(
        {"INFERENCE_MAX_CONNECTION_AGE": "30", "INFERENCE_MAX_CONNECTION_AGE_GRACE": "5"}
    )
    options = dict(
        common_server_options(
            reuse_port=False,
            pending_calls=1,
            max_connection_age=(
                settings.max_connection_age_s,
                settings.max_connection_age_grace_s,
            ),
        )
    )
    assert options["grpc.max_connection_age_ms"] == 30_000
    assert options["grpc.max_connection_age_grace_ms"] == 5_000
    never = dict(
        common_server_options(reuse_port=False, pending_calls=1, max_connection_age=(0, 5))
    )
    assert "grpc.max_connection_age_ms" not in never
    assert config.Settings().max_connection_age_s == 300.0


@pytest.mark.timeout(60)
def test_up_runs_replicas_behind_one_gateway(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    up = subprocess.Popen(
        [sys.executable, "-m", "dualnova.cli.main", "up", "--pace", "0", "--replicas", "2"]
        + ["--gateway-port", "0", "--inference-port", "0", "--log-dir", str(tmp_path)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **SERVICE_DEFAULTS, "PYTHONPATH": str(root)},
    )
    try:
        banner = []
        assert up.stdout is not None
        for line in up.stdout:
            banner.append(line)
            if "dualnova chat --gateway" in line:
                break
        text = "".join(banner)
        assert "inference service 0" in text and "inference service 1" in text, text
        gateway = text.split("dualnova chat --gateway ")[1].split()[0]
        for index in range(4):
            result = one_dual_chat(gateway, ask(f"replica question {index}"))
            assert all(route.error is None for route in result.routes.values())
        served = [served_by(tmp_path / f"inference_service-{index}.log") for index in range(2)]
        assert all(served), f"Chats per replica: {[len(ids) for ids in served]}"
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
