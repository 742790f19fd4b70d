"""`make traces` (dualnova/dev/traces.py): a trace viewer, and `dualnova up` exporting to it.

Phoenix itself is not installed for `make test`: a stand-in (tests/stand_in_viewer.py)
takes its place, reading the same PHOENIX_* variables and receiving OTLP/gRPC for real,
so these tests see which spans the launched services really send, and whether the
viewer process is still there once the launcher has returned.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from gateway_client import ask, dual_chat
from polling import wait_until
from processes import SERVICE_DEFAULTS

from dualnova.dev import traces
from dualnova.dev.stack import HOST, free_port

ROOT = Path(__file__).resolve().parent.parent
STAND_IN = Path(__file__).resolve().parent / "stand_in_viewer.py"
STAND_IN_COMMAND = f"{sys.executable} {STAND_IN}"


@dataclass
class Launch:
    """One `python -m dualnova.dev.traces` run, in a session of its own like a terminal's job."""

    popen: subprocess.Popen[str]
    record: Path
    stderr: Path
    ui_port: int
    otlp_port: int

    def entries(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        lines = self.record.read_text().splitlines(keepends=True)
        return [json.loads(line) for line in lines if line.endswith("\n")]

    def viewer_pid(self) -> int:
        return wait_until(
            lambda: next((e["pid"] for e in self.entries() if "pid" in e), None),
            "the stand-in viewer to record its pid",
        )

    def said(self) -> str:
        return self.stderr.read_text()


@contextmanager
def launched(tmp_path: Path, up_args: list[str], **env: str) -> Iterator[Launch]:
    ui_port, otlp_port = free_port(), free_port()
    record, stderr = tmp_path / "viewer.jsonl", tmp_path / "launcher.err"
    with stderr.open("w") as err:
        popen = subprocess.Popen(
            [sys.executable, "-m", "dualnova.dev.traces", "--viewer", STAND_IN_COMMAND]
            + ["--ui-port", str(ui_port), "--otlp-port", str(otlp_port), "--", *up_args],
            cwd=ROOT,
            env={
                **os.environ,
                **SERVICE_DEFAULTS,
                "PYTHONPATH": str(ROOT),
                "STAND_IN_VIEWER_RECORD": str(record),
                **env,
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            start_new_session=True,
        )
    launch = Launch(popen, record, stderr, ui_port, otlp_port)
    try:
        yield launch
    finally:
        # Whatever the test asserted, neither up (and its stack) nor the viewer is left behind.
        if popen.poll() is None:
            descendants = _descendants(popen.pid)
            os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(20)
            except subprocess.TimeoutExpired:
                for pid in descendants:
                    _kill(pid)
                popen.kill()
                popen.wait()
        for entry in launch.entries():
            if "pid" in entry:
                _kill(entry["pid"])


def _descendants(pid: int) -> list[int]:
    """Every process under `pid` (up, its stack, the viewer), from /proc; children first."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [d for child in map(int, children) for d in (*_descendants(child), child)]


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _listening(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=0.5)
        except grpc.FutureTimeoutError:
            return False
    return True


# ---- the environment ------------------------------------------------------------------


def test_the_stack_environment_sends_traces_and_only_traces_to_the_viewer() -> None:
    base = {
        "OTEL_SDK_DISABLED": "true",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.example:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=laptop",
        "HOME": "/home/someone",
    }
    env = traces.stack_environment(base, otlp_port=14317)
    assert env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == f"http://{HOST}:14317"
    assert env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "grpc"
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert "OTEL_SDK_DISABLED" not in env
    # Metrics still go where the caller sent them; the rest passes through.
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector.example:4317"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["HOME"] == "/home/someone"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == (
        "deployment.environment=laptop,openinference.project.name=dualnova"
    )
    assert base["OTEL_SDK_DISABLED"] == "true", "the caller's mapping is left alone"


def test_the_viewer_listens_on_loopback_in_its_own_directory(tmp_path: Path) -> None:
    env = traces.viewer_environment(
        {"PHOENIX_SQL_DATABASE_URL": "postgresql://elsewhere", "PATH": "/bin"},
        ui_port=16006,
        otlp_port=14317,
        working_dir=tmp_path,
    )
    assert {key: value for key, value in env.items() if key.startswith("PHOENIX_")} == {
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": "16006",
        "PHOENIX_GRPC_PORT": "14317",
        "PHOENIX_WORKING_DIR": str(tmp_path),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    assert env["PATH"] == "/bin"


def test_phoenix_is_the_traces_extra_and_not_a_dependency_of_make_test() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert traces.requirements() == project["optional-dependencies"]["traces"]
    assert [r for r in traces.requirements() if r.startswith("arize-phoenix==")]
    everyday = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    assert not [r for r in everyday if "phoenix" in r]
    printed = subprocess.run(
        [sys.executable, "-m", "dualnova.dev.traces", "--requirements"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout.split() == traces.requirements()


# ---- the launcher, with a stand-in viewer -----------------------------------------------


@pytest.mark.timeout(90)
def test_both_services_send_their_spans_to_the_viewer(tmp_path: Path) -> None:
    gateway, inference = free_port(), free_port()
    up_args = ["--pace", "0", "--gateway-port", str(gateway), "--inference-port", str(inference)]
    with launched(tmp_path, [*up_args, "--log-dir", str(tmp_path / "logs")]) as launch:
        address = f"{HOST}:{gateway}"
        wait_until(
            lambda: launch.popen.poll() is not None or _listening(address),
            "the gateway under up to listen",
            timeout=40,
        )
        assert launch.popen.poll() is None, launch.said()
        said = launch.said()
        assert f"trace viewer at http://{HOST}:{launch.ui_port}/" in said, said

        trace_id = dual_chat(address, ask("Which spans reach the viewer?")).summary.trace_id

        def spans() -> list[tuple[str | None, str]]:
            return sorted(
                (entry["service"], entry["span"])
                for entry in launch.entries()
                if entry.get("trace_id") == trace_id
            )

        expected = [
            ("gateway", "dualnova.gateway.v1.Gateway/DualChat"),
            ("gateway", "route micro"),
            ("gateway", "route pro"),
            ("inference_service", "chat amazon.nova-micro-v1:0"),
            ("inference_service", "chat amazon.nova-pro-v1:0"),
            ("inference_service", "dualnova.inference.v1.InferenceService/Chat"),
            ("inference_service", "dualnova.inference.v1.InferenceService/Chat"),
        ]
        wait_until(lambda: spans() == expected, lambda: f"{expected}, got {spans()}")
        bedrock_routes = {
            entry["span"]: entry["route"]
            for entry in launch.entries()
            if entry.get("trace_id") == trace_id and entry["span"].startswith("chat ")
        }
        assert bedrock_routes == {
            "chat amazon.nova-micro-v1:0": "micro",
            "chat amazon.nova-pro-v1:0": "pro",
        }
        projects = {e["project"] for e in launch.entries() if e.get("trace_id") == trace_id}
        assert projects == {"dualnova"}

        (started,) = [entry for entry in launch.entries() if "pid" in entry]
        assert started["argv"] == ["serve"]
        assert started["env"]["PHOENIX_HOST"] == "127.0.0.1"
        assert started["env"]["PHOENIX_PORT"] == str(launch.ui_port)
        assert started["env"]["PHOENIX_GRPC_PORT"] == str(launch.otlp_port)


@pytest.mark.timeout(90)
def test_ctrl_c_stops_up_then_the_viewer_and_removes_its_directory(tmp_path: Path) -> None:
    gateway = free_port()
    up_args = ["--pace", "0", "--gateway-port", str(gateway), "--inference-port", "0"]
    with launched(tmp_path, [*up_args, "--log-dir", str(tmp_path / "logs")]) as launch:
        address = f"{HOST}:{gateway}"
        wait_until(
            lambda: launch.popen.poll() is not None or _listening(address),
            "the gateway under up to listen",
            timeout=40,
        )
        assert launch.popen.poll() is None, launch.said()
        (started,) = [entry for entry in launch.entries() if "pid" in entry]
        working_dir = Path(started["env"]["PHOENIX_WORKING_DIR"])
        assert working_dir.is_dir()

        # What a terminal's Ctrl-C does: SIGINT to the foreground process group, where
        # the launcher is alone (up and the viewer have groups of their own).
        os.killpg(launch.popen.pid, signal.SIGINT)
        assert launch.popen.wait(40) == 0, launch.said()
        assert not _alive(started["pid"]), "the viewer outlived the launcher"
        assert launch.entries()[-1] == {"stopped_by": "SIGINT"}
        assert not _listening(address), "the gateway outlived the launcher"
        assert not working_dir.exists()
        assert launch.said().rstrip().endswith("traces: trace viewer stopped"), launch.said()


def test_the_viewer_stops_when_up_ends_on_its_own(tmp_path: Path) -> None:
    # up refuses its arguments (exit 2) right after the viewer started.
    with launched(tmp_path, ["--replicas", "0"]) as launch:
        assert launch.popen.wait(40) == 2, launch.said()
        pid = launch.viewer_pid()
        assert not _alive(pid), "the viewer outlived the launcher"
        assert launch.entries()[-1] == {"stopped_by": "SIGINT"}
        assert "--replicas" in launch.said()


def test_a_viewer_that_cannot_start_is_named_and_up_never_runs(tmp_path: Path) -> None:
    with launched(tmp_path, [], STAND_IN_VIEWER_FAIL="3") as launch:
        assert launch.popen.wait(40) == 1
    said = launch.said()
    assert "the trace viewer exited with status 3 while starting" in said, said
    assert "stand-in viewer: told to fail" in said, "the viewer's own words are shown"
    assert "DualNova is up" not in said


def test_a_taken_viewer_port_is_refused_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        taken = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "dualnova.dev.traces", "--viewer", STAND_IN_COMMAND]
            + ["--ui-port", str(free_port()), "--otlp-port", str(taken)],
            cwd=ROOT,
            env={**os.environ, "STAND_IN_VIEWER_RECORD": str(tmp_path / "viewer.jsonl")},
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert result.stderr == (
        f"traces: port {taken} (the trace viewer's OTLP) is taken on 127.0.0.1;"
        " pick another: --otlp-port\n"
    )
    assert not (tmp_path / "viewer.jsonl").exists(), "no viewer was started"


def test_a_missing_viewer_says_how_to_install_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dualnova.dev.traces", "--viewer", str(tmp_path / "phoenix")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "make traces" in result.stderr and str(tmp_path / "phoenix") in result.stderr
