"""Why a health name is down: dualnova.health.v1 ListDetails, and one log line per transition.

What an operator relies on: both servers answer ListDetails for the same
names and statuses as grpc.health.v1 List, each with the reason (the last
probe's error, such as Bedrock's error code and message; empty when SERVING)
and when it last changed; it needs no token where DualChat does; an
inference service that starts with credentials Bedrock refuses, or with
Bedrock unreachable, says why in its first lines (every name once, before
"listening"), and later transitions are logged once each, with their cause.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from gateway_client import ask, dual_chat
from health_support import listed, start_gateway, start_inference, wait_for_statuses
from polling import wait_until
from telemetry_support import OtlpCollector, Pair

from dualnova.dev.stack import HOST, EmulatorHandle, ServiceHandle, free_port
from dualnova.health.v1 import health_pb2 as details_pb2
from dualnova.health.v1 import health_pb2_grpc as details_pb2_grpc
from dualnova.server.health_service import HealthServicer, StatusBoard

MICRO = "amazon.nova-micro-v1:0"
INFERENCE_NAMES = (
    "",
    "dualnova.inference.v1.InferenceService",
    "bedrock-runtime",
    "bedrock",
    "model/micro",
    "model/pro",
)
SERVING = details_pb2.SERVING_STATUS_SERVING
NOT_SERVING = details_pb2.SERVING_STATUS_NOT_SERVING
STATUS_NAMES = {SERVING: "SERVING", NOT_SERVING: "NOT_SERVING"}
TOKEN = "details-test-token"


def details(address: str, metadata: tuple[tuple[str, str], ...] = ()) -> dict[str, object]:
    with grpc.insecure_channel(address) as channel:
        response = details_pb2_grpc.HealthDetailsServiceStub(channel).ListDetails(
            details_pb2.ListDetailsRequest(), timeout=5, metadata=metadata
        )
    return dict(response.details)


def inference_log(log_dir: Path, name: str) -> Path:
    """Where health_support.start_inference(..., name) writes the process's log."""
    return log_dir / f"inference_service-{name}.log"


