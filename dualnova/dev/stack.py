"""Start the whole pair on this machine: emulator, inference service and gateway.

One launcher serves `dualnova up`, `make demo` and the test fixtures, so all
three run the processes the same way: real subprocesses on free loopback
ports, each waited on until it answers, and stopped with SIGTERM.

`isolate` (what `dualnova up` asks for) runs each child in a process group
of its own. A terminal's Ctrl-C signals its whole foreground group; children
in the launcher's group would get a SIGINT and, a moment later, the
launcher's SIGTERM, which could land after the child's event loop had closed
and its handlers were gone (exit -15). So the terminal's signals reach the
launcher only, and it stops each child once. Out of the launcher's group, a
child would also outlive a launcher killed with its group, so on Linux each
is told to get SIGTERM when the launcher dies. Tests and the demo keep their
children in the launcher's group (a test run killed as a group takes them along).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import grpc

from bedrock_emulator.knowledge_base import ACTIVE_ID
from dualnova.server.ports import check_free
from dualnova.server.settings import ConfigError

HOST = "127.0.0.1"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0

# Credentials the emulator accepts; the real chain is bypassed so a developer's
# own AWS profile never reaches the emulator (or, by mistake, real Bedrock).
EMULATOR_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAEMULATOR0000",
    "AWS_SECRET_ACCESS_KEY": "emulator-secret",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_AWS_VARIABLES_TO_DROP = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE")
# The endpoint variables of the Bedrock clients the emulator serves, all on its one port:
# bedrock-runtime (Converse), bedrock (model probes), bedrock-agent-runtime (Retrieve)
# and bedrock-agent (GetKnowledgeBase).
EMULATED_ENDPOINTS = (
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
    "AWS_ENDPOINT_URL_BEDROCK",
    "AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME",
    "AWS_ENDPOINT_URL_BEDROCK_AGENT",
)
# The emulator's built-in knowledge base (ACTIVE, its corpus): what `dualnova up` grounds with.
EMULATOR_KNOWLEDGE_BASE = ACTIVE_ID


class StackError(RuntimeError):
    """A process of the stack did not start; the message carries its last log lines.

    `reason` is the first line alone, `last_line` the process's own last word (a
    service's one-line refusal, say), for a report that must fit on one line.
    """

    def __init__(self, reason: str, log_lines: Sequence[str] = ()) -> None:
        tail = "".join(f"\n{line}" for line in log_lines)
        super().__init__(f"{reason}; last log lines:{tail}" if log_lines else reason)
        self.reason = reason
        self.last_line = log_lines[-1].strip() if log_lines else ""


def free_port() -> int:
    """A loopback port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """False when a program listens on HOST:port, even one that shares it (SO_REUSEPORT).

    Asked before anything starts: a readiness check would otherwise find that
    other program's server answering and take it for ours.
    """
    try:
        check_free(f"{HOST}:{port}", "port")
    except ConfigError:
        return False
    return True


class _Process:
    """One child process: started with `python -m module`, its stderr in a log file or inherited."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        log_path: Path | None,
        isolate: bool = False,
    ) -> None:
        self.name = name
        self._args = args
        self._env = dict(env)
        self._log_path = log_path
        self._isolate = isolate
        self._log_file: IO[bytes] | None = None
        self.popen: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        if self._log_path is not None:
            self._log_file = open(self._log_path, "ab")
        self.popen = subprocess.Popen(
            [sys.executable, *self._args],
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
            # Out of the terminal's foreground group: see the module docstring.
            process_group=0 if self._isolate else None,
            preexec_fn=_follow_launcher(os.getpid()) if self._isolate else None,
        )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise StackError(
                f"{self.name} exited with status {self.popen.returncode} while starting",
                self._log_tail(),
            )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Signal the process and wait; kill it if it outlives the timeout. Returns its status."""
        popen = self.popen
        if popen is None:
            return None
        if popen.poll() is None:
            popen.send_signal(sig)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self.popen = None
        return popen.returncode

    def _log_tail(self, lines: int = 20) -> list[str]:
        if self._log_path is None or not self._log_path.exists():
            return []
        return self._log_path.read_text(errors="replace").splitlines()[-lines:]


