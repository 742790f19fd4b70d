"""`dualnova health` as a container health check runs it: a real process, its exit status.

The statuses are grpc_health_probe's: 0 SERVING, 1 bad arguments, 2 no
connection, 3 the health RPC failed, 4 not SERVING. `--all` prints every name
(ListDetails: status, since when, and the reason; List from a server
without it) and still answers for --service.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
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


def rows(stdout: str) -> dict[str, list[str]]:
    """The --all table as {name: [status, since, reason]}; the server's own name is shown as ""."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "SINCE", "REASON"], lines[0]
    cells = (line.split(maxsplit=3) for line in lines[1:])
    return {("" if row[0] == '""' else row[0]): row[1:] for row in cells}


def table(stdout: str) -> dict[str, str]:
    """The --all table as {name: status}."""
    return {name: row[0] for name, row in rows(stdout).items()}


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
    # The verdict carries the server's reason (dualnova.health.v1), here Bedrock's own words.
    assert "'model/micro' unhealthy (responded with NOT_SERVING): AccessDeniedException: " in (
        model.stderr
    )
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
    listed = rows(result.stdout)
    status, since, reason = listed["model/micro"]
    assert reason.startswith("AccessDeniedException: "), reason
    assert since.endswith("Z")  # UTC, to the second
    for name in INFERENCE_NAMES:
        if name != "model/micro":
            assert len(listed[name]) == 2, listed[name]  # SERVING: no reason
    one = dualnova_health(
        "--addr", inference.address, "--all", "--service", "model/micro", "--timeout", "5"
    )
    assert one.returncode == 4
    assert table(one.stdout) == table(result.stdout)


class _ListOnly(health.HealthServicer):
    """grpc.health.v1 with List, and no dualnova.health.v1: a server that is not DualNova's."""

    def List(self, request: Any, context: Any) -> health_pb2.HealthListResponse:  # noqa: N802
        return health_pb2.HealthListResponse(
            statuses={
                "": health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING),
                "db": health_pb2.HealthCheckResponse(
                    status=health_pb2.HealthCheckResponse.NOT_SERVING
                ),
            }
        )


def test_all_falls_back_to_list_without_reasons_on_another_server() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(_ListOnly(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        result = dualnova_health("--addr", f"127.0.0.1:{port}", "--all", "--timeout", "5")
    finally:
        server.stop(0)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS"]
    assert [line.split() for line in lines[1:]] == [['""', "SERVING"], ["db", "NOT_SERVING"]]


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
