"""The inference service's grpc.health.v1: a true status per dependency, Check, Watch and List.

What a platform or an operator relies on: unknown names answer as the gRPC
spec says; bedrock-runtime follows the emulator going away and coming back
within two probe intervals; a model Bedrock denies turns only its own name
NOT_SERVING; real calls failing for want of Bedrock count, throttling does
not; and no probe ever runs paid inference.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import boto3
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from health_support import (
    INTERVAL_S,
    SLACK_S,
    check,
    listed,
    question,
    start_inference,
    wait_for_statuses,
    watching,
)
from polling import wait_until

from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.inference.v1 import inference_pb2_grpc
from dualnova.server.settings import ConfigError
from gateway import config as gateway_config
from inference_service import config as inference_config
from inference_service.bedrock import BedrockProbes, ProbeResult
from inference_service.bedrock.transport import AwsTransport, CredentialSource, Endpoint, Timeouts

MICRO = "amazon.nova-micro-v1:0"
PRO = "amazon.nova-pro-v1:0"
PRO_PROFILE = "us.amazon.nova-pro-v1:0"
SERVER_NAMES = ("", "dualnova.inference.v1.InferenceService")
DEPENDENCIES = ("bedrock-runtime", "bedrock", "model/micro", "model/pro")
ALL_SERVING = dict.fromkeys((*SERVER_NAMES, *DEPENDENCIES), "SERVING")
PROBE_OPERATIONS = {"ListAsyncInvokes", "GetFoundationModel", "GetInferenceProfile"}


@pytest.fixture
def bedrock(own_emulator: EmulatorHandle) -> Iterator[EmulatorHandle]:
    """The module's emulator, running, with no faults left over from another test."""
    if not own_emulator.running:
        own_emulator.start()
    own_emulator.reset()
    yield own_emulator
    if not own_emulator.running:
        own_emulator.start()
    own_emulator.clear_faults()


@pytest.fixture(scope="module")
def probed(own_emulator: EmulatorHandle, log_dir: Path) -> Iterator[ServiceHandle]:
    """Probes every INTERVAL_S; Pro is configured as a cross-region inference profile."""
    handle = start_inference(own_emulator, log_dir, "probed", DUALNOVA_PRO_MODEL=PRO_PROFILE)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def traffic_only(own_emulator: EmulatorHandle, log_dir: Path) -> Iterator[ServiceHandle]:
    """Probes once at start and then not for an hour, so only real calls move bedrock-runtime."""
    handle = start_inference(
        own_emulator,
        log_dir,
        "traffic-only",
        DUALNOVA_HEALTH_INTERVAL="3600",
        DUALNOVA_HEALTH_FAILED_CALLS="3",
    )
    yield handle
    handle.stop()


def test_every_name_is_listed_and_serving_against_a_healthy_bedrock(
    bedrock: EmulatorHandle, probed: ServiceHandle
) -> None:
    statuses = wait_for_statuses(probed.address, ALL_SERVING)
    assert set(statuses) == set(ALL_SERVING)  # no cloudwatch: metrics are not enabled
    for name in ALL_SERVING:
        assert check(probed.address, name) == "SERVING"