def _follow_launcher(launcher: int) -> Callable[[], None] | None:
    """In the child before exec: SIGTERM when the launcher dies, even by SIGKILL (Linux).

    The launcher spawns from its main thread, whose exit is what the kernel watches.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here, not in the forked child

    def follow() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != launcher:  # it died before prctl took hold
            os.kill(os.getpid(), signal.SIGTERM)

    return follow


_PR_SET_PDEATHSIG = 1


class EmulatorHandle:
    """The Bedrock emulator process and its control API (faults, request log, pacing)."""

    name = "bedrock emulator"

    def __init__(
        self,
        *,
        port: int | None = None,
        pace: float = 1.0,
        log_path: Path | None = None,
        isolate: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._pace = pace
        self._process = _Process(
            self.name,
            [
                "-m",
                "bedrock_emulator",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--pace",
                str(pace),
            ],
            os.environ,
            log_path,
            isolate,
        )

    @property
    def running(self) -> bool:
        return self._process.running

    @property
    def log_path(self) -> Path | None:
        return self._process.log_path

    def start(self) -> None:
        self._process.spawn()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            self._process.check_alive()
            try:
                self._call("GET", "/_emulator/health")
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise StackError(f"bedrock emulator did not answer on {self.url}") from None
                time.sleep(0.05)

    def stop(self) -> int | None:
        return self._process.stop()

    def aws_env(self) -> dict[str, str]:
        """What a boto3 program needs to talk to this emulator instead of AWS.

        Every client the inference service builds gets the emulator's URL, the
        Knowledge Base ones too: one left out would call real AWS with fake keys.
        """
        return {
            **EMULATOR_CREDENTIALS,
            **{variable: self.url for variable in EMULATED_ENDPOINTS},
        }

    def requests(self) -> list[dict[str, Any]]:
        """The emulator's log of what it was asked, oldest first."""
        return self._call("GET", "/_emulator/requests")

    def add_fault(self, **rule: Any) -> str:
        return self._call("POST", "/_emulator/faults", rule)["id"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/_emulator/faults")

    def reset(self) -> None:
        """Forget the request log, the faults and the prompt cache; restore the start pace."""
        self._call("POST", "/_emulator/reset")
        self.set_pace(self._pace)

    def set_pace(self, scale: float) -> None:
        self._call("POST", "/_emulator/pacing", {"scale": scale})

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            payload = response.read()
        return json.loads(payload) if payload else None


class ServiceHandle:
    """A gRPC service process (`python -m inference_service` or `python -m gateway`)."""

    def __init__(
        self,
        name: str,
        module: str,
        listen_variable: str,
        env: Mapping[str, str],
        *,
        port: int | None = None,
        log_path: Path | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        aws_chain: bool = False,
        isolate: bool = False,
    ) -> None:
        """`aws_chain` keeps this environment's AWS profile variables (for real Bedrock);
        `isolate`, see the module docstring."""
        self.port = port or free_port()
        self.address = f"{HOST}:{self.port}"
        self.name = name
        # How start() connects to see the service listening: plaintext unless it serves TLS.
        self._credentials = credentials
        dropped = () if aws_chain else _AWS_VARIABLES_TO_DROP
        full_env = {k: v for k, v in os.environ.items() if k not in dropped}
        full_env.update(env)
        full_env[listen_variable] = self.address
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self._process = _Process(name, ["-m", module], full_env, log_path, isolate)

    @property
    def running(self) -> bool:
        return self._process.running

    @property
    def pid(self) -> int | None:
        popen = self._process.popen
        return None if popen is None else popen.pid

    @property
    def log_path(self) -> Path | None:
        return self._process.log_path

    def start(self) -> None:
        self._process.spawn()
        try:
            asyncio.run(self._wait_listening(time.monotonic() + START_TIMEOUT_S))
        except TimeoutError:
            self.stop()
            raise StackError(f"{self.name} did not listen on {self.address}") from None

    async def _wait_listening(self, deadline: float) -> None:
        # grpc.aio, closed on a loop of its own: a sync channel's close after
        # channel_ready_future could block the launcher's main thread for good (dualnova up
        # then hung at Ctrl-C, 3 runs in 10, the signal's KeyboardInterrupt lost in a finalizer).
        channel = (
            grpc.aio.insecure_channel(self.address)
            if self._credentials is None
            else grpc.aio.secure_channel(self.address, self._credentials)
        )
        async with channel:
            while True:
                self._process.check_alive()
                try:
                    await asyncio.wait_for(channel.channel_ready(), timeout=0.2)
                    return
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int | None:
        return self._process.stop(sig, timeout)


class Stack:
    """Emulator, inference service(s) and gateway, started in that order and stopped in reverse.

    `replicas` inference services (each a process on a port of its own) stand behind the
    one gateway, whose INFERENCE_TARGET then lists them all (an ipv4: target, balanced
    round robin). `inference` is the first replica, `replicas` all of them.

    `real_bedrock` runs no emulator: the inference services get this environment's
    AWS credential chain and region as they are, with no endpoint or credential of
    the emulator's. `isolate`: see the module docstring.
    """

    def __init__(
        self,
        *,
        pace: float = 1.0,
        emulator_port: int | None = None,
        inference_port: int | None = None,
        gateway_port: int | None = None,
        log_dir: Path | None = None,
        inference_env: Mapping[str, str] | None = None,
        gateway_env: Mapping[str, str] | None = None,
        replicas: int = 1,
        real_bedrock: bool = False,
        isolate: bool = False,
    ) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")

        def log(name: str) -> Path | None:
            return None if log_dir is None else log_dir / f"{name}.log"

        self._emulator = (
            None
            if real_bedrock
            else EmulatorHandle(
                port=emulator_port, pace=pace, log_path=log("emulator"), isolate=isolate
            )
        )
        bedrock_env = {} if self._emulator is None else self._emulator.aws_env()
        self.replicas = [
            ServiceHandle(
                "inference service" if replicas == 1 else f"inference service {index}",
                "inference_service",
                "INFERENCE_LISTEN",
                {**bedrock_env, **(inference_env or {})},
                port=inference_port if index == 0 else None,
                log_path=log(_replica_name(replicas, index)),
                aws_chain=real_bedrock,
                isolate=isolate,
            )
            for index in range(replicas)
        ]
        self.inference = self.replicas[0]
        self.gateway = ServiceHandle(
            "gateway",
            "gateway",
            "GATEWAY_LISTEN",
            {"INFERENCE_TARGET": inference_target(self.replicas), **(gateway_env or {})},
            port=gateway_port,
            log_path=log("gateway"),
            isolate=isolate,
        )

    @property
    def real_bedrock(self) -> bool:
        return self._emulator is None

    @property
    def emulator(self) -> EmulatorHandle:
        if self._emulator is None:
            raise RuntimeError("this stack runs on real Bedrock: it has no emulator")
        return self._emulator

    @property
    def parts(self) -> list[EmulatorHandle | ServiceHandle]:
        """Every process of the stack in start order: emulator (if any), replicas, gateway."""
        emulator = [] if self._emulator is None else [self._emulator]
        return [*emulator, *self.replicas, self.gateway]

    def start(self) -> Stack:
        started: list[EmulatorHandle | ServiceHandle] = []
        try:
            for part in self.parts:
                part.start()
                started.append(part)
        except BaseException:
            for part in reversed(started):
                part.stop()
            raise
        return self

    def stop(self) -> dict[str, int | None]:
        """Stop gateway, inference service(s) and emulator; returns each exit status."""
        statuses = {"gateway": self.gateway.stop()}
        for index, replica in enumerate(self.replicas):
            statuses["inference_service" if index == 0 else _replica_name(2, index)] = (
                replica.stop()
            )
        if self._emulator is not None:
            statuses["bedrock_emulator"] = self._emulator.stop()
        return statuses

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _replica_name(replicas: int, index: int) -> str:
    """inference_service alone, inference_service-<index> among several (logs, statuses)."""
    return "inference_service" if replicas == 1 else f"inference_service-{index}"


def inference_target(replicas: list[ServiceHandle]) -> str:
    """The gateway's INFERENCE_TARGET: HOST:PORT for one replica, an ipv4: list for several.

    gRPC's ipv4 resolver takes comma-separated addresses (ipv4:127.0.0.1:1,127.0.0.1:2);
    the gateway's round_robin then spreads calls over them.
    """
    if len(replicas) == 1:
        return replicas[0].address
    return "ipv4:" + ",".join(replica.address for replica in replicas)