def health_lines(log: Path) -> list[dict]:
    """The health transition lines (and the start line) of a JSON log, oldest first."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line[:1] == "{"]
    return [
        line
        for line in lines
        if line["message"].startswith(("health '", "inference service listening"))
    ]


def transitions(log: Path, name: str) -> list[dict]:
    return [
        line for line in health_lines(log) if line["message"].startswith(f"health {name!r} is now")
    ]


@pytest.fixture(scope="module")
def inference(own_emulator: EmulatorHandle, log_dir: Path) -> Iterator[ServiceHandle]:
    handle = start_inference(own_emulator, log_dir, "details")
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def locked_gateway(inference: ServiceHandle, log_dir: Path) -> Iterator[ServiceHandle]:
    """A gateway whose DualChat needs a bearer token."""
    handle = start_gateway(inference, log_dir, "details", GATEWAY_AUTH_TOKENS=f"ops:{TOKEN}")
    yield handle
    handle.stop()


@pytest.fixture
def micro_denied(own_emulator: EmulatorHandle, inference: ServiceHandle) -> Iterator[float]:
    """Bedrock denies Micro; yields the wall-clock time just before the fault went in."""
    own_emulator.reset()
    wait_for_statuses(inference.address, {"model/micro": "SERVING"})
    before = time.time()
    own_emulator.add_fault(kind="access_denied", model=MICRO)
    wait_for_statuses(inference.address, {"model/micro": "NOT_SERVING"})
    yield before
    own_emulator.clear_faults()
    wait_for_statuses(inference.address, {"model/micro": "SERVING"})


def test_details_match_list_and_say_why_a_model_is_down(
    micro_denied: float, inference: ServiceHandle
) -> None:
    now = details(inference.address)
    assert set(now) == set(INFERENCE_NAMES)
    assert {name: STATUS_NAMES[d.status] for name, d in now.items()} == listed(inference.address)
    micro = now["model/micro"]
    assert micro.status == NOT_SERVING
    assert micro.reason.startswith("AccessDeniedException: "), micro.reason
    changed = micro.change_time.ToNanoseconds() / 1e9
    # The same clock on both sides; the slack is for its resolution, not for speed.
    assert micro_denied - 1 <= changed <= time.time() + 1
    for name in ("", "bedrock-runtime", "bedrock", "model/pro"):
        assert now[name].status == SERVING and now[name].reason == "", name
        assert now[name].change_time.ToNanoseconds() / 1e9 <= changed


def test_the_transition_was_logged_once_with_bedrocks_words(
    micro_denied: float, own_emulator: EmulatorHandle, log_dir: Path
) -> None:
    rounds = sum(e["operation"] == "ListAsyncInvokes" for e in own_emulator.requests())

    def three_more_rounds() -> bool:
        done = sum(e["operation"] == "ListAsyncInvokes" for e in own_emulator.requests())
        return done >= rounds + 3

    wait_until(three_more_rounds, "three more probe rounds")
    lines = transitions(inference_log(log_dir, "details"), "model/micro")
    # Since it was last SERVING (the fixture waited for that before Bedrock denied Micro).
    last_up = max(i for i, line in enumerate(lines) if line["status"] == "SERVING")
    down = lines[last_up + 1 :]
    assert len(down) == 1, down  # once, at the transition, not once per probe
    assert "AccessDeniedException" in down[0]["message"]
    assert down[0]["error"].startswith("AccessDeniedException: ")
    assert down[0]["level"] == "warning"


def test_details_need_no_token_where_dualchat_does(locked_gateway: ServiceHandle) -> None:
    wait_for_statuses(locked_gateway.address, {"": "SERVING"})
    now = details(locked_gateway.address)
    assert set(now) == {"", "dualnova.gateway.v1.Gateway", "inference", "route/micro", "route/pro"}
    assert all(d.status == SERVING and d.reason == "" for d in now.values())
    # A token is ignored rather than checked (a proxy in front may want one).
    assert set(details(locked_gateway.address, (("authorization", "Bearer wrong"),))) == set(now)


def test_the_gateway_relays_the_inference_services_reason(
    micro_denied: float, inference: ServiceHandle, locked_gateway: ServiceHandle
) -> None:
    wait_for_statuses(locked_gateway.address, {"route/micro": "NOT_SERVING"})
    route = details(locked_gateway.address)["route/micro"]
    assert route.reason.startswith(
        f"the inference service at {inference.address} reports"
        " 'model/micro' NOT_SERVING: AccessDeniedException: "
    ), route.reason


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        ("credentials-refused", "credentials refused (UnrecognizedClientException): "),
        ("bedrock-unreachable", "EndpointConnectionError: "),
    ],
)
def test_an_inference_service_that_starts_unhealthy_says_why_before_listening(
    own_emulator: EmulatorHandle, log_dir: Path, fault: str, cause: str
) -> None:
    nowhere = f"http://{HOST}:{free_port()}"
    env = (
        {"AWS_ACCESS_KEY_ID": "INVALIDKEY0000"}  # the emulator refuses it as AWS would
        if fault == "credentials-refused"
        else {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": nowhere, "AWS_ENDPOINT_URL_BEDROCK": nowhere}
    )
    handle = start_inference(own_emulator, log_dir, fault, **env)
    try:
        lines = health_lines(inference_log(log_dir, fault))
        listening = next(
            i
            for i, line in enumerate(lines)
            if line["message"].startswith("inference service listening")
        )
        first = lines[:listening]
        # Every name once ("" stands for the service name too), each with the probe's error.
        assert sorted(line["message"].split("'")[1] for line in first) == sorted(
            set(INFERENCE_NAMES) - {"dualnova.inference.v1.InferenceService"}
        ), first
        assert all(cause in line["message"] for line in first), first
        assert all(line["status"] == "NOT_SERVING" and cause in line["error"] for line in first)
        (server,) = [line for line in first if line["message"].startswith("health '' is now")]
        assert server["message"].startswith("health '' is now NOT_SERVING: bedrock-runtime")
        # ListDetails says the same.
        now = details(handle.address)
        assert all(d.status == NOT_SERVING for d in now.values())
        assert all(cause in d.reason for d in now.values())
    finally:
        handle.stop()


def test_details_are_not_traced_like_health(exporting_pair: Pair, collector: OtlpCollector) -> None:
    trace_id = secrets.token_hex(16)
    traceparent = (("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"),)
    for handle in (exporting_pair.inference, exporting_pair.gateway):
        assert details(handle.address, traceparent)  # a sampled caller's trace...
    # ...gets no span, while a DualChat after it does (its spans export after any of ours).
    later = dual_chat(exporting_pair.gateway.address, ask("And now?")).summary.trace_id
    collector.wait_for_trace(later, 7)
    assert collector.spans(trace_id) == []


# ---- the board itself, in-process: what is logged, and what the details say -----------


def test_each_names_first_state_and_each_change_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> HealthServicer:
        servicer = HealthServicer()
        board = StatusBoard(
            servicer,
            service_name="test.v1.Service",
            dependencies=("a", "b"),
            overall=lambda states: states["a"] and states["b"],
        )
        await board.publish()
        await board.set("a", False, "a is broken")
        await board.set("a", False, "a is broken")  # no news: no line
        await board.set("a", False, "a is broken differently")  # a new reason: no line either
        await board.set("b", False, "a is broken differently")
        await board.set("a", True, "a was fixed")
        await board.set("b", True, "b was fixed")
        await servicer.enter_graceful_shutdown()
        return servicer

    from dualnova.server.health_service import SHUTTING_DOWN  # imported here: new in this module

    with caplog.at_level(logging.INFO, logger="dualnova.server.health_service"):
        servicer = asyncio.run(scenario())
    assert [record.getMessage() for record in caplog.records] == [
        "health 'a' is now NOT_SERVING: a is broken",
        "health 'b' is now NOT_SERVING: a is broken differently",
        "health '' is now NOT_SERVING: a, b are NOT_SERVING: a is broken differently",
        "health 'a' is now SERVING: a was fixed",
        "health 'b' is now SERVING: b was fixed",
        "health '' is now SERVING: a, b are SERVING",
        "health '', 'a', 'b', 'test.v1.Service' now NOT_SERVING: the server is shutting down",
    ]
    assert {name: state.reason for name, state in servicer.details().items()} == dict.fromkeys(
        ("", "a", "b", "test.v1.Service"), SHUTTING_DOWN
    )
