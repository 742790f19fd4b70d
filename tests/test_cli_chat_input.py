"""`dualnova chat` takes its question from stdin or a file, of any size the gateway admits.

A question past the kernel's limit on one argument (128 KiB on Linux) could
not be sent at all, and `-` went to the models as the question "-". What
Bedrock received is read from the emulator's request log.
"""

from __future__ import annotations

import re
from pathlib import Path

import pexpect
import pytest
from cli_chat_support import QUESTION, dualnova, expected, on_terminal, route_streams, table_rows
from cli_chat_support import tokens as token_cells

from bedrock_emulator.answers import count_tokens
from dualnova.dev.stack import EmulatorHandle, ServiceHandle, free_port

# Over three times what one argument may be, under the gateway's 500,000 characters of text.
LONG_QUESTION = " ".join(f"단어{index}" for index in range(60_000))


def asked_texts(emulator: EmulatorHandle) -> dict[str, str]:
    """The user text each route's ConverseStream carried."""
    return {
        route: entry["body"]["messages"][-1]["content"][0]["text"]
        for route, entry in route_streams(emulator).items()
    }


def assert_answered(stdout: str, question: str) -> None:
    lines = stdout.splitlines()
    rows = table_rows(stdout)
    for route in ("micro", "pro"):
        answer = expected(route, question)
        assert f"[{route}] {answer.text}" in lines
        assert token_cells(rows[route])[:3] == [
            answer.usage()["inputTokens"],
            answer.usage()["outputTokens"],
            answer.usage()["totalTokens"],
        ]


def test_dash_reads_the_question_from_stdin(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = dualnova("chat", "--gateway", gateway.address, "-", stdin=f"{QUESTION}\n".encode())

    assert result.returncode == 0, result.stderr
    # The line break `echo` adds is not part of the question.
    assert asked_texts(emulator) == {"micro": QUESTION, "pro": QUESTION}
    assert_answered(result.stdout, QUESTION)


def test_without_a_question_a_piped_stdin_is_the_question(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = dualnova("chat", "--gateway", gateway.address, stdin=LONG_QUESTION.encode())

    assert result.returncode == 0, result.stderr
    assert asked_texts(emulator) == {"micro": LONG_QUESTION, "pro": LONG_QUESTION}
    assert_answered(result.stdout, LONG_QUESTION)
    assert expected("micro", LONG_QUESTION).usage()["inputTokens"] == count_tokens(LONG_QUESTION)


def test_file_reads_a_question_too_long_for_the_command_line(
    gateway: ServiceHandle, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    question_file = tmp_path / "question.txt"
    question_file.write_text(LONG_QUESTION + "\n", encoding="utf-8")

    result = dualnova("chat", "--gateway", gateway.address, "--file", str(question_file))

    assert result.returncode == 0, result.stderr
    assert asked_texts(emulator) == {"micro": LONG_QUESTION, "pro": LONG_QUESTION}
    assert_answered(result.stdout, LONG_QUESTION)


def test_thirty_three_megabytes_on_stdin_reach_the_gateway_and_its_limit_is_named(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    question = "가" * (33 * 1024 * 1024 // 3)  # 33 MiB of UTF-8, past GATEWAY_MAX_MESSAGE_BYTES

    result = dualnova("chat", "--gateway", gateway.address, "-", stdin=question.encode())

    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert re.fullmatch(
        r"dualnova: the gateway refused the request: request: \d+ bytes, more than the limit"
        r" of 33554432 bytes \(GATEWAY_MAX_MESSAGE_BYTES\)",
        line,
    ), line
    assert [e for e in emulator.requests() if e["operation"] == "ConverseStream"] == []


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (
            ("hello?", "--file", "{dir}/question.txt"),
            b"",
            "give the question as an argument or with --file, not both",
        ),
        (
            ("--file", "{dir}/missing.txt"),
            b"",
            "--file {dir}/missing.txt: No such file or directory",
        ),
        (("-",), b"", "the question read from stdin is empty"),
        ((), b" \n\t\n", "the question read from stdin is empty"),
        (("-",), b"\xff\xfe question", "the question read from stdin is not UTF-8 text (byte 0)"),
        (("--file", "{dir}/blank.txt"), b"", "the question in {dir}/blank.txt is empty"),
    ],
)
def test_a_question_that_cannot_be_read_is_a_usage_error(
    args: tuple[str, ...], stdin: bytes, says: str, tmp_path: Path
) -> None:
    (tmp_path / "question.txt").write_text("hello?")
    (tmp_path / "blank.txt").write_text("\n")
    closed = f"127.0.0.1:{free_port()}"  # never reached: the question is checked first

    result = dualnova(
        "chat", "--gateway", closed, *(arg.format(dir=tmp_path) for arg in args), stdin=stdin
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"dualnova chat: {says.format(dir=tmp_path)}"]


def test_without_a_question_on_a_terminal_it_says_how_rather_than_wait() -> None:
    closed = f"127.0.0.1:{free_port()}"
    with on_terminal("chat", "--gateway", closed) as child:
        child.expect_exact("dualnova chat: no question: give it as an argument, or `-` or --file")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 2


def test_dash_on_a_terminal_reads_typed_lines_until_ctrl_d(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    with on_terminal("chat", "--gateway", gateway.address, "-") as child:
        child.expect_exact("(type the question; end it with Ctrl-D on a line of its own)")
        child.sendline("첫째 줄")
        child.sendline("둘째 줄")
        child.sendeof()
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0

    assert asked_texts(emulator) == {"micro": "첫째 줄\n둘째 줄", "pro": "첫째 줄\n둘째 줄"}


def test_ctrl_c_while_the_question_is_read_sends_nothing_and_exits_130(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    with on_terminal("chat", "--gateway", gateway.address, "-") as child:
        child.expect_exact("end it with Ctrl-D")
        child.sendline("반쯤 쓴 질문")
        child.sendintr()
        child.expect(pexpect.EOF)
        seen = child.before
        child.close()
        assert child.exitstatus == 130

    assert "Traceback" not in seen
    assert [e for e in emulator.requests() if e["operation"] == "ConverseStream"] == []
