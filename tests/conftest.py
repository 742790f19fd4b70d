"""Fixtures that start the real processes once per test session.

The emulator, the inference service and the gateway run as subprocesses on
free loopback ports (dualnova.stack, the launcher `dualnova up` uses too).
Each test starts with a clean emulator: no faults, empty request log.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from telemetry_support import FAST_EXPORT, OtlpCollector, Pair, running_pair

from dualnova.stack import EmulatorHandle, ServiceHandle, Stack

# Fast pacing: tests check content and order, not speed.
TEST_PACE = 0.02

# Every service a test starts inherits these unless the test sets its own: no
# background health probes landing in another test's emulator log, and no drain
# delay when a fixture stops a service. Health and shutdown tests set short ones.
os.environ.setdefault("DUALNOVA_HEALTH_INTERVAL", "3600")
os.environ.setdefault("INFERENCE_SHUTDOWN_DELAY", "0")
os.environ.setdefault("GATEWAY_SHUTDOWN_DELAY", "0")


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
        inference_env={"DUALNOVA_BEDROCK_MAX_ATTEMPTS": "1"},
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