def test_unknown_name_is_not_found_for_check_and_service_unknown_for_watch(
    probed: ServiceHandle,
) -> None:
    with grpc.insecure_channel(probed.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Check(health_pb2.HealthCheckRequest(service="model/premier"), timeout=5)
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND
        watch = stub.Watch(health_pb2.HealthCheckRequest(service="model/premier"), timeout=5)
        first = next(watch)
        watch.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def test_emulator_stopped_turns_runtime_not_serving_within_two_intervals_then_recovers(
    bedrock: EmulatorHandle, probed: ServiceHandle
) -> None:
    wait_for_statuses(probed.address, ALL_SERVING)
    with (
        watching(probed.address, "bedrock-runtime") as runtime,
        watching(probed.address, "") as server,
    ):
        runtime.wait_for("SERVING")
        # The emulator stops listening somewhere between these two moments; on a busy
        # machine a probe may notice before stop() has returned.
        stopping_at = time.monotonic()
        bedrock.stop()
        stopped_at = time.monotonic()
        noticed_at = runtime.wait_for("NOT_SERVING", since=stopping_at)
        assert noticed_at - stopped_at < 2 * INTERVAL_S + SLACK_S
        server.wait_for("NOT_SERVING", since=stopping_at)
        down = listed(probed.address)
        assert down["bedrock"] == "NOT_SERVING"  # the control plane is gone too
        # What the models were last seen to be is kept: the control plane cannot be asked.
        assert down["model/micro"] == down["model/pro"] == "SERVING"

        restarting_at = time.monotonic()
        bedrock.start()
        runtime.wait_for("SERVING", since=restarting_at)
        server.wait_for("SERVING", since=restarting_at)
    assert runtime.statuses() == ["SERVING", "NOT_SERVING", "SERVING"]
    wait_for_statuses(probed.address, ALL_SERVING)


def test_a_denied_model_is_not_serving_while_the_other_and_the_server_stay_serving(
    bedrock: EmulatorHandle, probed: ServiceHandle
) -> None:
    wait_for_statuses(probed.address, ALL_SERVING)
    bedrock.add_fault(kind="access_denied", model=MICRO)
    statuses = wait_for_statuses(probed.address, {"model/micro": "NOT_SERVING"})
    assert statuses == {**ALL_SERVING, "model/micro": "NOT_SERVING"}

    bedrock.clear_faults()
    wait_for_statuses(probed.address, ALL_SERVING)


def test_no_usable_model_means_the_server_is_not_serving(
    bedrock: EmulatorHandle, probed: ServiceHandle
) -> None:
    wait_for_statuses(probed.address, ALL_SERVING)
    bedrock.add_fault(kind="access_denied", model=MICRO)
    bedrock.add_fault(kind="access_denied", model=PRO)  # also catches the us. profile's model
    statuses = wait_for_statuses(
        probed.address, {"model/micro": "NOT_SERVING", "model/pro": "NOT_SERVING"}
    )
    assert statuses["bedrock-runtime"] == statuses["bedrock"] == "SERVING"
    assert statuses[""] == statuses["dualnova.inference.v1.InferenceService"] == "NOT_SERVING"


def test_probes_send_no_inference_to_bedrock(
    bedrock: EmulatorHandle, probed: ServiceHandle
) -> None:
    def three_rounds() -> list[dict] | None:
        entries = bedrock.requests()
        rounds = sum(e["operation"] == "ListAsyncInvokes" for e in entries)
        return entries if rounds >= 3 else None

    entries = wait_until(three_rounds, "three probe rounds in the emulator's log")
    operations = [entry["operation"] for entry in entries]
    assert "ConverseStream" not in operations and "Converse" not in operations
    assert set(operations) == PROBE_OPERATIONS  # the profile id is checked with GetInferenceProfile
    profile_checks = [e for e in entries if e["operation"] == "GetInferenceProfile"]
    assert {e["model_id"] for e in profile_checks} == {PRO_PROFILE}
    assert all(entry["authorization"] for entry in entries)  # signed, like real calls


def test_failed_calls_turn_the_runtime_not_serving_until_a_call_succeeds(
    bedrock: EmulatorHandle, traffic_only: ServiceHandle
) -> None:
    wait_for_statuses(traffic_only.address, ALL_SERVING)
    with grpc.insecure_channel(traffic_only.address) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)

        def failed_call(expected: grpc.StatusCode) -> None:
            with pytest.raises(grpc.RpcError) as raised:
                list(stub.Chat(question("micro"), timeout=15))
            assert raised.value.code() is expected

        # Throttling and a denied model say nothing about the runtime endpoint.
        bedrock.add_fault(kind="throttling", times=4)
        for _ in range(4):
            failed_call(grpc.StatusCode.RESOURCE_EXHAUSTED)
        bedrock.add_fault(kind="access_denied", model=MICRO, operations=["ConverseStream"], times=3)
        for _ in range(3):
            failed_call(grpc.StatusCode.PERMISSION_DENIED)
        assert check(traffic_only.address, "bedrock-runtime") == "SERVING"
        # Nor does one model's stream failing (UNAVAILABLE, but about that model's answer).
        bedrock.add_fault(kind="mid_stream_error", model=MICRO, times=3)
        for _ in range(3):
            failed_call(grpc.StatusCode.UNAVAILABLE)
        assert check(traffic_only.address, "bedrock-runtime") == "SERVING"

        bedrock.add_fault(kind="service_unavailable", times=3)
        failed_call(grpc.StatusCode.UNAVAILABLE)
        failed_call(grpc.StatusCode.UNAVAILABLE)
        assert check(traffic_only.address, "bedrock-runtime") == "SERVING"  # two are not enough
        failed_call(grpc.StatusCode.UNAVAILABLE)
        wait_for_statuses(
            traffic_only.address, {"bedrock-runtime": "NOT_SERVING", "": "NOT_SERVING"}
        )

        events = list(stub.Chat(question("pro"), timeout=15))  # the fault is used up
        assert events[-1].HasField("stop")
    # Its next probe is an hour away: the recovery came from the call itself.
    wait_for_statuses(traffic_only.address, ALL_SERVING)


