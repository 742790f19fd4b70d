"""`python -m gateway` as a process: start-up checks, probes, reflection, clean stop."""

from __future__ import annotations

import signal
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from processes import SERVICE_DEFAULTS
from startup import assert_refused_to_start

from dualnova.dev.stack import ServiceHandle


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("INFERENCE_TARGET", "inference"),
        ("GATEWAY_LISTEN", "127.0.0.1"),
        ("GATEWAY_MAX_CONNECTION_AGE", "soon"),
        ("GATEWAY_PRO_TEMPERATURE", "1.5"),
    ],
)
def test_bad_setting_stops_the_gateway_with_one_line_naming_it(variable: str, value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway"],
        env={"PATH": "/usr/bin:/bin", variable: value},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert_refused_to_start(result, "gateway", variable)


def test_flag_stands_for_its_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--inference-target", "dns:///"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "INFERENCE_TARGET='dns:///'" in result.stderr


def test_gateway_serves_health_and_reflection_and_stops_on_sigterm() -> None:
    # Nothing listens upstream: the gateway still serves health and reflection, and
    # reports every route (so "" too) NOT_SERVING rather than failing to answer.
    gateway = ServiceHandle(
        "gateway",
        "gateway",
        "GATEWAY_LISTEN",
        {**SERVICE_DEFAULTS, "INFERENCE_TARGET": "dns:///localhost:1"},
    )
    gateway.start()
    try:
        with grpc.insecure_channel(gateway.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in (
                "",
                "dualnova.gateway.v1.Gateway",
                "inference",
                "route/micro",
                "route/pro",
            ):
                reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING, name

            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            answers = reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            services = {s.name for a in answers for s in a.list_services_response.service}
            assert "dualnova.gateway.v1.Gateway" in services
            assert "grpc.health.v1.Health" in services
    finally:
        status = gateway.stop(signal.SIGTERM)
    assert status == 0
