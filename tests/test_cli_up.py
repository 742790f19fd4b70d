"""`dualnova up` in a terminal, as a person runs it: a pseudo-terminal (pexpect), real processes.

A terminal's Ctrl-C signals the whole foreground process group, so these tests
press it (pexpect's sendintr) rather than signal `up` alone. Each test names
the reported problem it holds fixed.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import grpc
import pexpect
import pytest
from gateway_client import ask, dual_chat
from polling import wait_until
from processes import SERVICE_DEFAULTS, terminal_environ

from dualnova.chat.v1 import chat_pb2
from dualnova.cli.up import KNOWLEDGE_BASE_VARIABLE, chosen_knowledge_base
from dualnova.dev import restarts
from dualnova.dev.follow import LogFollower
from dualnova.dev.stack import EmulatorHandle, ServiceHandle, free_port
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from inference_service.bedrock.session import BedrockService

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("bedrock_emulator", "inference_service", "gateway")
BANNER_END = r"chat --gateway (\S+) "
WAIT_S = 45
# The endpoint variable of each Bedrock client the inference service builds (Knowledge
# Base ones included): each must name the emulator.
BEDROCK_ENDPOINTS = tuple(
    f"AWS_ENDPOINT_URL_{client.replace('-', '_').upper()}" for client in get_args(BedrockService)
)


@dataclass
class Terminal:
    """`dualnova up` on a pseudo-terminal, and what the person at it has seen so far."""

    child: pexpect.spawn
    screen: io.StringIO
    seen_children: set[int]

    def output(self) -> str:
        return self.screen.getvalue().replace("\r\n", "\n")

    def children(self) -> dict[str, int]:
        """up's child processes by module name (`python -m MODULE`)."""
        found = {}
        for pid in _child_pids(self.child.pid):
            self.seen_children.add(pid)
            module = _module_of(pid)
            if module is not None:
                found[module] = pid
        return found

    def press_ctrl_c(self) -> int:
        """Ctrl-C as typed (the terminal signals the foreground group); up's exit status."""
        self.child.sendintr()
        self.child.expect(pexpect.EOF, timeout=WAIT_S)
        self.child.close()
        assert self.child.exitstatus is not None, f"up died of signal {self.child.signalstatus}"
        return self.child.exitstatus


@contextmanager
def up_in_terminal(
    *args: str, tmp_path: Path, env: dict[str, str] | None = None
) -> Iterator[Terminal]:
    """Start `dualnova up ARGS` on a 160x45 pseudo-terminal; leave nothing running after."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "dualnova.cli.main", "up", *args],
        cwd=str(ROOT),
        env=env if env is not None else up_env(tmp_path),
        encoding="utf-8",
        codec_errors="replace",
        timeout=WAIT_S,
        dimensions=(45, 160),
    )
    screen = io.StringIO()
    child.logfile_read = screen
    terminal = Terminal(child, screen, set())
    try:
        yield terminal
    finally:
        if child.isalive():
            terminal.children()
            child.kill(signal.SIGINT)
            try:
                child.expect(pexpect.EOF, timeout=WAIT_S)
            except pexpect.TIMEOUT:
                child.kill(signal.SIGKILL)
        child.close(force=True)
        for pid in terminal.seen_children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def up_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What `up` runs with: this environment, the tests' service defaults, temp files here."""
    return {
        **terminal_environ(),
        **SERVICE_DEFAULTS,
        "PYTHONPATH": str(ROOT),
        # The default run directory is made under the temporary directory: the test's.
        "TMPDIR": str(tmp_path),
        **extra,
    }


