"""`dualnova chat` and `dualnova up` as a person runs them: real processes, output piped.

Piped output is the plain view (route-tagged lines, a text table per route,
the trace id line); the expected answers and token counts come from the
emulator's own answer function, so a lost delta or a wrong count shows.
The tests/test_cli_chat_*.py files take `dualnova chat` further.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from cli_chat_support import (
    MODELS,
    QUESTION,
    ROOT,
    dualnova,
    expected,
    table_rows,
    tokens,
    usage_cells,
)
from polling import wait_until
from processes import SERVICE_DEFAULTS

from dualnova.dev.stack import EmulatorHandle, ServiceHandle, free_port


def token_rows(stdout: str) -> dict[str, list[int | None]]:
    """The final table's token cells by route name; '-' cells as None."""
    return {name: tokens(cells) for name, cells in table_rows(stdout).items()}


# --- dualnova chat -------------------------------------------------------------


def test_chat_prints_both_answers_token_table_and_trace_id(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = dualnova("chat", "--gateway", gateway.address, QUESTION)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    micro, pro = expected("micro"), expected("pro")
    assert f"[micro] {micro.text}" in lines
    assert f"[pro] {pro.text}" in lines
    rows = token_rows(result.stdout)
    assert rows["micro"] == usage_cells(micro)
    assert rows["pro"] == usage_cells(pro)
    assert rows["total"] == [a + b for a, b in zip(rows["micro"], rows["pro"], strict=True)]
    assert re.fullmatch(r"trace id: [0-9a-f]{32}", lines[-1])


def test_chat_options_reach_both_routes(gateway: ServiceHandle, emulator: EmulatorHandle) -> None:
    result = dualnova(
        "chat",
        "--gateway",
        gateway.address,
        "--ordering",
        "micro-first",
        "--max-tokens",
        "4",
        "--system",
        "짧게 답하세요.",
        QUESTION,
    )

    assert result.returncode == 0, result.stderr
    tagged = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert tagged == [
        f"[micro] {expected('micro', maxTokens=4).text.rstrip()}",
        "[micro] (stopped: max_tokens)",
        f"[pro] {expected('pro', maxTokens=4).text.rstrip()}",
        "[pro] (stopped: max_tokens)",
    ]
    streams = [e for e in emulator.requests() if e["operation"] == "ConverseStream"]
    assert len(streams) == 2
    for entry in streams:
        assert entry["body"]["system"] == [{"text": "짧게 답하세요."}]
        assert entry["body"]["inferenceConfig"]["maxTokens"] == 4


def test_chat_shows_a_failed_route_and_exits_0_when_the_other_answered(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="throttling", model=MODELS["pro"], operations=["ConverseStream"])

    result = dualnova("chat", "--gateway", gateway.address, QUESTION)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"[micro] {expected('micro').text}" in lines
    assert any(line.startswith("[pro] error RESOURCE_EXHAUSTED: ") for line in lines)
    rows = token_rows(result.stdout)
    assert rows["pro"] == [None] * 5
    assert rows["total"] == rows["micro"]


def test_chat_exits_1_when_both_routes_fail(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="throttling", operations=["ConverseStream"])

    result = dualnova("chat", "--gateway", gateway.address, QUESTION)

    assert result.returncode == 1
    errors = [
        line for line in result.stdout.splitlines() if line.startswith("[") and " error " in line
    ]
    assert sorted(line.split(" error ")[0] for line in errors) == ["[micro]", "[pro]"]
    rows = table_rows(result.stdout)
    assert rows["micro"][0] == rows["pro"][0] == "error RESOURCE_EXHAUSTED"
    assert re.search(r"^trace id: [0-9a-f]{32}$", result.stdout, re.MULTILINE)


def test_chat_without_a_gateway_exits_3_with_one_line() -> None:
    closed = f"127.0.0.1:{free_port()}"

    result = dualnova("chat", "--gateway", closed, "hello?")

    assert result.returncode == 3
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"dualnova: cannot reach the gateway at {closed}")


def test_chat_reads_the_gateway_from_the_environment() -> None:
    closed = f"127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "dualnova.cli.main", "chat", "hello?"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DUALNOVA_GATEWAY": closed},
    )
    assert result.returncode == 3
    assert f"gateway at {closed}" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("chat",),
        ("chat", "   "),
        ("chat", "--gateway", "not-an-address", "hello?"),
        ("chat", "--max-tokens", "0", "hello?"),
        ("chat", "--ordering", "pro-first", "hello?"),
        ("nonsense",),
    ],
)
def test_usage_errors_exit_2_without_a_traceback(args: Sequence[str]) -> None:
    result = dualnova(*args)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()


# --- dualnova up -----------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """Live child processes of `pid`, from /proc (Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def read_until(stream: object, pattern: str, timeout: float) -> tuple[re.Match[str] | None, str]:
    """Read lines from `stream` in a thread until one matches `pattern` or time runs out."""
    seen: list[str] = []
    found: list[re.Match[str]] = []

    def reader() -> None:
        for line in stream:  # type: ignore[attr-defined]
            seen.append(line)
            match = re.search(pattern, line)
            if match:
                found.append(match)
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout)
    return (found[0] if found else None), "".join(seen)


def test_up_serves_a_chat_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dualnova.cli.main",
            "up",
            "--pace",
            "0",
            "--gateway-port",
            "0",
            "--inference-port",
            "0",
            "--log-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # `up` hands its environment to the services it starts.
        env={**os.environ, **SERVICE_DEFAULTS, "PYTHONPATH": str(ROOT)},
    )
    try:
        match, banner = read_until(up.stdout, r"dualnova chat --gateway (\S+) ", timeout=45)
        assert match is not None, f"no chat example in: {banner!r}"
        assert "bedrock emulator   http://127.0.0.1:" in banner
        children = children_of(up.pid)
        assert len(children) == 3

        result = dualnova("chat", "--gateway", match.group(1), QUESTION)
        assert result.returncode == 0, result.stderr
        assert f"[micro] {expected('micro').text}" in result.stdout.splitlines()
        assert f"[pro] {expected('pro').text}" in result.stdout.splitlines()

        up.send_signal(signal.SIGINT)
        status = up.wait(timeout=30)
        rest = up.stdout.read() if up.stdout else ""
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert status == 0, up.stderr.read() if up.stderr else ""
    assert "dualnova up: stopped" in rest
    wait_until(
        lambda: not any(alive(pid) for pid in children), "every child of up to exit", timeout=5
    )


def test_up_reports_a_taken_port_and_exits_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = dualnova(
            "up",
            "--pace",
            "0",
            "--inference-port",
            "0",
            "--gateway-port",
            str(port),
            "--log-dir",
            str(tmp_path),
            timeout=60,
        )

    assert result.returncode == 1
    # Refused before anything starts (tests/test_cli_up.py has the second-`up` case).
    assert result.stderr.startswith(f"dualnova up: port {port} (--gateway-port) is taken")
    assert "Traceback" not in result.stderr
