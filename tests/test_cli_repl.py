"""`dualnova repl` as a person types it: a pseudo-terminal (pexpect) against the real pair.

What each turn asked Bedrock is read from the emulator's request log, so
"the second turn carries the first answer" is checked where it matters:
in the conversation Bedrock received. The expected answers come from the
emulator's own answer function.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pexpect
import pytest
from converse_support import WEATHER_INPUT, WEATHER_SCHEMA
from gateway_client import route_converse_request
from polling import wait_until
from processes import terminal_environ

from bedrock_emulator.answers import Answer, compose_answer
from dualnova.dev.stack import EmulatorHandle, ServiceHandle, free_port

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"micro": "amazon.nova-micro-v1:0", "pro": "amazon.nova-pro-v1:0"}
PROMPT = "you> "
FIRST = "부산 여행 일정 좀 짜줘"
SECOND = "둘째 날은 어디로 갈까?"
THIRD = "비가 오면 어떻게 하지?"


@contextmanager
def repl(*args: str) -> Iterator[pexpect.spawn]:
    """`dualnova repl ARGS` on a 160x45 pseudo-terminal, at its first prompt; killed if left."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "dualnova.cli.main", "repl", *args],
        cwd=str(ROOT),
        env={**terminal_environ(), "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"},
        encoding="utf-8",
        dimensions=(45, 160),
        timeout=30,
    )
    try:
        child.expect_exact(PROMPT)
        yield child
    finally:
        if child.isalive():
            child.terminate(force=True)
        child.close()


def ask(child: pexpect.spawn, question: str) -> str:
    """Type a question; return what the person reads up to the line saying who continues."""
    child.sendline(question)
    child.expect(r"([^\r\n]*(?:continues|neither route answered)[^\r\n]*)\r\n")
    line = child.match.group(1)
    child.expect_exact(PROMPT)
    return line


def command(child: pexpect.spawn, line: str) -> str:
    """Type a slash command; return its output up to the next prompt."""
    child.sendline(line)
    child.expect_exact(PROMPT)
    return child.before


def leave_with_ctrl_d(child: pexpect.spawn) -> int:
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def answer(route: str, question: str) -> Answer:
    """What the emulator answers on `route`: it answers the last user message alone."""
    return compose_answer(MODELS[route], route_converse_request(route, question))


def conversation(*turns: tuple[str, str]) -> list[dict[str, Any]]:
    """Bedrock's messages for (role, text) turns."""
    return [{"role": role, "content": [{"text": text}]} for role, text in turns]


def calls(emulator: EmulatorHandle) -> list[dict[str, dict[str, Any]]]:
    """Each DualChat's ConverseStream log entry per route, oldest DualChat first."""
    by_route: dict[str, list[dict[str, Any]]] = {"micro": [], "pro": []}
    for entry in emulator.requests():
        if entry["operation"] == "ConverseStream":
            by_route["micro" if "micro" in entry["model_id"] else "pro"].append(entry)
    assert len(by_route["micro"]) == len(by_route["pro"])
    return [
        {"micro": micro, "pro": pro}
        for micro, pro in zip(by_route["micro"], by_route["pro"], strict=True)
    ]


def asked(emulator: EmulatorHandle) -> list[dict[str, list[dict[str, Any]]]]:
    """Each DualChat's messages as Bedrock saw them, per route."""
    return [
        {route: entry["body"]["messages"] for route, entry in call.items()}
        for call in calls(emulator)
    ]


def bedrock_usage(usage: dict[str, int]) -> dict[str, int]:
    """Bedrock's metadata usage in the transcript's words."""
    return {
        "input_tokens": usage["inputTokens"],
        "output_tokens": usage["outputTokens"],
        "total_tokens": usage["totalTokens"],
        "cache_read_input_tokens": usage.get("cacheReadInputTokens", 0),
        "cache_write_input_tokens": usage.get("cacheWriteInputTokens", 0),
    }


def micro(question: str) -> str:
    return answer("micro", question).text


def pro(question: str) -> str:
    return answer("pro", question).text


# --- turns and whose answer continues ---------------------------------------------


