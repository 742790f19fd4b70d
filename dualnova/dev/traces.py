"""`make traces`: a local trace viewer (Arize Phoenix), and `dualnova up` exporting to it.

Phoenix comes from the `traces` extra, installed by `make traces` into its own
virtual environment (.venv/traces), so its many dependencies never reach .venv,
which `dualnova up` and `make test` run in. This launcher runs in .venv: it
starts `phoenix serve` on loopback with a fresh working directory, waits until
its UI and its OTLP receiver answer, prints the UI's address, then runs
`dualnova up` (any arguments after `--` are up's) with the OTEL_* variables
that send both services' spans to the viewer. The services read those
variables themselves (dualnova.server.telemetry); the stack hands its
environment on to every child. When up ends, the viewer is stopped and its
working directory (a SQLite database of this run's traces) removed.

Signals: up and the viewer each run in a process group of their own, so a
terminal's Ctrl-C reaches this launcher alone, which passes each SIGINT or
SIGTERM on to up once; the viewer is stopped after up has stopped.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO

HOST = "127.0.0.1"
# Phoenix's own defaults: the UI (and OTLP over HTTP) on 6006, OTLP over gRPC on 4317.
DEFAULT_UI_PORT = 6006
DEFAULT_OTLP_PORT = 4317
# Where `make traces` installs Phoenix: beside the project's environment, inside it.
DEFAULT_VIEWER = Path(sys.prefix) / "traces" / "bin" / "phoenix"
# The project spans are filed under in Phoenix (its resource attribute for that).
PROJECT = "dualnova"
PROJECT_ATTRIBUTE = "openinference.project.name"
# Phoenix imports a lot and migrates its database on a first start: seconds, not milliseconds.
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
# Spans reach the viewer half a second after they end rather than the SDK's 5 s.
SCHEDULE_DELAY_MS = "500"
_POLL_S = 0.2
_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


class ViewerError(RuntimeError):
    """The viewer did not start; the message says why, with its last log lines."""


def stack_environment(base: Mapping[str, str], *, otlp_port: int) -> dict[str, str]:
    """`base` with both services' traces going to the viewer's OTLP/gRPC receiver.

    Only the traces signal is pointed at the viewer (Phoenix takes no metrics),
    so metrics still go wherever `base` sends them. What would stop the export
    (OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER=none) is overridden.
    """
    env = dict(base)
    env.pop("OTEL_SDK_DISABLED", None)
    env["OTEL_TRACES_EXPORTER"] = "otlp"
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"http://{HOST}:{otlp_port}"
    env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "grpc"
    env.setdefault("OTEL_BSP_SCHEDULE_DELAY", SCHEDULE_DELAY_MS)
    attributes = env.get("OTEL_RESOURCE_ATTRIBUTES", "").strip()
    if f"{PROJECT_ATTRIBUTE}=" not in attributes:
        project = f"{PROJECT_ATTRIBUTE}={PROJECT}"
        env["OTEL_RESOURCE_ATTRIBUTES"] = f"{attributes},{project}" if attributes else project
    return env


def viewer_environment(
    base: Mapping[str, str], *, ui_port: int, otlp_port: int, working_dir: Path
) -> dict[str, str]:
    """What `phoenix serve` reads: loopback, the two ports, this run's directory, no telemetry."""
    env = {key: value for key, value in base.items() if not key.startswith("PHOENIX_")}
    env.update(
        PHOENIX_HOST=HOST,
        PHOENIX_PORT=str(ui_port),
        PHOENIX_GRPC_PORT=str(otlp_port),
        PHOENIX_WORKING_DIR=str(working_dir),
        PHOENIX_TELEMETRY_ENABLED="false",
    )
    return env


def requirements(pyproject: Path = _PYPROJECT) -> list[str]:
    """The `traces` extra of pyproject.toml: what `make traces` installs into .venv/traces."""
    with pyproject.open("rb") as file:
        return list(tomllib.load(file)["project"]["optional-dependencies"]["traces"])