def _child_pids(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _module_of(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return None
    return argv[argv.index("-m") + 1] if "-m" in argv[:-1] else None


def _environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _banner_value(output: str, label: str) -> str:
    match = re.search(rf"^  {re.escape(label)} +(\S+)", output, re.MULTILINE)
    assert match is not None, f"no {label!r} line in the banner: {output!r}"
    return match.group(1)


def _answers(gateway: str) -> bool:
    """One DualChat through `gateway` answered on both routes."""
    try:
        result = dual_chat(gateway, ask("are you back?"), timeout=10)
    except grpc.RpcError:
        return False
    return set(result.routes) == {"micro", "pro"} and all(
        route.error is None and route.text for route in result.routes.values()
    )


def _retrieve(inference: str, query: str) -> chat_pb2.Retrieval:
    """InferenceService/Retrieve with a grounding that names no knowledge base: the default."""
    request = inference_pb2.RetrieveRequest(grounding=chat_pb2.Grounding(), query=query)
    with grpc.insecure_channel(inference) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        response: inference_pb2.RetrieveResponse = stub.Retrieve(request, timeout=10)
    return response.retrieval


def _emulator_requests(url: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{url}/_emulator/requests", timeout=10) as response:
        requests: list[dict[str, object]] = json.loads(response.read())
    return requests


FAST = ("--pace", "0", "--inference-port", "0", "--gateway-port", "0")


def test_ctrl_c_in_the_terminal_stops_everything_and_exits_0(tmp_path: Path) -> None:
    """Problem 1: Ctrl-C gave `not stopped cleanly: inference_service exited with -15`, exit 1.

    The cause: the terminal's SIGINT reached the children too, and up's SIGTERM
    then landed on processes whose handlers were already gone. Each child must
    get one signal, up's.
    """
    logs = tmp_path / "logs"
    with up_in_terminal(*FAST, "--log-dir", str(logs), tmp_path=tmp_path) as up:
        up.child.expect(BANNER_END)
        children = up.children()
        assert set(children) == set(MODULES), children
        # Used first, as a person would: the gateway holds a connection to each replica.
        assert _answers(up.child.match.group(1))

        status = up.press_ctrl_c()

    output = up.output()
    assert status == 0, output
    assert "not stopped cleanly" not in output
    assert output.rstrip().endswith("dualnova up: stopped")
    wait_until(lambda: not any(_alive(pid) for pid in children.values()), "every child to exit")
    for name in ("inference_service", "gateway"):
        log = (logs / f"{name}.log").read_text()
        assert "stopping on SIGTERM" in log and "stopping on SIGINT" not in log, log


def test_the_children_do_not_outlive_a_killed_up(tmp_path: Path) -> None:
    """Out of the terminal's group, the children must still go when up is killed outright."""
    with up_in_terminal(*FAST, "--log-dir", str(tmp_path / "logs"), tmp_path=tmp_path) as up:
        up.child.expect(BANNER_END)
        children = up.children()
        assert set(children) == set(MODULES), children

        up.child.kill(signal.SIGKILL)

        wait_until(
            lambda: not any(_alive(pid) for pid in children.values()),
            lambda: f"the children of a killed up to exit: {children}",
        )


def test_a_second_up_on_taken_ports_is_refused_in_one_line_starting_nothing(
    tmp_path: Path,
) -> None:
    """Problem 2: a second `up` on the same ports started without a word."""
    inference_port, gateway_port = free_port(), free_port()
    ports = ("--inference-port", str(inference_port), "--gateway-port", str(gateway_port))
    first_logs, second_logs = tmp_path / "first", tmp_path / "second"
    with up_in_terminal(
        "--pace", "0", *ports, "--log-dir", str(first_logs), tmp_path=tmp_path
    ) as first:
        first.child.expect(BANNER_END)
        running = first.children()

        second = subprocess.run(
            [sys.executable, "-m", "dualnova.cli.main", "up", "--pace", "0", *ports]
            + ["--log-dir", str(second_logs)],
            cwd=ROOT,
            env=up_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=WAIT_S,
        )

        assert second.returncode == 1, second.stderr
        lines = second.stderr.splitlines()
        assert len(lines) == 1, second.stderr
        assert lines[0].startswith("dualnova up: ports ")
        assert f"{inference_port} (--inference-port)" in lines[0]
        assert f"{gateway_port} (--gateway-port)" in lines[0]
        assert second.stdout == ""
        # Nothing of the second was started: no process wrote a log.
        assert not list(second_logs.glob("*.log"))
        # The first goes on, untouched.
        assert first.children() == running
        assert _answers(f"127.0.0.1:{gateway_port}")
        assert first.press_ctrl_c() == 0


def test_up_is_quiet_and_its_banner_commands_run_as_printed(tmp_path: Path) -> None:
    """Problem 3: every process's JSON logs filled the terminal; `dualnova` was not on PATH."""
    # A shell without the virtual environment activated; probes every second, so the
    # emulator's probe lines would reach the terminal during the test if they could.
    shell_path = "/usr/bin:/bin"
    env = up_env(tmp_path, PATH=shell_path, DUALNOVA_HEALTH_INTERVAL="1")
    with up_in_terminal(*FAST, tmp_path=tmp_path, env=env) as up:
        up.child.expect(BANNER_END)
        assert '"level"' not in up.output(), up.output()
        up.child.expect(r"--all\r\n")
        banner = up.output()
        run_dir = Path(_banner_value(banner, "logs"))
        assert run_dir.parent == tmp_path, banner
        logs = {path.name for path in run_dir.iterdir()}
        assert logs == {"emulator.log", "inference_service.log", "gateway.log"}

        chat_line = re.search(r'^  (.+ chat --gateway \S+ ".+")$', banner, re.MULTILINE)
        assert chat_line is not None, banner
        chat = subprocess.run(
            shlex.split(chat_line.group(1)),
            capture_output=True,
            text=True,
            timeout=WAIT_S,
            env={"PATH": shell_path, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
        )
        assert chat.returncode == 0, chat.stderr
        assert any(line.startswith("[micro] ") for line in chat.stdout.splitlines())
        health_line = re.search(r"^  (.+ health --addr \S+ --all)$", banner, re.MULTILINE)
        assert health_line is not None, banner

        emulator_log = run_dir / "emulator.log"
        probes = emulator_log.read_text().count("GetFoundationModel")
        wait_until(
            lambda: emulator_log.read_text().count("GetFoundationModel") > probes,
            "a health probe after the banner",
        )
        assert up.press_ctrl_c() == 0

    output = up.output()
    assert '"level"' not in output and "GetFoundationModel" not in output, output
    assert '"message": "gateway listening' in (run_dir / "gateway.log").read_text()


def test_logs_follows_every_process_in_the_terminal(tmp_path: Path) -> None:
    """Problem 3: `--logs` shows the run directory's logs here, one short line per record."""
    with up_in_terminal(
        *FAST, "--logs", "--log-dir", str(tmp_path / "logs"), tmp_path=tmp_path
    ) as up:
        up.child.expect(BANNER_END)
        assert up.press_ctrl_c() == 0

    output = up.output()
    for label, message in (
        ("bedrock emulator ", "bedrock emulator listening"),
        ("inference service", "inference service listening"),
        ("gateway          ", "gateway listening"),
    ):
        line = rf"^\d\d:\d\d:\d\d\.\d{{3}} {label}  info +{message}"
        assert re.search(line, output, re.MULTILINE), output
    assert re.search(r"gateway +info +gateway stopped", output), output
    # In time order across the files: up stops the gateway first, then the inference service.
    gateway_stops = output.index("gateway stopping on SIGTERM")
    assert gateway_stops < output.index("inference service stopping on SIGTERM"), output
    assert output.rstrip().endswith("dualnova up: stopped")
    assert '{"time"' not in output


def test_a_killed_inference_service_is_restarted_on_its_port_while_the_rest_go_on(
    tmp_path: Path,
) -> None:
    """Problem 4: killing the inference service under `up` stopped everything, exit 1."""
    # The gateway reconnects to its upstream within DUALNOVA_HEALTH_INTERVAL.
    env = up_env(tmp_path, DUALNOVA_HEALTH_INTERVAL="1")
    with up_in_terminal(
        *FAST, "--log-dir", str(tmp_path / "logs"), tmp_path=tmp_path, env=env
    ) as up:
        up.child.expect(BANNER_END)
        gateway = up.child.match.group(1)
        inference = _banner_value(up.output(), "inference service")
        before = up.children()

        os.kill(before["inference_service"], signal.SIGKILL)
        up.child.expect(r"dualnova up: inference service (.+)\r\n")

        line = up.child.match.group(0).strip()
        assert line == (
            f"dualnova up: inference service was killed by SIGKILL; restarted on {inference}"
            f" (restart 1, after {restarts.BACKOFF_S[0]:g} s)"
        )
        after = up.children()
        assert after["inference_service"] != before["inference_service"]
        assert after["gateway"] == before["gateway"]
        assert after["bedrock_emulator"] == before["bedrock_emulator"]
        wait_until(lambda: _answers(gateway), "a DualChat through the same gateway")
        assert up.press_ctrl_c() == 0
    assert up.output().count("dualnova up:") == 2, up.output()


def test_real_bedrock_runs_no_emulator_and_gives_the_services_the_default_chain(
    tmp_path: Path, emulator: EmulatorHandle
) -> None:
    """--real-bedrock: no emulator of up's, no emulator endpoint or key; the AWS profile wins.

    The profile (files of the test's own, as ~/.aws would hold) points at a local
    Bedrock through its endpoint_url, so nothing leaves this machine.
    """
    config, credentials = tmp_path / "aws-config", tmp_path / "aws-credentials"
    config.write_text(
        f"[profile dualnova-local]\nregion = us-west-2\nendpoint_url = {emulator.url}\n"
    )
    credentials.write_text(
        "[dualnova-local]\naws_access_key_id = AKIAPROFILE0000LOCAL\n"
        "aws_secret_access_key = profile-secret\n"
    )
    env = {key: value for key, value in up_env(tmp_path).items() if not key.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        AWS_PROFILE="dualnova-local",
        AWS_EC2_METADATA_DISABLED="true",
    )
    with up_in_terminal(
        "--real-bedrock",
        "--inference-port",
        "0",
        "--gateway-port",
        "0",
        "--log-dir",
        str(tmp_path / "logs"),
        tmp_path=tmp_path,
        env=env,
    ) as up:
        up.child.expect(BANNER_END)
        gateway = up.child.match.group(1)
        banner = up.output()
        assert "bedrock            Amazon Bedrock, region us-west-2" in banner, banner
        assert "bedrock emulator" not in banner

        children = up.children()
        assert set(children) == {"inference_service", "gateway"}, children
        seen = _environment_of(children["inference_service"])
        aws = {key: value for key, value in seen.items() if key.startswith("AWS_")}
        assert aws == {
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
            "AWS_PROFILE": "dualnova-local",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        # No knowledge base unless asked for: the emulator's id means nothing on real Bedrock.
        assert seen[KNOWLEDGE_BASE_VARIABLE] == ""
        assert _banner_value(banner, "knowledge base") == "none"

        assert _answers(gateway)
        streams = [r for r in emulator.requests() if r["operation"] == "ConverseStream"]
        assert {r["access_key"] for r in streams} == {"AKIAPROFILE0000LOCAL"}
        assert up.press_ctrl_c() == 0


def test_up_grounds_in_the_emulators_knowledge_base_and_sends_nothing_to_aws(
    tmp_path: Path,
) -> None:
    """Issue 13: the knowledge base calls go to up's emulator, and grounding needs no flag.

    Every Bedrock endpoint of the inference service is the emulator's (a Retrieve
    sent to AWS with the emulator's fake keys would fail, or worse), and
    DUALNOVA_KNOWLEDGE_BASE_ID is the emulator's built-in KBDUALNOVA.
    """
    env = up_env(tmp_path, **{KNOWLEDGE_BASE_VARIABLE: ""})
    with up_in_terminal(
        *FAST, "--log-dir", str(tmp_path / "logs"), tmp_path=tmp_path, env=env
    ) as up:
        up.child.expect(BANNER_END)
        up.child.expect(r"--service knowledge-base\r\n")
        banner = up.output()
        emulator = _banner_value(banner, "bedrock emulator")
        inference = _banner_value(banner, "inference service")
        assert _banner_value(banner, "knowledge base") == "KBDUALNOVA", banner

        seen = _environment_of(up.children()["inference_service"])
        assert seen[KNOWLEDGE_BASE_VARIABLE] == "KBDUALNOVA"
        endpoints = {key: value for key, value in seen.items() if key.startswith("AWS_ENDPOINT")}
        assert endpoints == {variable: emulator for variable in BEDROCK_ENDPOINTS}

        retrieval = _retrieve(inference, "What is Amazon Nova Micro?")
        assert retrieval.knowledge_base_id == "KBDUALNOVA" and retrieval.passages
        retrieves = [r for r in _emulator_requests(emulator) if r["operation"] == "Retrieve"]
        assert [r["model_id"] for r in retrieves] == ["KBDUALNOVA"]

        # The banner's knowledge-base health command, run as printed.
        health_line = re.search(
            r"^  (.+ health --addr \S+ --service knowledge-base)$", banner, re.MULTILINE
        )
        assert health_line is not None, banner
        health = subprocess.run(
            shlex.split(health_line.group(1)),
            capture_output=True,
            text=True,
            timeout=WAIT_S,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert health.returncode == 0, health.stderr
        assert "SERVING" in health.stdout
        assert up.press_ctrl_c() == 0


def test_knowledge_base_none_leaves_the_service_without_one_whatever_the_environment(
    tmp_path: Path,
) -> None:
    """--knowledge-base none: an inherited DUALNOVA_KNOWLEDGE_BASE_ID does not reach the service."""
    env = up_env(tmp_path, **{KNOWLEDGE_BASE_VARIABLE: "KBNOTREADY"})
    with up_in_terminal(
        *FAST,
        "--knowledge-base",
        "none",
        "--log-dir",
        str(tmp_path / "logs"),
        tmp_path=tmp_path,
        env=env,
    ) as up:
        up.child.expect(BANNER_END)
        up.child.expect(r"--all\r\n")
        banner = up.output()
        assert _banner_value(banner, "knowledge base") == "none", banner
        assert "--service knowledge-base" not in banner
        inference = _banner_value(banner, "inference service")
        assert _environment_of(up.children()["inference_service"])[KNOWLEDGE_BASE_VARIABLE] == ""

        with pytest.raises(grpc.RpcError) as refused:
            _retrieve(inference, "What is Amazon Nova Micro?")
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert KNOWLEDGE_BASE_VARIABLE in str(refused.value.details())
        assert up.press_ctrl_c() == 0


@pytest.mark.parametrize(
    ("flag", "environment", "default", "expected"),
    [
        (None, {}, "KBDUALNOVA", "KBDUALNOVA"),  # the emulator's
        (None, {}, None, None),  # --real-bedrock: none
        (None, {KNOWLEDGE_BASE_VARIABLE: " KBNOTREADY "}, "KBDUALNOVA", "KBNOTREADY"),
        (None, {KNOWLEDGE_BASE_VARIABLE: "ABCDE12345"}, None, "ABCDE12345"),
        (None, {KNOWLEDGE_BASE_VARIABLE: ""}, "KBDUALNOVA", "KBDUALNOVA"),  # empty is unset
        ("ABCDE12345", {KNOWLEDGE_BASE_VARIABLE: "KBNOTREADY"}, "KBDUALNOVA", "ABCDE12345"),
        ("none", {KNOWLEDGE_BASE_VARIABLE: "KBNOTREADY"}, "KBDUALNOVA", None),
    ],
)
def test_the_knowledge_base_is_the_flag_then_the_environment_then_the_default(
    flag: str | None, environment: dict[str, str], default: str | None, expected: str | None
) -> None:
    assert chosen_knowledge_base(flag, environment, default) == expected


@pytest.mark.parametrize("value", ["KBDUALNOVA1", "KB-DUALNOV"])
def test_a_malformed_knowledge_base_id_exits_2_naming_the_flag(value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dualnova.cli.main", "up", "--knowledge-base", value],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]
    assert last.startswith("dualnova up: error: argument --knowledge-base: expected a knowledge")
    assert repr(value) in last and result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["--real-bedrock", "--pace", "0"],
        ["--real-bedrock", "--emulator-port", "0"],
        ["--inference-port", "5999", "--gateway-port", "5999"],
        ["--inference-port", "0", "--gateway-port", "0", "--log-dir", "/dev/null/logs"],
    ],
)
def test_arguments_that_cannot_run_together_exit_2_in_one_line(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dualnova.cli.main", "up", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("dualnova up: ")


def test_a_process_that_cannot_start_again_is_retried_with_backoff_then_given_up(
    tmp_path: Path,
) -> None:
    """The restart policy on a real process whose every start fails (a bad setting: exit 2)."""
    now = [0.0]
    lines: list[str] = []
    broken = ServiceHandle(
        "gateway",
        "gateway",
        "GATEWAY_LISTEN",
        {**SERVICE_DEFAULTS, "GATEWAY_MAX_STREAMS": "many"},
        log_path=tmp_path / "gateway.log",
    )
    keeper = restarts.Keeper([broken], lines.append, clock=lambda: now[0])

    keeper.check()  # not running: a restart is due in BACKOFF_S[0]
    with pytest.raises(restarts.GaveUp) as gave_up:
        for _ in range(restarts.GIVE_UP_AFTER):
            now[0] += 60
            keeper.check()

    assert [re.sub(r"\(.*\)", "(...)", line) for line in lines] == [
        f"gateway did not start again (...); next try in {delay:g} s"
        for delay in restarts.BACKOFF_S[1 : restarts.GIVE_UP_AFTER]
    ]
    assert "exited with status 2 while starting" in lines[0]
    assert str(gave_up.value).startswith(
        f"gateway did not start {restarts.GIVE_UP_AFTER} times in a row"
    )
    assert "GATEWAY_MAX_STREAMS='many'" in str(gave_up.value)
    assert not broken.running


def test_followed_logs_are_shown_in_time_order_across_files(tmp_path: Path) -> None:
    """`--logs` reads the files in rounds; within a round, records sort by their time."""
    gateway, inference = tmp_path / "gateway.log", tmp_path / "inference_service.log"
    shown: list[str] = []
    follower = LogFollower({"gateway": gateway, "inference service": inference}, shown.append)

    def record(when: str, message: str) -> str:
        return json.dumps({"time": f"2026-12-01T{when}Z", "level": "info", "message": message})

    gateway.write_text(record("10:00:00.300", "third") + "\n")
    inference.write_text(
        record("10:00:00.100", "first")
        + "\nTraceback (most recent call last):\n"
        + record("10:00:00.500", "fourth")
        + "\n"
        + record("10:00:00.200", "second")
        + "\n"
    )
    follower.start()
    follower.stop()

    assert shown == [
        "10:00:00.100 inference service  info    first",
        "inference service  Traceback (most recent call last):",
        "10:00:00.200 inference service  info    second",
        "10:00:00.300 gateway            info    third",
        "10:00:00.500 inference service  info    fourth",
    ]


def test_a_restart_waits_while_another_program_holds_the_port(tmp_path: Path) -> None:
    """A dead process's port taken meanwhile: no false "restarted"; the same port once free."""
    now = [0.0]
    lines: list[str] = []
    emulator = EmulatorHandle(pace=0, log_path=tmp_path / "emulator.log")
    emulator.start()
    try:
        keeper = restarts.Keeper([emulator], lines.append, clock=lambda: now[0])
        os.kill(emulator._process.popen.pid, signal.SIGKILL)  # type: ignore[union-attr]
        wait_until(lambda: not emulator.running, "the emulator to die")
        with socket.socket() as squatter:
            # Past the dead process's connections in TIME_WAIT, as servers bind.
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", emulator.port))
            squatter.listen()
            keeper.check()  # noticed; due in BACKOFF_S[0]
            now[0] += 60
            keeper.check()  # due, but the port is taken
        now[0] += 60
        keeper.check()

        assert lines == [
            f"bedrock emulator did not start again (port {emulator.port} is taken by another"
            f" program); next try in {restarts.BACKOFF_S[1]:g} s",
            f"bedrock emulator was killed by SIGKILL; restarted on 127.0.0.1:{emulator.port}"
            f" (restart 1, after {restarts.BACKOFF_S[1]:g} s)",
        ]
        assert emulator.running
        assert emulator.requests() == []  # answering, on the port it had
    finally:
        emulator.stop()
