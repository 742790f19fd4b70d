"""The gateway's health follows the inference service's, through a Watch stream.

What a platform relies on: route/micro and route/pro say whether each half of
DualChat can answer, `inference` whether the inference service can be used at
all, and "" stays SERVING while one route is; all of it recovers on its own
when the inference service comes back on the same address.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from health_support import (
    listed,
    start_gateway,
    start_inference,
    wait_for_statuses,
    watching,
)

from dualnova.dev.stack import EmulatorHandle, ServiceHandle

MICRO = "amazon.nova-micro-v1:0"
GATEWAY_NAMES = ("", "dualnova.gateway.v1.Gateway", "inference", "route/micro", "route/pro")
ALL_SERVING = dict.fromkeys(GATEWAY_NAMES, "SERVING")


@pytest.fixture(scope="module")
def upstream(own_emulator: EmulatorHandle, log_dir: Path) -> Iterator[ServiceHandle]:
    handle = start_inference(own_emulator, log_dir, "gateway-health")
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def followed(upstream: ServiceHandle, log_dir: Path) -> Iterator[ServiceHandle]:
    handle = start_gateway(upstream, log_dir, "health")
    yield handle
    handle.stop()


@pytest.fixture
def healthy(
    own_emulator: EmulatorHandle, upstream: ServiceHandle, followed: ServiceHandle
) -> Iterator[ServiceHandle]:
    """The gateway, once everything behind it is running and SERVING again."""
    for process in (own_emulator, upstream):
        if not process.running:
            process.start()
    own_emulator.reset()
    wait_for_statuses(followed.address, ALL_SERVING)
    yield followed
    own_emulator.clear_faults()
    for process in (own_emulator, upstream):
        if not process.running:
            process.start()


def test_gateway_lists_its_names_all_serving_behind_a_healthy_inference_service(
    healthy: ServiceHandle,
) -> None:
    assert listed(healthy.address) == ALL_SERVING


def test_unknown_name_on_the_gateway(healthy: ServiceHandle) -> None:
    with grpc.insecure_channel(healthy.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Check(health_pb2.HealthCheckRequest(service="bedrock-runtime"), timeout=5)
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND
        watch = stub.Watch(health_pb2.HealthCheckRequest(service="route/premier"), timeout=5)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        watch.cancel()


def test_a_denied_model_takes_only_its_route_out(
    healthy: ServiceHandle, own_emulator: EmulatorHandle, upstream: ServiceHandle
) -> None:
    own_emulator.add_fault(kind="access_denied", model=MICRO)
    statuses = wait_for_statuses(healthy.address, {"route/micro": "NOT_SERVING"})
    assert statuses == {**ALL_SERVING, "route/micro": "NOT_SERVING"}
    assert listed(upstream.address)["model/micro"] == "NOT_SERVING"

    own_emulator.clear_faults()
    wait_for_statuses(healthy.address, ALL_SERVING)


def test_bedrock_gone_takes_the_gateway_out_and_back(
    healthy: ServiceHandle, own_emulator: EmulatorHandle
) -> None:
    with watching(healthy.address, "") as server:
        server.wait_for("SERVING")
        stopping_at = time.monotonic()
        own_emulator.stop()
        server.wait_for("NOT_SERVING", since=stopping_at)
        statuses = listed(healthy.address)
        # The inference service answers, but cannot serve Chat: the gateway's dependency is down.
        assert statuses == dict.fromkeys(GATEWAY_NAMES, "NOT_SERVING")

        restarting_at = time.monotonic()
        own_emulator.start()
        server.wait_for("SERVING", since=restarting_at)
    wait_for_statuses(healthy.address, ALL_SERVING)


def test_killed_inference_service_is_noticed_and_its_return_too(
    healthy: ServiceHandle, upstream: ServiceHandle
) -> None:
    with (
        watching(healthy.address, "inference") as inference,
        watching(healthy.address, "") as server,
    ):
        inference.wait_for("SERVING")
        killing_at = time.monotonic()
        upstream.stop(signal.SIGKILL)  # no goodbye: the connection just drops
        inference.wait_for("NOT_SERVING", since=killing_at)
        server.wait_for("NOT_SERVING", since=killing_at)
        assert listed(healthy.address) == dict.fromkeys(GATEWAY_NAMES, "NOT_SERVING")

        restarting_at = time.monotonic()
        upstream.start()  # the same address, as a restarted container would have
        inference.wait_for("SERVING", since=restarting_at)
        server.wait_for("SERVING", since=restarting_at)
    wait_for_statuses(healthy.address, ALL_SERVING)