def test_the_second_turn_carries_micros_first_answer(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    with repl("--gateway", gateway.address) as child:
        first = ask(child, FIRST)
        ask(child, SECOND)
        status = leave_with_ctrl_d(child)

    assert first.startswith("Micro's answer continues the conversation (/continue pro")
    assert status == 0
    calls = asked(emulator)
    assert len(calls) == 2
    assert calls[0]["micro"] == calls[0]["pro"] == conversation(("user", FIRST))
    history = conversation(("user", FIRST), ("assistant", micro(FIRST)), ("user", SECOND))
    assert calls[1]["micro"] == calls[1]["pro"] == history


def test_continue_pro_makes_pros_answer_the_history(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    with repl("--gateway", gateway.address) as child:
        ask(child, FIRST)
        said = command(child, "/continue pro")
        ask(child, SECOND)
        ask(child, THIRD)
        assert leave_with_ctrl_d(child) == 0

    assert "Pro's answer continues the conversation" in said
    calls = asked(emulator)
    # /continue re-decides the turn just shown, and the turns after it.
    expected = conversation(
        ("user", FIRST),
        ("assistant", pro(FIRST)),
        ("user", SECOND),
        ("assistant", pro(SECOND)),
        ("user", THIRD),
    )
    assert calls[2]["micro"] == calls[2]["pro"] == expected


def test_continue_both_gives_each_route_its_own_history(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    with repl("--gateway", gateway.address, "--continue", "both") as child:
        said = ask(child, FIRST)
        ask(child, SECOND)
        assert leave_with_ctrl_d(child) == 0

    assert said == "each route continues from its own answer"
    calls = asked(emulator)
    for route, own in (("micro", micro), ("pro", pro)):
        assert calls[1][route] == conversation(
            ("user", FIRST), ("assistant", own(FIRST)), ("user", SECOND)
        ), route


def test_a_route_that_fails_leaves_the_other_answer_to_continue(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(
        kind="throttling", model=MODELS["micro"], operations=["ConverseStream"], times=1
    )
    with repl("--gateway", gateway.address) as child:
        said = ask(child, FIRST)
        ask(child, SECOND)
        assert leave_with_ctrl_d(child) == 0

    assert said.startswith("Pro's answer continues the conversation (Micro had no answer)")
    calls = asked(emulator)
    history = conversation(("user", FIRST), ("assistant", pro(FIRST)), ("user", SECOND))
    assert calls[-1]["micro"] == calls[-1]["pro"] == history


# --- slash commands ---------------------------------------------------------------


def test_save_writes_every_turn_with_both_answers_usage_and_timings(
    gateway: ServiceHandle, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    path = tmp_path / "talk.json"
    with repl("--gateway", gateway.address) as child:
        ask(child, FIRST)
        command(child, "/continue pro")
        ask(child, SECOND)
        said = command(child, f"/save {path}")
        assert leave_with_ctrl_d(child) == 0

    assert f"saved 2 turns to {path}" in said
    transcript = json.loads(path.read_text(encoding="utf-8"))
    turns = transcript["turns"]
    # The token counts are Bedrock's own, call by call (the second turn's input has the history).
    assert [turn["routes"][route]["usage"] for turn in turns for route in ("micro", "pro")] == [
        bedrock_usage(call[route]["usage"])
        for call in calls(emulator)
        for route in ("micro", "pro")
    ]
    assert [turn["question"] for turn in turns] == [FIRST, SECOND]
    assert [turn["continued_with"] for turn in turns] == ["pro", "pro"]
    for turn in turns:
        assert re.fullmatch(r"[0-9a-f]{32}", turn["trace_id"])
        assert turn["elapsed_ms"] > 0
        for route in ("micro", "pro"):
            seen = turn["routes"][route]
            expected = answer(route, turn["question"])
            assert seen["text"] == expected.text
            assert seen["stop_reason"] == "end_turn"
            assert seen["error"] is None
            assert seen["latency_ms"] >= seen["time_to_first_token_ms"] > 0
        total = turn["total_usage"]["total_tokens"]
        assert total == sum(turn["routes"][r]["usage"]["total_tokens"] for r in ("micro", "pro"))


def test_save_to_a_missing_directory_says_so_and_keeps_the_conversation(
    gateway: ServiceHandle, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    with repl("--gateway", gateway.address) as child:
        ask(child, FIRST)
        said = command(child, f"/save {tmp_path / 'missing' / 'talk.json'}")
        ask(child, SECOND)
        assert leave_with_ctrl_d(child) == 0

    assert "dualnova repl: cannot save to" in said
    assert asked(emulator)[1]["micro"][1] == {
        "role": "assistant",
        "content": [{"text": micro(FIRST)}],
    }


def test_clear_forgets_the_conversation(gateway: ServiceHandle, emulator: EmulatorHandle) -> None:
    with repl("--gateway", gateway.address) as child:
        ask(child, FIRST)
        said = command(child, "/clear")
        ask(child, SECOND)
        assert leave_with_ctrl_d(child) == 0

    assert "conversation cleared (1 turn forgotten)" in said
    assert asked(emulator)[1]["micro"] == conversation(("user", SECOND))


def test_system_and_order_apply_to_the_next_turns(
    gateway: ServiceHandle, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    path = tmp_path / "talk.json"
    with repl("--gateway", gateway.address) as child:
        command(child, "/system 짧게 답하세요.")
        command(child, "/order micro-first")
        ask(child, FIRST)
        command(child, "/system")
        ask(child, SECOND)
        refused = command(child, "/order pro-first")
        unknown = command(child, "/frobnicate")
        command(child, f"/save {path}")
        assert leave_with_ctrl_d(child) == 0

    streams = [e for e in emulator.requests() if e["operation"] == "ConverseStream"]
    systems = [entry["body"].get("system") for entry in streams]
    assert systems == [[{"text": "짧게 답하세요."}]] * 2 + [None] * 2
    turns = json.loads(path.read_text(encoding="utf-8"))["turns"]
    assert [(turn["system"], turn["ordering"]) for turn in turns] == [
        (["짧게 답하세요."], "micro-first"),
        ([], "micro-first"),
    ]
    assert "/order takes one of interleaved, micro-first" in refused
    assert "unknown command /frobnicate; /help lists them" in unknown


# --- Ctrl-C, Ctrl-D, /quit ----------------------------------------------------------


def test_ctrl_c_mid_answer_cancels_the_turn_and_keeps_the_conversation(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    with repl("--gateway", gateway.address) as child:
        ask(child, FIRST)
        emulator.add_fault(kind="hang", after_deltas=2, operations=["ConverseStream"])
        child.sendline(SECOND)
        wait_until(
            lambda: len([e for e in emulator.requests() if e.get("fault") == "hang"]) == 2,
            "both routes to be waiting on Bedrock",
            timeout=10,
        )
        child.expect_exact("질문:")  # the start of an answer, on screen
        child.sendintr()
        # Both routes were cut mid-answer: the view marks them as `dualnova chat` does.
        child.expect_exact("(cut off: interrupted)")
        child.expect_exact("(cut off: interrupted)")
        child.expect_exact("(cancelled: the conversation is as it was before this question)")
        child.expect_exact(PROMPT)
        wait_until(
            lambda: all(
                entry["disconnected"]
                for entry in emulator.requests()
                if entry.get("fault") == "hang"
            ),
            "both routes' Bedrock streams to be hung up on",
            timeout=10,
        )
        emulator.clear_faults()
        ask(child, THIRD)
        assert leave_with_ctrl_d(child) == 0

    history = conversation(("user", FIRST), ("assistant", micro(FIRST)), ("user", THIRD))
    assert asked(emulator)[-1]["micro"] == history


def test_ctrl_c_drops_a_half_typed_line_and_at_an_empty_prompt_exits_0(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    with repl("--gateway", gateway.address) as child:
        ask(child, FIRST)
        child.send("반쯤 쓴 질문")
        child.expect_exact("반쯤 쓴 질문")  # echoed: the prompt holds it
        child.sendintr()
        child.expect_exact(PROMPT)
        ask(child, SECOND)
        child.sendintr()
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0

    history = conversation(("user", FIRST), ("assistant", micro(FIRST)), ("user", SECOND))
    assert asked(emulator)[-1]["micro"] == history


def test_quit_exits_0(gateway: ServiceHandle) -> None:
    with repl("--gateway", gateway.address) as child:
        child.sendline("/quit")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0


# --- without a terminal, and when things go wrong ------------------------------------


def run_piped(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dualnova.cli.main", "repl", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_piped_lines_are_a_conversation_in_plain_lines(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = run_piped("--gateway", gateway.address, stdin=f"{FIRST}\n/continue pro\n{SECOND}\n")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"[micro] {micro(FIRST)}" in lines
    assert f"[pro] {pro(SECOND)}" in lines
    assert PROMPT not in result.stdout
    assert asked(emulator)[1]["pro"][1]["content"] == [{"text": pro(FIRST)}]


def test_an_unreachable_gateway_is_one_line_and_the_prompt_stays(tmp_path: Path) -> None:
    closed = f"127.0.0.1:{free_port()}"
    path = tmp_path / "talk.json"

    result = run_piped("--gateway", closed, stdin=f"hello?\n/save {path}\n")

    assert result.returncode == 0
    assert result.stderr.startswith(f"dualnova repl: cannot reach the gateway at {closed}")
    assert "Traceback" not in result.stderr
    assert f"saved 0 turns to {path}" in result.stdout
    assert json.loads(path.read_text(encoding="utf-8"))["turns"] == []


def test_the_inference_service_is_named_as_chat_names_it(inference: ServiceHandle) -> None:
    result = run_piped("--gateway", inference.address, stdin="hello?\n")

    assert result.returncode == 0
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"dualnova repl: {inference.address} is the DualNova inference service"
    ), line
    assert "try --gateway 127.0.0.1:50052" in line
    assert line.endswith("; the conversation is as it was before this question")


def test_tool_calls_show_in_the_repl_as_in_chat(
    gateway: ServiceHandle, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]))

    result = run_piped(
        "--gateway",
        gateway.address,
        "--tools",
        str(tools),
        stdin=f"Ask get_weather, then explain.\n{SECOND}\n",
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for route in ("micro", "pro"):
        (call,) = [line for line in lines if line.startswith(f"[{route}] tool call ")]
        assert re.fullmatch(
            rf"\[{route}\] tool call get_weather\(id tooluse_[0-9a-f]{{16}}\) "
            + re.escape(WEATHER_INPUT),
            call,
        ), call
        assert f"[{route}] (stopped: tool_use)" in lines
    for entry in calls(emulator)[0].values():
        assert entry["body"]["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    # The answer's two text blocks carry on as one turn, a line apart; the call is not resent.
    (said,) = asked(emulator)[1]["micro"][1]["content"]
    assert said == {"text": "I will call get_weather.\nAfter the result, I will explain."}


@pytest.mark.parametrize(
    "args",
    [
        ("--gateway", "not-an-address"),
        ("--system", "  "),
        ("--continue", "nobody"),
        ("--tool-choice", "any"),
        ("--tools", "no/such/tools.json"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    result = run_piped(*args, stdin="")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()
