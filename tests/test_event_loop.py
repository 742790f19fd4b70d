"""DUALNOVA_EVENT_LOOP: both services serve, stream and drain on asyncio as on uvloop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gateway_client import ask, dual_chat
from startup import assert_refused_to_start
from telemetry_support import log_lines, running_pair
from test_inference_config import GOOD_AWS, run_service

from bedrock_emulator.answers import compose_answer
from dualnova.dev.stack import EmulatorHandle

ASYNCIO = {"DUALNOVA_EVENT_LOOP": "asyncio"}


def loop_of(log: Path, message: str) -> str:
    (line,) = [line for line in log_lines(log) if line["message"].startswith(message)]
    return line["event_loop"]


def test_dual_chat_end_to_end_with_both_services_on_asyncio(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    with running_pair(emulator, tmp_path, inference_env=ASYNCIO, gateway_env=ASYNCIO) as pair:
        result = dual_chat(pair.gateway.address, ask("What is Amazon Bedrock?"))
    assert set(result.routes) == {"micro", "pro"}
    requests = [e for e in emulator.requests() if e["operation"] == "ConverseStream"]
    for route in result.routes.values():
        assert route.stop is not None and route.error is None
        (request,) = [e for e in requests if e["model_id"] == route.start.model_id]
        assert route.text == compose_answer(route.start.model_id, request["body"]).text
    assert loop_of(tmp_path / "inference_service.log", "inference service listening") == "asyncio"
    assert loop_of(tmp_path / "gateway.log", "gateway listening") == "asyncio"
    assert pair.exit_codes == {"gateway": 0, "inference_service": 0}  # drained on asyncio too


def test_uvloop_is_the_default(emulator: EmulatorHandle, tmp_path: Path) -> None:
    # Every other test runs the services on the default, so uvloop is what they exercise.
    with running_pair(emulator, tmp_path):
        pass
    assert loop_of(tmp_path / "inference_service.log", "inference service listening") == "uvloop"
    assert loop_of(tmp_path / "gateway.log", "gateway listening") == "uvloop"


@pytest.mark.parametrize("service", ["inference_service", "gateway"])
def test_an_unknown_event_loop_names_the_variable(service: str) -> None:
    if service == "inference_service":
        result = run_service({**GOOD_AWS}, "--event-loop", "trio")
    else:
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "--event-loop", "trio"],
            env={"PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert_refused_to_start(result, service, "DUALNOVA_EVENT_LOOP", "'trio'", "uvloop")
