"""A gateway whose inference service is gone says so, in words that name it and its address.

What a caller relies on: a route that fails because the gateway cannot reach
the inference service ends with an error event reading `the inference
service at HOST:PORT is unreachable: <gRPC's words>` (INFERENCE_TARGET as
configured), still UNAVAILABLE; an error the inference service sent itself
(Bedrock unavailable) keeps its own words; and the gateway's health says the
same for `inference` and both routes, in its log and through
`dualnova health --all`.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from gateway_client import ask, dual_chat
from health_support import start_gateway, start_inference, wait_for_statuses
from polling import wait_until
from test_health_cli import dualnova_health, rows

from dualnova.dev.stack import HOST, EmulatorHandle, ServiceHandle, free_port
from dualnova.gateway.v1 import gateway_pb2_grpc
from dualnova.health.v1 import health_pb2 as details_pb2
from dualnova.health.v1 import health_pb2_grpc as details_pb2_grpc

MICRO = "amazon.nova-micro-v1:0"
GATEWAY_DEPENDENCIES = ("inference", "route/micro", "route/pro")


def unreachable(target: str) -> str:
    return f"the inference service at {target} is unreachable: "


def log_lines(log: Path) -> list[dict]:
    text = log.read_text() if log.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def details(address: str) -> dict[str, details_pb2.HealthDetails]:
    with grpc.insecure_channel(address) as channel:
        response = details_pb2_grpc.HealthDetailsServiceStub(channel).ListDetails(
            details_pb2.ListDetailsRequest(), timeout=5
        )
    return dict(response.details)


@pytest.fixture(scope="module")
def nowhere() -> str:
    """An INFERENCE_TARGET where nothing listens."""
    return f"{HOST}:{free_port()}"


@pytest.fixture(scope="module")
def stranded(nowhere: str, log_dir: Path) -> Iterator[ServiceHandle]:
    """A gateway pointed at `nowhere`."""
    handle = ServiceHandle(
        "gateway (stranded)",
        "gateway",
        "GATEWAY_LISTEN",
        {
            "DUALNOVA_HEALTH_INTERVAL": "0.5",
            "GATEWAY_SHUTDOWN_DELAY": "0",
            "INFERENCE_TARGET": nowhere,
        },
        log_path=log_dir / "gateway-stranded.log",
    )
    handle.start()
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def upstream(own_emulator: EmulatorHandle, log_dir: Path) -> Iterator[ServiceHandle]:
    handle = start_inference(own_emulator, log_dir, "unreachable")
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def relay(upstream: ServiceHandle, log_dir: Path) -> Iterator[ServiceHandle]:
    handle = start_gateway(upstream, log_dir, "unreachable")
    yield handle
    handle.stop()


@pytest.fixture
def pair(
    own_emulator: EmulatorHandle, upstream: ServiceHandle, relay: ServiceHandle
) -> Iterator[tuple[ServiceHandle, ServiceHandle]]:
    """The inference service and its gateway, running and SERVING, with a clean emulator."""
    for process in (own_emulator, upstream):
        if not process.running:
            process.start()
    own_emulator.reset()
    wait_for_statuses(relay.address, {"": "SERVING", "route/micro": "SERVING"})
    yield upstream, relay
    for process in (own_emulator, upstream):
        if not process.running:
            process.start()
    own_emulator.clear_faults()


def test_both_routes_name_the_inference_service_they_cannot_reach(
    stranded: ServiceHandle, nowhere: str
) -> None:
    result = dual_chat(stranded.address, ask("Is anyone there?"), timeout=15)
    for route in ("micro", "pro"):
        error = result.routes[route].error
        assert error is not None, route
        assert error.code == "UNAVAILABLE"
        assert error.message.startswith(unreachable(nowhere)), error.message
        # gRPC's own words follow, so nothing it said is lost.
        assert "Connection refused" in error.message
    assert result.summary.trace_id  # the call itself still ends with its summary


def test_the_stranded_gateway_logs_why_at_once_and_lists_the_reason(
    stranded: ServiceHandle, nowhere: str, log_dir: Path
) -> None:
    def said_why() -> list[dict] | None:
        lines = [
            line
            for line in log_lines(log_dir / "gateway-stranded.log")
            if line["message"].startswith("health 'inference' is now NOT_SERVING")
        ]
        return lines or None

    (line,) = wait_until(said_why, "the gateway's log line saying why 'inference' is down")
    assert unreachable(nowhere) in line["message"]
    assert line["error"].startswith(unreachable(nowhere))
    assert line["level"] == "warning"

    result = dualnova_health("--addr", stranded.address, "--all", "--timeout", "5")
    assert result.returncode == 4  # "" is NOT_SERVING
    table = rows(result.stdout)
    for name in GATEWAY_DEPENDENCIES:
        status, _since, reason = table[name]
        assert status == "NOT_SERVING"
        assert reason.startswith(unreachable(nowhere)), (name, reason)
    # The server's own names say which of its dependencies are down, and why.
    assert table[""][2].startswith("inference, route/micro, route/pro are NOT_SERVING: ")
    assert "is unreachable" in result.stderr  # the verdict for "" carries its reason too


def test_an_error_the_inference_service_sent_keeps_its_words(
    pair: tuple[ServiceHandle, ServiceHandle], own_emulator: EmulatorHandle
) -> None:
    _, gateway = pair
    own_emulator.add_fault(kind="service_unavailable", model=MICRO, operations=["ConverseStream"])
    result = dual_chat(gateway.address, ask("Still there?"), timeout=15)
    error = result.routes["micro"].error
    assert error is not None and error.code == "UNAVAILABLE"
    assert error.message.startswith("Bedrock is unavailable"), error.message
    assert "inference service at" not in error.message
    assert result.routes["pro"].stop is not None  # the other route went on


def test_an_inference_service_killed_mid_answer_is_named(
    pair: tuple[ServiceHandle, ServiceHandle], own_emulator: EmulatorHandle
) -> None:
    inference, gateway = pair
    own_emulator.add_fault(kind="hang", after_deltas=1)  # both routes wait after a delta
    errors = {}
    with grpc.insecure_channel(gateway.address) as channel:
        call = gateway_pb2_grpc.GatewayStub(channel).DualChat(ask("Tell me more"), timeout=30)
        delivered: set[str] = set()
        for response in call:
            kind = response.WhichOneof("event")
            if kind == "delta":
                delivered.add(response.route)
                if delivered == {"micro", "pro"} and inference.running:
                    inference.stop(signal.SIGKILL)  # no goodbye: the connections just drop
            elif kind == "error":
                errors[response.route] = response.error
    assert set(errors) == {"micro", "pro"}
    for route, error in errors.items():
        assert error.code == "UNAVAILABLE", (route, error)
        assert error.message.startswith(unreachable(inference.address)), error.message


def test_health_follows_the_inference_service_going_and_says_why(
    pair: tuple[ServiceHandle, ServiceHandle],
) -> None:
    inference, gateway = pair
    inference.stop(signal.SIGKILL)
    wait_for_statuses(gateway.address, {"inference": "NOT_SERVING"})

    def reason_named() -> dict[str, details_pb2.HealthDetails] | None:
        now = details(gateway.address)
        return now if now["inference"].reason.startswith(unreachable(inference.address)) else None

    now = wait_until(reason_named, "the gateway's reason for 'inference' to name its address")
    assert now["inference"].status == details_pb2.SERVING_STATUS_NOT_SERVING
    assert now["route/micro"].reason == now["inference"].reason


def test_an_inference_service_that_reports_not_serving_is_named_as_such(
    pair: tuple[ServiceHandle, ServiceHandle], own_emulator: EmulatorHandle
) -> None:
    inference, gateway = pair
    own_emulator.stop()  # Bedrock gone: the inference service answers, NOT_SERVING
    wait_for_statuses(gateway.address, {"inference": "NOT_SERVING"})
    result = dual_chat(gateway.address, ask("Anyone serving?"), timeout=15)
    for route in ("micro", "pro"):
        error = result.routes[route].error
        assert error is not None and error.code == "UNAVAILABLE", route
        # Reachable, so not "unreachable": client-side health checking found no SERVING replica.
        assert error.message.startswith(
            f"the inference service at {inference.address} is not serving"
        ), error.message
    # The gateway's health says why, in the inference service's own words.
    reason = details(gateway.address)["inference"].reason
    assert reason.startswith(
        f"the inference service at {inference.address} reports '' NOT_SERVING: "
    )
    assert "EndpointConnectionError" in reason
