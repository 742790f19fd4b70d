"""`dualnova health` as a container health check runs it: a real process, its exit status.

The statuses are grpc_health_probe's: 0 SERVING, 1 bad arguments, 2 no
connection, 3 the health RPC failed, 4 not SERVING. `--all` prints every name
(List) and still answers for --service.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from health_support import (
    start_gateway,
    start_inference,
    wait_for_statuses,
)

from dualnova.dev.stack import EmulatorHandle, ServiceHandle, free_port

ROOT = Path(__file__).resolve().parent.parent
MICRO = "amazon.nova-micro-v1:0"
INFERENCE_NAMES = (
    "",
    "dualnova.inference.v1.InferenceService",
    "bedrock-runtime",
    "bedrock",
    "model/micro",
    "model/pro",
)


def dualnova_health(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dualnova.cli.main", "health", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def table(stdout: str) -> dict[str, str]:
    """The --all table as {name: status}; the server's own name is shown as ""."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS"]
    rows = (line.split() for line in lines[1:])
    return {("" if name == '""' else name): status for name, status in rows}


@pytest.fixture(scope="module")
def inference(own_emulator: EmulatorHandle, log_dir: Path) -> Iterator[ServiceHandle]:
    handle = start_inference(own_emulator, log_dir, "cli")
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def gateway(inference: ServiceHandle, log_dir: Path) -> Iterator[ServiceHandle]:
    handle = start_gateway(inference, log_dir, "cli")
    yield handle
    handle.stop()


@pytest.fixture
def micro_denied(
    own_emulator: EmulatorHandle, inference: ServiceHandle, gateway: ServiceHandle
) -> Iterator[None]:
    own_emulator.reset()
    own_emulator.add_fault(kind="access_denied", model=MICRO)
    wait_for_statuses(inference.address, {"model/micro": "NOT_SERVING"})
    wait_for_statuses(gateway.address, {"route/micro": "NOT_SERVING", "": "SERVING"})
    yield
    own_emulator.clear_faults()
    wait_for_statuses(inference.address, {"model/micro": "SERVING"})


def test_serving_exits_0(inference: ServiceHandle) -> None:
    wait_for_statuses(inference.address, {"": "SERVING"})
    result = dualnova_health("--addr", inference.address, "--timeout", "5")
    assert (result.returncode, result.stdout) == (0, "status: SERVING\n"), result.stderr
    named = dualnova_health("--addr", inference.address, "--service", "model/pro", "--timeout", "5")
    assert named.returncode == 0, named.stderr


def test_not_serving_exits_4(
    micro_denied: None, inference: ServiceHandle, gateway: ServiceHandle
) -> None:
    model = dualnova_health(
        "--addr", inference.address, "--service", "model/micro", "--timeout", "5"
    )
    assert model.returncode == 4
    assert "'model/micro' unhealthy (responded with NOT_SERVING)" in model.stderr
    route = dualnova_health("--addr", gateway.address, "--service", "route/micro", "--timeout", "5")
    assert route.returncode == 4
    # The other route still answers, so the gateway as a whole is SERVING.
    assert dualnova_health("--addr", gateway.address, "--timeout", "5").returncode == 0


def test_unknown_name_exits_3(inference: ServiceHandle) -> None:
    result = dualnova_health(
        "--addr", inference.address, "--service", "model/lite", "--timeout", "5"
    )
    assert result.returncode == 3
    assert "does not know the health name 'model/lite'" in result.stderr


def test_nothing_listening_exits_2() -> None:
    address = f"127.0.0.1:{free_port()}"
    result = dualnova_health("--addr", address, "--timeout", "0.5")
    assert result.returncode == 2
    assert f"cannot connect to {address}" in result.stderr


def test_bad_arguments_exit_1() -> None:
    for args in (("--timeout", "0"), ("--addr", "no-port-here")):
        result = dualnova_health(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_all_prints_every_name_and_answers_for_the_server(
    micro_denied: None, inference: ServiceHandle
) -> None:
    result = dualnova_health("--addr", inference.address, "--all", "--timeout", "5")
    assert result.returncode == 0, result.stderr  # "" is SERVING: Pro can still answer
    assert table(result.stdout) == {
        **dict.fromkeys(INFERENCE_NAMES, "SERVING"),
        "model/micro": "NOT_SERVING",
    }
    one = dualnova_health(
        "--addr", inference.address, "--all", "--service", "model/micro", "--timeout", "5"
    )
    assert one.returncode == 4
    assert table(one.stdout) == table(result.stdout)


def test_the_gateway_is_the_default_target(gateway: ServiceHandle) -> None:
    wait_for_statuses(gateway.address, {"": "SERVING"})
    result = dualnova_health("--all", env={"DUALNOVA_GATEWAY": gateway.address})
    assert result.returncode == 0, result.stderr
    assert set(table(result.stdout)) == {
        "",
        "dualnova.gateway.v1.Gateway",
        "inference",
        "route/micro",
        "route/pro",
    }