# ---- the probe calls themselves, in-process with real boto3 against the emulator ----


def run(probe: Coroutine[Any, Any, ProbeResult]) -> ProbeResult:
    return _PROBE_LOOP.run_until_complete(probe)


# One loop for every probe of this module: the probes' connection pools belong to the
# loop that opened them, as in the service.
_PROBE_LOOP = asyncio.new_event_loop()


def probes_for(emulator: EmulatorHandle, access_key: str = "AKIAEMULATOR0000") -> BedrockProbes:
    session = boto3.session.Session(
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key="emulator-secret",
    )
    timeouts = Timeouts(5, 5)

    def transport(service: str) -> AwsTransport:
        return AwsTransport(
            Endpoint(emulator.url, "us-east-1", "bedrock"),
            CredentialSource(session.get_credentials()),
            timeouts=timeouts,
            max_attempts=1,
            user_agent="dualnova-test",
        )

    return BedrockProbes(transport("bedrock-runtime"), transport("bedrock"), timeout_s=5)


def test_probe_verdicts(emulator: EmulatorHandle) -> None:
    probes = probes_for(emulator)
    try:
        assert run(probes.runtime()) == ProbeResult(True)
        assert run(probes.model(MICRO)) == ProbeResult(True, True)
        assert run(probes.model(PRO_PROFILE)) == ProbeResult(True, True)
        unknown = run(probes.model("amazon.nova-nonexistent-v1:0"))
        assert (unknown.reached, unknown.usable) == (True, False)
        assert "ResourceNotFoundException" in unknown.detail
        unknown_profile = run(probes.model("eu.amazon.nova-nonexistent-v1:0"))
        assert (unknown_profile.reached, unknown_profile.usable) == (True, False)

        emulator.add_fault(kind="throttling", operations=["GetFoundationModel"], times=1)
        assert run(probes.model(MICRO)).reached is None  # throttled: no news either way
        emulator.add_fault(kind="internal", operations=["GetFoundationModel"], times=1)
        assert run(probes.model(MICRO)).reached is False
        # A role that may stream but not list async jobs still proves the endpoint.
        emulator.add_fault(kind="access_denied", operations=["ListAsyncInvokes"], times=1)
        assert run(probes.runtime()).reached is True
        emulator.add_fault(kind="service_unavailable", operations=["ListAsyncInvokes"], times=1)
        assert run(probes.runtime()).reached is False
    finally:
        run(probes.aclose())
    refused = probes_for(emulator, access_key="INVALIDKEY0000")
    try:
        result = run(refused.runtime())
        assert result.reached is False and "UnrecognizedClientException" in result.detail
        assert run(refused.model(MICRO)).reached is False
    finally:
        run(refused.aclose())
    assert {e["operation"] for e in emulator.requests()} <= PROBE_OPERATIONS


# ---- settings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DUALNOVA_HEALTH_INTERVAL": "0"}, "DUALNOVA_HEALTH_INTERVAL"),
        ({"DUALNOVA_HEALTH_INTERVAL": "soon"}, "DUALNOVA_HEALTH_INTERVAL"),
        (
            {"DUALNOVA_HEALTH_INTERVAL": "1", "DUALNOVA_HEALTH_TIMEOUT": "2"},
            "DUALNOVA_HEALTH_TIMEOUT",
        ),
        ({"DUALNOVA_HEALTH_FAILED_CALLS": "0"}, "DUALNOVA_HEALTH_FAILED_CALLS"),
        ({"INFERENCE_SHUTDOWN_DELAY": "-1"}, "INFERENCE_SHUTDOWN_DELAY"),
    ],
)
def test_bad_health_settings_stop_the_service_at_start(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        inference_config.load(env)


def test_health_settings_defaults_and_the_timeout_never_exceeds_the_interval() -> None:
    settings = inference_config.load({})
    assert settings.health_interval_s == 5 and settings.health_timeout_s == 2
    assert settings.health_failed_calls == 3 and settings.shutdown_delay_s == 2
    assert inference_config.load({"DUALNOVA_HEALTH_INTERVAL": "0.2"}).health_timeout_s == 0.2
    assert gateway_config.load({"DUALNOVA_HEALTH_INTERVAL": "0.2"}).health_interval_s == 0.2
    with pytest.raises(ConfigError, match="DUALNOVA_HEALTH_INTERVAL"):
        gateway_config.load({"DUALNOVA_HEALTH_INTERVAL": "-3"})
