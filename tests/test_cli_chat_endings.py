"""How `dualnova chat` ends when it cannot finish: a reader that goes away, the timeout, Ctrl-C.

Each ends on a whole line with the exit status the module docstring and the
README give (141 closed pipe, 4 timeout, 130 Ctrl-C), with no traceback, and
stops asking the gateway for what nobody will read (the emulator records the
hang-up). Pipes are real shell pipelines; the terminal is a pseudo-terminal.
"""

from __future__ import annotations

import re
import shlex
import subprocess

import pexpect
from cli_chat_support import COMMAND, ENV, MODELS, QUESTION, ROOT, expected, on_terminal
from cli_chat_support import table_rows as final_table
from polling import wait_until

from dualnova.dev.stack import EmulatorHandle, ServiceHandle

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SHOW_CURSOR = "\x1b[?25h"


def piped_into(reader: str, *args: str) -> tuple[int, str, str]:
    """`dualnova ARGS | READER` in bash: dualnova's exit status, the reader's output, stderr."""
    script = f'{shlex.join([*COMMAND, *args])} | {reader}; echo "status=${{PIPESTATUS[0]}}" >&2'
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env=ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    *stderr, status = result.stderr.splitlines()
    return int(status.removeprefix("status=")), result.stdout, "\n".join(stderr)


def pro_stream(emulator: EmulatorHandle) -> dict[str, object]:
    (entry,) = [
        e
        for e in emulator.requests()
        if e["operation"] == "ConverseStream" and e["model_id"] == MODELS["pro"]
    ]
    return entry


def test_a_closed_pipe_ends_quietly_with_status_141(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    # Pro's answer comes well after Micro's line, so it is written after `head` has left.
    emulator.add_fault(kind="slow", model=MODELS["pro"], delay_ms=20)

    status, stdout, stderr = piped_into("head -n 1", "chat", "--gateway", gateway.address, QUESTION)

    assert stdout == f"[micro] {expected('micro').text}\n"
    assert stderr == ""  # no BrokenPipeError traceback, no "Exception ignored"
    assert status == 141


def test_json_into_a_closed_pipe_cancels_the_call(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="slow", model=MODELS["pro"], delay_ms=200)

    status, stdout, stderr = piped_into(
        "head -n 2", "chat", "--json", "--gateway", gateway.address, QUESTION
    )

    assert len(stdout.splitlines()) == 2
    assert stderr == ""
    assert status == 141
    # Pro was still streaming: the closed pipe hung up the call rather than wait it out.
    wait_until(lambda: pro_stream(emulator)["disconnected"], "pro's stream to be hung up")
    assert pro_stream(emulator)["completed"] is False


def test_a_timeout_marks_the_unfinished_route_and_ends_on_a_whole_line(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="hang", model=MODELS["pro"], after_deltas=2)

    status, stdout, stderr = piped_into(
        "cat", "chat", "--gateway", gateway.address, "--timeout", "1", QUESTION
    )

    assert status == 4
    assert stdout.endswith("\n")
    tagged = [line for line in stdout.splitlines() if line.startswith("[")]
    pro_start = "".join(piece for piece in re.findall(r"\S+\s*", expected("pro").text)[:2])
    assert tagged == [
        f"[micro] {expected('micro').text}",
        f"[pro] {pro_start.rstrip()}",
        "[pro] (cut off: timeout after 1 s)",
    ]
    rows = final_table(stdout)
    assert rows["micro"][0] == "end_turn"
    # No usage, no timings and no cost: Pro never finished.
    assert rows["pro"] == ["cut off", "-", "-", "-", "-", "-", "-", "-", "-"]
    assert re.search(r"^trace id: [0-9a-f]{32}$", stdout, re.MULTILINE)
    assert stderr == (
        "dualnova: no complete answer before the timeout (--timeout 1);"
        " unfinished routes are marked cut off"
    )


def test_a_timeout_on_a_terminal_marks_the_route_and_gives_the_cursor_back(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="hang", model=MODELS["pro"], after_deltas=2)

    with on_terminal("chat", "--gateway", gateway.address, "--timeout", "1", QUESTION) as child:
        child.expect(pexpect.EOF)
        seen = child.before
        child.close()
        assert child.exitstatus == 4

    assert SHOW_CURSOR in seen
    screen = ANSI.sub("", seen)
    assert "(cut off: timeout after 1 s)" in screen
    assert "no complete answer before the timeout (--timeout 1)" in screen
    assert screen.endswith("\r\n")
    assert "Traceback" not in screen


def test_ctrl_c_on_a_terminal_cancels_the_call_and_ends_cleanly(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="hang", model=MODELS["pro"], after_deltas=2)

    with on_terminal("chat", "--gateway", gateway.address, QUESTION) as child:
        child.expect_exact("(end_turn)")  # Micro has answered in its column; Pro hangs
        child.sendintr()
        child.expect(pexpect.EOF)
        seen = child.before
        child.close()
        assert child.exitstatus == 130

    assert SHOW_CURSOR in seen
    screen = ANSI.sub("", seen)
    assert "(cut off: interrupted)" in screen
    assert "Traceback" not in screen and "KeyboardInterrupt" not in screen
    wait_until(lambda: pro_stream(emulator)["disconnected"], "pro's stream to be hung up")
