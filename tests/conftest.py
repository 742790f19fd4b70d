"""Fixtures that start the real processes once per test session.

The emulator, the inference service and the gateway run as subprocesses on
free loopback ports (dualnova.dev.stack, the launcher `dualnova up` uses too),
each given tests/processes.SERVICE_DEFAULTS explicitly. Each test starts with
a clean emulator: no faults, empty request log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import grpc
import pytest
from health_support import start_emulator
from moto.server import ThreadedMotoServer
from processes import SERVICE_DEFAULTS, TEST_PACE
from telemetry_support import FAST_EXPORT, OtlpCollector, Pair, running_pair

from dualnova.dev.stack import HOST, EmulatorHandle, ServiceHandle, Stack, free_port
from dualnova.inference.v1 import inference_pb2_grpc


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def stack(log_dir: Path) -> Iterator[Stack]:
    """The three processes, started lazily by whichever fixture is asked for first."""
    started = Stack(
        pace=TEST_PACE,
        log_dir=log_dir,
        # One attempt: fault tests see Bedrock's error, not botocore's retries.
        inference_env={**SERVICE_DEFAULTS, "DUALNOVA_BEDROCK_MAX_ATTEMPTS": "1"},
        gateway_env=SERVICE_DEFAULTS,
    )
    yield started
    started.stop()


@pytest.fixture(scope="session")
def emulator(stack: Stack) -> EmulatorHandle:
    if not stack.emulator.running:
        stack.emulator.start()
    return stack.emulator


@pytest.fixture(autouse=True)
def _clean_emulator(request: pytest.FixtureRequest) -> None:
    if "emulator" in request.fixturenames:
        request.getfixturevalue("emulator").reset()


@pytest.fixture(scope="session")
def aws_env(emulator: EmulatorHandle) -> dict[str, str]:
    """Environment that points boto3 (in a test or a child process) at the emulator."""
    return {**emulator.aws_env(), "AWS_MAX_ATTEMPTS": "1"}


@pytest.fixture(scope="session")
def inference(stack: Stack, emulator: EmulatorHandle) -> ServiceHandle:
    if not stack.inference.running:
        stack.inference.start()
    return stack.inference


@pytest.fixture(scope="session")
def gateway(stack: Stack, inference: ServiceHandle) -> ServiceHandle:
    if not stack.gateway.running:
        stack.gateway.start()
    return stack.gateway


@pytest.fixture
def stub(inference: ServiceHandle) -> Iterator[inference_pb2_grpc.InferenceServiceStub]:
    """A client of `inference` (the session's, or the one a test module starts itself)."""
    with grpc.insecure_channel(inference.address) as channel:
        yield inference_pb2_grpc.InferenceServiceStub(channel)


@pytest.fixture(scope="module")
def own_emulator(log_dir: Path, request: pytest.FixtureRequest) -> Iterator[EmulatorHandle]:
    """An emulator of the test module's own, for tests that stop, deny or restart Bedrock."""
    name = request.module.__name__.removeprefix("test_")
    emulator = start_emulator(log_dir, name)
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def collector() -> Iterator[OtlpCollector]:
    """An OTLP collector of the test module's own, on a loopback port."""
    started = OtlpCollector().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def exporting_pair(
    emulator: EmulatorHandle,
    collector: OtlpCollector,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    """An inference service and a gateway exporting traces and metrics to `collector`."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, **FAST_EXPORT}
    with running_pair(
        emulator, tmp_path_factory.mktemp("exporting"), inference_env=env, gateway_env=env
    ) as started:
        yield started


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """CloudWatch as AWS validates it (moto's server), on loopback for this module."""
    port = free_port()
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    yield f"http://{HOST}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def cloudwatch(moto_url: str, emulator: EmulatorHandle) -> Any:
    """A boto3 CloudWatch client on moto_url, with the emulator's credentials and region."""
    env = emulator.aws_env()
    return boto3.client(
        "cloudwatch",
        endpoint_url=moto_url,
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
