"""`dualnova chat`'s options: --version, --json, the shared and per-route settings, the table.

The settings are checked where they matter, in the ConverseStream requests
Bedrock (the emulator) received; the table and the JSON lines against the
emulator's own answers and counts. The live view runs on a pseudo-terminal.
"""

from __future__ import annotations

import json
import re
from importlib import metadata

import pexpect
import pytest
from cli_chat_support import (
    MODELS,
    QUESTION,
    dualnova,
    expected,
    on_terminal,
    route_streams,
    table_rows,
    tokens,
    usage_cells,
)

from dualnova.cli.main import build_parser
from dualnova.dev.stack import EmulatorHandle, ServiceHandle, free_port
from dualnova.gateway.v1 import gateway_pb2

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MILLISECONDS = re.compile(r"\d+ ms")
# Every kind a DualChatResponse may carry, under its oneof field name.
EVENT_TYPES = {
    field.name for field in gateway_pb2.DualChatResponse.DESCRIPTOR.oneofs_by_name["event"].fields
}
KIND_LETTERS = {"start": "s", "delta": "d", "usage": "u", "stop": "s"}


def subcommands() -> list[str]:
    parser = build_parser()
    (choices,) = [a.choices for a in parser._subparsers._actions if a.choices]  # type: ignore[union-attr]
    return sorted(choices)


@pytest.mark.parametrize("command", [(), *((name,) for name in subcommands())], ids=str)
def test_version_on_the_top_level_and_every_subcommand(command: tuple[str, ...]) -> None:
    result = dualnova(*command, "--version")

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"dualnova {metadata.version('dualnova')}\n"


def test_json_writes_one_object_per_event_and_the_summary_last(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = dualnova("chat", "--json", "--gateway", gateway.address, QUESTION)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {record["type"] for record in records} <= EVENT_TYPES
    *events, summary = records
    assert summary["type"] == "summary" and "route" not in summary
    assert re.fullmatch(r"[0-9a-f]{32}", summary["trace_id"])
    for route in ("micro", "pro"):
        answer = expected(route)
        mine = [record for record in events if record["route"] == route]
        kinds = "".join(KIND_LETTERS.get(r["type"], "") for r in mine)
        assert re.fullmatch("sd+us", kinds), kinds  # start, deltas, usage, stop
        mine = [r for r in mine if r["type"] in KIND_LETTERS]
        assert mine[0]["model_id"] == MODELS[route]
        assert "".join(r["text"] for r in mine if r["type"] == "delta") == answer.text
        usage = {
            "input_tokens": answer.usage()["inputTokens"],
            "output_tokens": answer.usage()["outputTokens"],
            "total_tokens": answer.usage()["totalTokens"],
            "cache_read_input_tokens": 0,
            "cache_write_input_tokens": 0,
        }
        assert mine[-2] == {"type": "usage", "route": route, **usage}
        assert summary["usage_by_route"][route] == usage
        stop = mine[-1]
        assert stop["stop_reason"] == "end_turn"
        assert 0 < stop["time_to_first_token_ms"] <= stop["latency_ms"]


def test_shared_and_per_route_settings_reach_each_route(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = dualnova(
        "chat",
        "--gateway",
        gateway.address,
        "--system",
        "짧게 답하세요.",
        "--temperature",
        "0.25",
        "--max-tokens",
        "40",
        "--micro-temperature",
        "0.75",
        "--pro-system",
        "자세히 답하세요.",
        "--pro-max-tokens",
        "6",
        QUESTION,
    )

    assert result.returncode == 0, result.stderr
    bodies = {route: entry["body"] for route, entry in route_streams(emulator).items()}
    assert bodies["micro"]["system"] == [{"text": "짧게 답하세요."}]
    assert bodies["micro"]["inferenceConfig"] == {"maxTokens": 40, "temperature": 0.75}
    assert bodies["pro"]["system"] == [{"text": "자세히 답하세요."}]
    assert bodies["pro"]["inferenceConfig"] == {"maxTokens": 6, "temperature": 0.25}
    rows = table_rows(result.stdout)
    assert rows["micro"][0] == "end_turn"
    assert rows["pro"][0] == "max_tokens"
    assert "[pro] (stopped: max_tokens)" in result.stdout.splitlines()


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--temperature", "1.5", "must be between 0 and 1, got 1.5"),
        ("--temperature", "nan", "must be between 0 and 1, got nan"),
        ("--temperature", "warm", "expected a number from 0 to 1, got 'warm'"),
        ("--micro-temperature", "-0.1", "must be between 0 and 1, got -0.1"),
        ("--pro-temperature", "2", "must be between 0 and 1, got 2"),
        ("--max-tokens", "0", "must be between 1 and 2147483647, got 0"),
        ("--micro-max-tokens", "2147483648", "must be between 1 and 2147483647, got 2147483648"),
        ("--pro-max-tokens", "ten", "expected a whole number, got 'ten'"),
    ],
)
def test_an_out_of_range_setting_is_a_usage_error_naming_the_option(
    option: str, value: str, says: str
) -> None:
    closed = f"127.0.0.1:{free_port()}"  # never reached

    result = dualnova("chat", "--gateway", closed, option, value, "hello?")

    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"dualnova chat: error: argument {option}: {says}"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("option", ["--system", "--micro-system", "--pro-system"])
def test_a_blank_system_prompt_is_a_usage_error(option: str) -> None:
    closed = f"127.0.0.1:{free_port()}"

    result = dualnova("chat", "--gateway", closed, option, "  ", "hello?")

    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"dualnova chat: {option} must not be empty"]


def test_the_table_shows_each_routes_stop_first_token_latency_and_tokens(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = dualnova("chat", "--gateway", gateway.address, "--pro-max-tokens", "4", QUESTION)

    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    micro, pro = expected("micro"), expected("pro", maxTokens=4)
    assert rows["micro"][0] == "end_turn"
    assert rows["pro"][0] == "max_tokens"
    for route, answer in (("micro", micro), ("pro", pro)):
        first_token, latency = rows[route][1:3]
        assert MILLISECONDS.fullmatch(first_token), first_token
        assert MILLISECONDS.fullmatch(latency), latency
        assert int(first_token.split()[0]) <= int(latency.split()[0])
        assert tokens(rows[route]) == usage_cells(answer)
    assert tokens(rows["total"]) == [
        a + b for a, b in zip(usage_cells(micro), usage_cells(pro), strict=True)
    ]


def test_the_live_view_ends_with_the_same_table(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    with on_terminal(
        "chat", "--gateway", gateway.address, "--pro-max-tokens", "4", QUESTION
    ) as child:
        child.expect(pexpect.EOF)
        screen = ANSI.sub("", child.before)
        child.close()
        assert child.exitstatus == 0

    rows = [[cell.strip() for cell in re.split("[│┃]", line)[1:-1]] for line in screen.splitlines()]
    assert ["route", "stop", "first token", "latency", "input", "output", "total"] in [
        row[:7] for row in rows
    ]
    cells = {row[0]: row[1:] for row in rows if row and row[0] in ("micro", "pro", "total")}
    assert cells["micro"][0] == "end_turn"
    assert cells["pro"][0] == "max_tokens"
    assert MILLISECONDS.fullmatch(cells["micro"][1]) and MILLISECONDS.fullmatch(cells["pro"][2])
    assert [int(cell) for cell in cells["micro"][3:-1]] == usage_cells(expected("micro"))
    assert [int(cell) for cell in cells["pro"][3:-1]] == usage_cells(expected("pro", maxTokens=4))
    assert re.search(r"trace id: [0-9a-f]{32}", screen)