def port_taken(port: int) -> bool:
    """True when something on this machine already holds `port` on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the viewer's servers do: a port left in TIME_WAIT by the last run is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


class Viewer:
    """The `phoenix serve` process, in a session of its own, logging to its working directory."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str], working_dir: Path) -> None:
        self._command = [*command, "serve"]
        self._env = dict(env)
        self.log_path = working_dir / "viewer.log"
        self._log: IO[bytes] | None = None
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self, ui_url: str, otlp_port: int, timeout: float = START_TIMEOUT_S) -> None:
        """Spawn it and wait until the UI answers /healthz and the OTLP port accepts."""
        self._log = self.log_path.open("ab")
        try:
            self.popen = subprocess.Popen(
                self._command,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                start_new_session=True,
            )
        except OSError as error:
            raise ViewerError(f"cannot run {shlex.join(self._command)}: {error}") from None
        deadline = time.monotonic() + timeout
        while not (_answers(f"{ui_url}/healthz") and _accepts(otlp_port)):
            if self.popen.poll() is not None:
                raise ViewerError(
                    f"the trace viewer exited with status {self.popen.returncode} while"
                    f" starting{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ViewerError(
                    f"the trace viewer did not answer on {ui_url} within {timeout:g} s"
                    f"{self.log_tail()}"
                )
            time.sleep(_POLL_S)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGINT to its process group, SIGKILL past the timeout; returns its exit status.

        SIGINT, not SIGTERM: Phoenix's server shuts down cleanly (exit 0) on the first
        and dies of the second.
        """
        popen = self.popen
        if popen is not None and popen.poll() is None:
            _signal_group(popen.pid, signal.SIGINT)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(popen.pid, signal.SIGKILL)
                popen.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return None if popen is None else popen.returncode

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "; last log lines:\n" + "\n".join(tail) if tail else ""


class _Up:
    """`dualnova up` as a child in its own process group; each signal we get is passed on once."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "dualnova.cli.main", "up", *args],
            env=dict(env),
            process_group=0,
        )

    def forward(self, signum: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait()


def run(
    viewer_command: Sequence[str],
    up_args: Sequence[str],
    *,
    ui_port: int = DEFAULT_UI_PORT,
    otlp_port: int = DEFAULT_OTLP_PORT,
) -> int:
    """Viewer, then up until it ends, then stop the viewer; returns up's exit status."""
    for port, what, flag in ((ui_port, "UI", "--ui-port"), (otlp_port, "OTLP", "--otlp-port")):
        if port_taken(port):
            _say(
                f"port {port} (the trace viewer's {what}) is taken on {HOST}; pick another: {flag}"
            )
            return 1
    ui_url = f"http://{HOST}:{ui_port}"
    up: _Up | None = None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Before up runs there is nothing to pass it to: stop starting.
        if up is None:
            raise KeyboardInterrupt
        up.forward(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    working_dir = Path(tempfile.mkdtemp(prefix="dualnova-traces-"))
    viewer = Viewer(
        viewer_command,
        viewer_environment(
            os.environ, ui_port=ui_port, otlp_port=otlp_port, working_dir=working_dir
        ),
        working_dir,
    )
    status = 1
    try:
        _say(f"starting the trace viewer (its log, removed when it stops: {viewer.log_path})")
        viewer.start(ui_url, otlp_port)
        _say(
            f"trace viewer at {ui_url}/redirects/projects/{PROJECT}\n"
            f"  one trace: {ui_url}/redirects/traces/<trace id> (dualnova chat prints the id)"
        )
        up = _Up(up_args, stack_environment(os.environ, otlp_port=otlp_port))
        status = _watch(up, viewer)
    except ViewerError as error:
        _say(str(error))
    except KeyboardInterrupt:
        status = 128 + signal.SIGINT
    finally:
        # A second Ctrl-C must not leave the viewer behind: stop() kills what will not stop.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        if up is not None:
            status = _exit_status(up.stop())
        stopped = viewer.stop()
        if stopped is not None:
            _say("trace viewer stopped" + ("" if stopped == 0 else f" (exit status {stopped})"))
        shutil.rmtree(working_dir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _watch(up: _Up, viewer: Viewer) -> int:
    """Wait for up to end; say once if the viewer dies meanwhile (up goes on without it)."""
    told = False
    while (code := up.popen.poll()) is None:
        if not told and not viewer.running:
            _say(f"the trace viewer exited; spans are no longer received{viewer.log_tail(5)}")
            told = True
        time.sleep(_POLL_S)
    return _exit_status(code)


def _exit_status(code: int) -> int:
    """A child killed by a signal is reported as a shell would: 128 + the signal."""
    return 128 - code if code < 0 else code


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2):
            return True
    except OSError:
        return False


def _say(message: str) -> None:
    print(f"traces: {message}", file=sys.stderr, flush=True)


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {value!r}")
    return int(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dualnova.dev.traces",
        description="Start a local trace viewer (Arize Phoenix) and `dualnova up` sending both"
        " services' traces to it; Ctrl-C stops both. Arguments after -- are up's.",
    )
    parser.add_argument(
        "--viewer",
        default=str(DEFAULT_VIEWER),
        metavar="COMMAND",
        help=f"the phoenix command, run as COMMAND serve (default {DEFAULT_VIEWER})",
    )
    parser.add_argument(
        "--ui-port",
        type=_port,
        default=DEFAULT_UI_PORT,
        metavar="N",
        help=f"the viewer's UI port on {HOST} (default {DEFAULT_UI_PORT})",
    )
    parser.add_argument(
        "--otlp-port",
        type=_port,
        default=DEFAULT_OTLP_PORT,
        metavar="N",
        help=f"the viewer's OTLP/gRPC port (default {DEFAULT_OTLP_PORT})",
    )
    parser.add_argument(
        "--requirements",
        action="store_true",
        help="print the `traces` extra's requirements (what make traces installs) and exit",
    )
    parser.add_argument("up_args", nargs=argparse.REMAINDER, help="-- then dualnova up's arguments")
    args = parser.parse_args(argv)
    if args.requirements:
        print(" ".join(requirements()))
        return 0
    up_args = args.up_args[1:] if args.up_args[:1] == ["--"] else args.up_args
    command = shlex.split(args.viewer)
    if len(command) == 1 and shutil.which(command[0]) is None:
        _say(f"no trace viewer at {command[0]}; `make traces` installs it (in .venv/traces)")
        return 1
    return run(command, up_args, ui_port=args.ui_port, otlp_port=args.otlp_port)


if __name__ == "__main__":
    sys.exit(main())
