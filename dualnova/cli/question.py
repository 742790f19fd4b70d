"""Where `dualnova chat` takes its question from: the argument, stdin, or a file.

A long question does not fit the command line (the kernel caps an argument
list at a few hundred kilobytes to a few megabytes), so stdin and --file carry
any size; the gateway's own limits then decide, with a message naming them.
`-` as the question, `--file -`, or no question at all while stdin is not a
terminal all read stdin. With no question and stdin a terminal the command
refuses rather than wait silently for typing.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import BinaryIO

__all__ = ["QuestionError", "read_question"]

STDIN = "-"


class QuestionError(ValueError):
    """No usable question; str() is one line for the person (a usage error)."""


def read_question(
    argument: str | None,
    file: str | None,
    *,
    stdin: BinaryIO | None = None,
    stdin_is_terminal: bool | None = None,
) -> str:
    """The question text, from `argument`, `file` (a path or `-`) or stdin.

    One trailing line break (what `echo` and editors add) is dropped; the rest
    is sent as written. QuestionError when both or neither are given, when a
    file cannot be read, or when the text is blank or not UTF-8.
    """
    if argument is not None and file is not None:
        raise QuestionError("give the question as an argument or with --file, not both")
    if argument is not None and argument != STDIN:
        text, where = argument, "the question"
    elif file is not None and file != STDIN:
        where = f"the question in {file}"
        text = _decode(_read_file(file), where)
    else:
        stream = stdin if stdin is not None else _stdin()
        terminal = stream.isatty() if stdin_is_terminal is None else stdin_is_terminal
        if argument is None and file is None and terminal:
            raise QuestionError(
                "no question: give it as an argument, or `-` or --file FILE to read it"
                " from stdin or a file"
            )
        if terminal:
            # `-` on a terminal: a person types; say how to finish rather than sit silent.
            print("(type the question; end it with Ctrl-D on a line of its own)", file=sys.stderr)
        where = "the question read from stdin"
        text = _decode(stream.read(), where)
    text = _drop_final_line_break(text)
    if not text.strip():
        raise QuestionError(f"{where} is empty")
    return text


def _stdin() -> BinaryIO:
    if sys.stdin is None:
        # Started with fd 0 closed: nothing to read, which is an empty question.
        return io.BytesIO()
    return sys.stdin.buffer


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise QuestionError(f"--file {path}: {error.strerror or error}") from None


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise QuestionError(f"{where} is not UTF-8 text (byte {error.start})") from None


def _drop_final_line_break(text: str) -> str:
    for ending in ("\r\n", "\n"):
        if text.endswith(ending):
            return text[: -len(ending)]
    return text
