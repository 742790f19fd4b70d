"""Running `dualnova chat` as a person or a script does, and reading what it printed.

Piped (subprocess) for the plain and JSON views, a pseudo-terminal (pexpect)
for the live one. The expected answers come from the emulator's own answer
function, so a lost delta or a wrong count shows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pexpect
from gateway_client import route_converse_request
from processes import terminal_environ

from bedrock_emulator.answers import Answer, compose_answer
from dualnova.dev.stack import EmulatorHandle
from dualnova.pricing import DEFAULT_PRICES, TOKENS_PER_PRICE

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"micro": "amazon.nova-micro-v1:0", "pro": "amazon.nova-pro-v1:0"}
QUESTION = "부산 여행 일정 좀 짜줘"
COMMAND = [sys.executable, "-m", "dualnova.cli.main"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
# The plain view's table header (route_table_text).
TABLE_HEADER = ("route", "stop", "first token", "latency", "input", "output", "total")


def dualnova(
    *args: str,
    stdin: bytes | None = None,
    timeout: float = 30,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`dualnova ARGS` with stdout and stderr piped; stdin is `stdin`, or empty (not a terminal)."""
    result = subprocess.run(
        [*COMMAND, *args],
        cwd=ROOT,
        input=b"" if stdin is None else stdin,
        capture_output=True,
        timeout=timeout,
        env={**ENV, **(env or {})},
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8"),
        result.stderr.decode("utf-8"),
    )


@contextmanager
def on_terminal(*args: str, rows: int = 45, columns: int = 160) -> Iterator[pexpect.spawn]:
    """`dualnova ARGS` on a pseudo-terminal of rows x columns; killed if the test leaves it."""
    child = pexpect.spawn(
        COMMAND[0],
        [*COMMAND[1:], *args],
        cwd=str(ROOT),
        env={**terminal_environ(), "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"},
        encoding="utf-8",
        dimensions=(rows, columns),
        timeout=30,
    )
    try:
        yield child
    finally:
        if child.isalive():
            child.terminate(force=True)
        child.close()


def expected(
    route: str, question: str = QUESTION, system: list[str] | None = None, **config: Any
) -> Answer:
    """What the emulator answers on `route` for one question with these settings."""
    return compose_answer(MODELS[route], route_converse_request(route, question, system, **config))


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The plain view's final table: cells by route name (the total row has no stop or timings)."""
    lines = stdout.splitlines()
    (header,) = [i for i, line in enumerate(lines) if line.split()[:2] == ["route", "stop"]]
    assert tuple(re.split(r"\s{2,}", lines[header])[:7]) == TABLE_HEADER
    rows = {}
    for line in lines[header + 1 : header + 4]:
        name, *cells = re.split(r"\s{2,}", line)
        rows[name] = cells
    return rows


def tokens(cells: list[str]) -> list[int | None]:
    """The five token cells before a table row's cost; '-' as None."""
    return [None if cell == "-" else int(cell) for cell in cells[-6:-1]]


def cost(cells: list[str]) -> str:
    """The estimated cost cell that ends a table row ($0.000123, or '-')."""
    return cells[-1]


def priced(answer: Answer, route: str) -> float:
    """What the built-in prices (dualnova.pricing) make of `answer`'s tokens on `route`."""
    usage = answer.usage()
    price = DEFAULT_PRICES[MODELS[route]]
    return (
        usage["inputTokens"] * price.input + usage["outputTokens"] * price.output
    ) / TOKENS_PER_PRICE


def usage_cells(answer: Answer) -> list[int | None]:
    usage = answer.usage()
    return [usage["inputTokens"], usage["outputTokens"], usage["totalTokens"], 0, 0]


def route_streams(emulator: EmulatorHandle) -> dict[str, dict[str, Any]]:
    """The ConverseStream log entry of each route, for a test that made one DualChat."""
    entries = [e for e in emulator.requests() if e["operation"] == "ConverseStream"]
    by_route = {"micro" if "micro" in e["model_id"] else "pro": e for e in entries}
    assert len(entries) == len(by_route) == 2, entries
    return by_route
