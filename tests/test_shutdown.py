"""Graceful shutdown: what a rolling deploy relies on when a replica gets SIGTERM.

Health turns NOT_SERVING at once, new calls are still accepted for the
configured delay, then refused; a stream already running finishes; the
process exits 0. Ctrl-C (SIGINT) skips the delay. The same for both servers.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import grpc
from health_support import (
    check,
    question,
    start_gateway,
    start_inference,
    wait_for_statuses,
    watching,
)
from polling import wait_until

from bedrock_emulator.answers import compose_answer
from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.inference.v1 import inference_pb2_grpc

MICRO = "amazon.nova-micro-v1:0"
QUESTION = "What does a readiness probe check?"
DELAY_S = 1.5
SLOW_DELTA_MS = 150


class StreamReader:
    """A server stream consumed on a thread: its events, how it ended, and when."""

    def __init__(self, responses: grpc.Future) -> None:
        self.events: list[object] = []
        self.code: grpc.StatusCode | None = None
        self.finished = threading.Event()
        self._responses = responses
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._responses:
                self.events.append(event)
            self.code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            self.code = error.code()
        finally:
            self.finished.set()

    def text(self) -> str:
        return "".join(e.delta.text for e in self.events if e.HasField("delta"))


def refused(address: str) -> bool:
    """True once the server no longer takes new calls."""
    try:
        check(address, "")
    except grpc.RpcError as error:
        return error.code() is grpc.StatusCode.UNAVAILABLE
    return False


def test_sigterm_drains_the_inference_service(own_emulator: EmulatorHandle, log_dir: Path) -> None:
    own_emulator.reset()
    service = start_inference(
        own_emulator,
        log_dir,
        "sigterm",
        INFERENCE_SHUTDOWN_DELAY=str(DELAY_S),
        INFERENCE_SHUTDOWN_GRACE="30",
    )
    try:
        wait_for_statuses(service.address, {"": "SERVING"})
        own_emulator.add_fault(kind="slow", delay_ms=SLOW_DELTA_MS, times=1)
        with (
            grpc.insecure_channel(service.address) as channel,
            watching(service.address, "") as server_health,
        ):
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            stream = StreamReader(stub.Chat(question("micro", QUESTION), timeout=60))
            wait_until(lambda: any(e.HasField("delta") for e in stream.events), "a first delta")
            server_health.wait_for("SERVING")

            os.kill(service.pid, signal.SIGTERM)
            server_health.wait_for("NOT_SERVING")
            assert not stream.finished.is_set()  # flipped while the stream was still running
            # Still accepting during the delay: new calls are answered, with the truth.
            assert check(service.address, "bedrock-runtime") == "NOT_SERVING"
            wait_until(lambda: server_health.ended.is_set(), "the Watch stream to end")
            assert server_health.error is None  # ended with OK: followers retry elsewhere

            wait_until(lambda: refused(service.address), "new calls to be refused")
            assert not stream.finished.is_set()  # refused while the old stream still ran
            assert stream.finished.wait(30)
        # It exits on its own; a second SIGTERM from stop() could race its last steps.
        wait_until(lambda: not service.running, "the process to exit")
        assert stream.code is grpc.StatusCode.OK
        kinds = [e.WhichOneof("event") for e in stream.events]
        assert kinds[0] == "start" and kinds[-2:] == ["usage", "stop"]
        (sent,) = [e for e in own_emulator.requests() if e["operation"] == "ConverseStream"]
        assert sent["completed"] and not sent["disconnected"]
        assert stream.text() == compose_answer(MICRO, sent["body"]).text
    finally:
        status = service.stop()
    assert status == 0


def test_sigint_skips_the_delay(own_emulator: EmulatorHandle, log_dir: Path) -> None:
    # With a minute of delay, only skipping it lets the process exit before
    # dualnova.dev.stack gives up waiting and kills it (status -9).
    service = start_inference(own_emulator, log_dir, "sigint", INFERENCE_SHUTDOWN_DELAY="60")
    assert service.stop(signal.SIGINT) == 0


def test_sigterm_with_no_calls_exits_0(own_emulator: EmulatorHandle, log_dir: Path) -> None:
    service = start_inference(own_emulator, log_dir, "idle", INFERENCE_SHUTDOWN_DELAY="0.2")
    with watching(service.address, "model/micro") as watcher:
        watcher.wait_for("SERVING")
        started = time.monotonic()
        assert service.stop() == 0
        watcher.wait_for("NOT_SERVING", since=started)


def test_sigterm_drains_the_gateway(own_emulator: EmulatorHandle, log_dir: Path) -> None:
    own_emulator.reset()
    inference = start_inference(own_emulator, log_dir, "behind-draining-gateway")
    gateway = start_gateway(
        inference,
        log_dir,
        "sigterm",
        GATEWAY_SHUTDOWN_DELAY=str(DELAY_S),
        GATEWAY_SHUTDOWN_GRACE="30",
    )
    try:
        wait_for_statuses(gateway.address, {"": "SERVING"})
        own_emulator.add_fault(kind="slow", model=MICRO, delay_ms=SLOW_DELTA_MS, times=1)
        request = gateway_pb2.DualChatRequest(
            messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, text=QUESTION)]
        )
        with (
            grpc.insecure_channel(gateway.address) as channel,
            watching(gateway.address, "") as gateway_health,
        ):
            stream = StreamReader(
                gateway_pb2_grpc.GatewayStub(channel).DualChat(request, timeout=60)
            )
            wait_until(
                lambda: any(e.route == "micro" and e.HasField("delta") for e in stream.events),
                "a first Micro delta",
            )
            gateway_health.wait_for("SERVING")

            os.kill(gateway.pid, signal.SIGTERM)
            gateway_health.wait_for("NOT_SERVING")
            assert not stream.finished.is_set()
            assert check(gateway.address, "route/micro") == "NOT_SERVING"  # still answering
            assert stream.finished.wait(30)
        wait_until(lambda: not gateway.running, "the gateway to exit")
        assert stream.code is grpc.StatusCode.OK
        kinds = [(e.route, e.WhichOneof("event")) for e in stream.events]
        assert kinds[-1] == ("", "summary")
        assert ("micro", "stop") in kinds and ("pro", "stop") in kinds
        assert not any(kind == "error" for _, kind in kinds)
        assert set(stream.events[-1].summary.usage_by_route) == {"micro", "pro"}
    finally:
        status = gateway.stop()
        inference.stop()
    assert status == 0
