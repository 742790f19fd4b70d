"""`dualnova chat` with Converse options (issue 12): images, documents, tools, guardrails, latency.

Through the three processes: what reached Bedrock is read off the emulator's
request log, what was shown off the plain view, the JSON lines and the live
view on a pseudo-terminal. The answers are the emulator's deterministic ones.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pexpect
import pytest
from cli_chat_support import MODELS, dualnova, on_terminal, table_rows
from converse_support import WEATHER_INPUT, WEATHER_SCHEMA, bodies, fragments, png

from dualnova.dev.stack import EmulatorHandle, ServiceHandle, free_port

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TOOL_USE_ID = re.compile(r"tooluse_[0-9a-f]{16}")
WEATHER = [
    {"name": "get_weather", "description": "Current weather", "input_schema": WEATHER_SCHEMA}
]
ASK = "What is the weather in Paris? Ask get_weather."


def write_tools(tmp_path: Path, tools: object) -> str:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(tools))
    return str(path)


def chat_json(gateway: ServiceHandle, *args: str) -> list[dict[str, object]]:
    """`dualnova chat --json` at `gateway` with `args`: its records, once it exited 0."""
    result = dualnova("chat", "--json", "--gateway", gateway.address, *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_an_image_reaches_pro_alone_and_pro_describes_it(
    gateway: ServiceHandle, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    image = tmp_path / "photo.bin"  # no extension: the format comes from the bytes
    image.write_bytes(png(3, 2))

    result = dualnova("chat", "--gateway", gateway.address, "--image", str(image), "Describe it.")

    assert result.returncode == 0, result.stderr
    sent = bodies(emulator)
    assert sent["micro"]["messages"] == [{"role": "user", "content": [{"text": "Describe it."}]}]
    (pro_turn,) = sent["pro"]["messages"]
    assert pro_turn["content"] == [
        {"text": "Describe it."},
        {
            "image": {
                "format": "png",
                "source": {"bytes": base64.b64encode(png(3, 2)).decode()},
            }
        },
    ]
    pro_lines = [line for line in result.stdout.splitlines() if line.startswith("[pro] ")]
    assert "I see a png image of 3x2 pixels." in " ".join(pro_lines)
    assert table_rows(result.stdout)["micro"][0] == "end_turn"


def test_a_document_reaches_pro_named_after_its_file(
    gateway: ServiceHandle, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    document = tmp_path / "trip_plan  v2.md"  # '_' and the double space do not fit the name rule
    document.write_bytes(b"# Busan\n\nDay 1: Haeundae.\n")

    result = dualnova(
        "chat", "--gateway", gateway.address, "--document", str(document), "Summarise it."
    )

    assert result.returncode == 0, result.stderr
    sent = bodies(emulator)
    assert sent["micro"]["messages"][0]["content"] == [{"text": "Summarise it."}]
    block = sent["pro"]["messages"][0]["content"][1]["document"]
    assert block["format"] == "md"
    assert block["name"] == "trip-plan v2"
    assert "I read the document trip-plan v2 (26 bytes)." in result.stdout


@pytest.mark.parametrize(
    ("option", "content", "name", "says"),
    [
        ("--image", b"GIF7 not quite", "x.gif", "not a png, jpeg, gif or webp image"),
        ("--image", b"\x89PNG" + b"\x00" * 3_932_160, "big.png", "3932164 bytes, more than"),
        ("--document", b"data", "notes.rtf", "unknown document format .rtf; Bedrock takes pdf"),
        ("--document", b"", "empty.txt", "the file is empty"),
        ("--document", b"x" * 4_718_593, "big.txt", "4718593 bytes, more than Bedrock's limit"),
    ],
    ids=["image-format", "image-size", "document-format", "document-empty", "document-size"],
)
def test_an_attachment_bedrock_would_refuse_is_a_usage_error_naming_the_file(
    tmp_path: Path, option: str, content: bytes, name: str, says: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    closed = f"127.0.0.1:{free_port()}"  # never reached

    result = dualnova("chat", "--gateway", closed, option, str(path), "hello?")

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"dualnova chat: {option} {path}: ")
    assert says in line


@pytest.mark.parametrize(
    ("option", "count", "name", "says"),
    [
        ("--image", 21, "i{}.png", "--image: 21 images, more than Bedrock's 20"),
        ("--document", 6, "d{}.txt", "--document: 6 documents, more than Bedrock's 5"),
    ],
)
def test_more_attachments_than_bedrock_takes_is_a_usage_error(
    tmp_path: Path, option: str, count: int, name: str, says: str
) -> None:
    args = []
    for index in range(count):
        path = tmp_path / name.format(index)
        path.write_bytes(png(1, 1))
        args += [option, str(path)]
    closed = f"127.0.0.1:{free_port()}"

    result = dualnova("chat", "--gateway", closed, *args, "hello?")

    assert result.returncode == 2
    assert result.stderr == f"dualnova chat: {says}\n"


def test_a_missing_attachment_is_a_usage_error() -> None:
    closed = f"127.0.0.1:{free_port()}"

    result = dualnova("chat", "--gateway", closed, "--image", "no/such.png", "hello?")

    assert result.returncode == 2
    assert result.stderr == "dualnova chat: --image no/such.png: No such file or directory\n"


@pytest.mark.parametrize(
    "tools",
    [
        WEATHER,
        [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Current weather",
                    "inputSchema": {"json": WEATHER_SCHEMA},
                }
            }
        ],
    ],
    ids=["plain", "bedrock-shape"],
)
def test_tools_reach_both_routes_and_each_tool_call_is_printed(
    gateway: ServiceHandle, emulator: EmulatorHandle, tmp_path: Path, tools: object
) -> None:
    result = dualnova(
        "chat", "--gateway", gateway.address, "--tools", write_tools(tmp_path, tools), ASK
    )

    assert result.returncode == 0, result.stderr
    sent = bodies(emulator)
    for route in ("micro", "pro"):
        assert sent[route]["toolConfig"] == {
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "description": "Current weather",
                        "inputSchema": {"json": WEATHER_SCHEMA},
                    }
                }
            ]
        }
        lines = [line for line in result.stdout.splitlines() if line.startswith(f"[{route}] ")]
        call = [line for line in lines if "tool call" in line]
        assert len(call) == 1, lines
        match = re.fullmatch(
            rf"\[{route}\] tool call get_weather\(id ({TOOL_USE_ID.pattern})\) (.*)", call[0]
        )
        assert match and match.group(2) == WEATHER_INPUT, call
        assert lines.index(f"[{route}] I will call get_weather.") < lines.index(call[0])
        assert f"[{route}] (stopped: tool_use)" in lines
        assert table_rows(result.stdout)[route][0] == "tool_use"


def test_json_carries_the_tool_call_fragments_exactly_as_bedrock_streamed_them(
    gateway: ServiceHandle, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    tools = write_tools(tmp_path, WEATHER)
    records: Any = chat_json(
        gateway, "--tools", tools, "--tool-choice", "any", "What is the weather? Then explain."
    )

    assert bodies(emulator)["pro"]["toolConfig"]["toolChoice"] == {"any": {}}
    for route in ("micro", "pro"):
        mine = [r for r in records if r.get("route") == route]
        (start,) = [r for r in mine if r["type"] == "tool_use_start"]
        assert start["content_block_index"] == 1 and start["name"] == "get_weather"
        assert TOOL_USE_ID.fullmatch(start["tool_use_id"])
        inputs = [r for r in mine if r["type"] == "tool_input_delta"]
        assert [r["input_json"] for r in inputs] == fragments(WEATHER_INPUT)
        assert {r["content_block_index"] for r in inputs} == {1}
        stops = [r["content_block_index"] for r in mine if r["type"] == "content_block_stop"]
        assert 1 in stops
        texts = [r for r in mine if r["type"] == "delta"]
        assert {r["content_block_index"] for r in texts} == {0, 2}
        stop = mine[-1]
        assert stop["type"] == "stop"
        assert (stop["stop_reason"], stop["reason"]) == ("tool_use", "STOP_REASON_TOOL_USE")


def test_the_live_view_shows_the_tool_call_and_its_input(
    gateway: ServiceHandle, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    tools = write_tools(tmp_path, WEATHER)
    with on_terminal("chat", "--gateway", gateway.address, "--tools", tools, ASK) as child:
        child.expect(pexpect.EOF)
        screen = ANSI.sub("", child.before)
        child.close()
        assert child.exitstatus == 0

    assert len(re.findall(rf"tool call get_weather\(id {TOOL_USE_ID.pattern}\)", screen)) >= 2
    assert WEATHER_INPUT in screen


def test_the_live_view_grows_the_tool_input_as_its_fragments_arrive(
    gateway: ServiceHandle, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    # Pro's fragments come a while apart, so the screen is redrawn between them.
    emulator.add_fault(kind="slow", model=MODELS["pro"], delay_ms=200)
    tools = write_tools(tmp_path, WEATHER)
    with on_terminal(
        "chat", "--gateway", gateway.address, "--tools", tools, ASK, columns=240
    ) as child:
        child.expect(pexpect.EOF)
        screen = ANSI.sub("", child.before)
        child.close()
        assert child.exitstatus == 0

    shown = re.findall(r"tool call get_weather\(id tooluse_[0-9a-f]{16}\) ?([^ │]*)", screen)
    assert shown and set(shown) <= {WEATHER_INPUT[:n] for n in range(len(WEATHER_INPUT) + 1)}
    partial = {text for text in shown if 0 < len(text) < len(WEATHER_INPUT)}
    assert partial, shown  # seen before it was whole
    assert all(len(text) % 7 == 0 for text in partial), partial  # whole fragments of 7
    assert WEATHER_INPUT in shown


@pytest.mark.parametrize(
    ("tools", "choice", "says"),
    [
        ("[]", None, "must be a JSON list of at least one tool"),
        ("{not json", None, "is not valid JSON"),
        (
            json.dumps([{"name": "get weather", "input_schema": WEATHER_SCHEMA}]),
            None,
            "tool 1 (get weather) name: must be",
        ),
        (
            json.dumps([{"name": "x", "input_schema": {"type": "string"}}]),
            None,
            '"type" is "object"',
        ),
        (json.dumps([{"name": "x"}]), None, 'needs "input_schema"'),
        (json.dumps(WEATHER), "get_time", "--tool-choice get_time: not auto, any or the name"),
    ],
    ids=["empty", "not-json", "bad-name", "schema-type", "no-schema", "choice"],
)
def test_a_bad_tools_file_is_a_usage_error(
    tmp_path: Path, tools: str, choice: str | None, says: str
) -> None:
    path = tmp_path / "tools.json"
    path.write_text(tools)
    closed = f"127.0.0.1:{free_port()}"
    choose = [] if choice is None else ["--tool-choice", choice]

    result = dualnova("chat", "--gateway", closed, "--tools", str(path), *choose, "hello?")

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("dualnova chat: --t"), line
    assert says in line


def test_a_guardrail_intervention_is_one_line_per_route(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = dualnova(
        "chat", "--gateway", gateway.address, "--guardrail", "gr-dualnova:1", "The forbidden one?"
    )

    assert result.returncode == 0, result.stderr
    sent = bodies(emulator)
    for route in ("micro", "pro"):
        assert sent[route]["guardrailConfig"] == {
            "guardrailIdentifier": "gr-dualnova",
            "guardrailVersion": "1",
            "trace": "enabled",
        }
        lines = [line for line in result.stdout.splitlines() if line.startswith(f"[{route}] ")]
        assert lines == [
            f"[{route}] Sorry, I can't help with that.",
            f"[{route}] guardrail intervened: topicPolicy Forbidden (DENY, BLOCKED)",
            f"[{route}] (stopped: guardrail_intervened)",
        ]


def test_no_guardrail_line_when_it_did_not_intervene_or_the_trace_is_off(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    allowed = dualnova(
        "chat", "--gateway", gateway.address, "--guardrail", "gr-dualnova:DRAFT", "Hi."
    )
    untraced = dualnova(
        "chat",
        "--gateway",
        gateway.address,
        "--guardrail",
        "gr-dualnova:1",
        "--guardrail-trace",
        "disabled",
        "The forbidden one?",
    )

    assert allowed.returncode == 0 and untraced.returncode == 0, allowed.stderr + untraced.stderr
    assert "guardrail" not in allowed.stdout
    assert "guardrail intervened" not in untraced.stdout
    assert "[pro] (stopped: guardrail_intervened)" in untraced.stdout.splitlines()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--guardrail", "gr-dualnova"], "argument --guardrail: expected ID:VERSION"),
        (["--guardrail", "gr-dualnova:v1"], 'version must be a version number or "DRAFT"'),
        (["--guardrail-trace", "enabled"], "--guardrail-trace goes with --guardrail"),
        (["--tool-choice", "any"], "--tool-choice goes with --tools"),
        (["--latency", "fast"], "argument --latency: invalid choice: 'fast'"),
    ],
    ids=["no-version", "bad-version", "trace-alone", "choice-alone", "latency"],
)
def test_converse_option_usage_errors(args: list[str], says: str) -> None:
    closed = f"127.0.0.1:{free_port()}"

    result = dualnova("chat", "--gateway", closed, *args, "hello?")

    assert result.returncode == 2
    assert says in result.stderr.splitlines()[-1]


def test_latency_for_pro_alone_and_for_both_routes(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    pro_only = dualnova("chat", "--gateway", gateway.address, "--pro-latency", "optimized", "Hi.")

    assert pro_only.returncode == 0, pro_only.stderr
    sent = bodies(emulator)
    assert "performanceConfig" not in sent["micro"]
    assert sent["pro"]["performanceConfig"] == {"latency": "optimized"}
    assert table_rows(pro_only.stdout)["pro"][0] == "end_turn"

    emulator.reset()
    both = dualnova("chat", "--gateway", gateway.address, "--latency", "optimized", "Hi.")

    assert both.returncode == 0, both.stderr  # Pro answered
    sent = bodies(emulator)
    assert sent["micro"]["performanceConfig"] == {"latency": "optimized"}
    assert sent["pro"]["performanceConfig"] == {"latency": "optimized"}
    (micro_error,) = [line for line in both.stdout.splitlines() if line.startswith("[micro] error")]
    assert "The model doesn't support latency-optimized inference." in micro_error
    assert table_rows(both.stdout)["pro"][0] == "end_turn"


def test_json_carries_the_guardrail_trace_and_what_bedrock_applied(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    records: Any = chat_json(
        gateway,
        *("--guardrail", "gr-dualnova:1", "--guardrail-trace", "enabled_full"),
        *("--pro-latency", "optimized", "The forbidden one?"),
    )

    assert bodies(emulator)["pro"]["guardrailConfig"]["trace"] == "enabled_full"
    for route in ("micro", "pro"):
        (trace,) = [
            r for r in records if r.get("route") == route and r["type"] == "guardrail_trace"
        ]
        assert trace["intervened"] is True
        assert json.loads(trace["trace_json"])["inputAssessment"]["gr-dualnova"]["topicPolicy"]
        (stop,) = [r for r in records if r.get("route") == route and r["type"] == "stop"]
        assert stop["reason"] == "STOP_REASON_GUARDRAIL_INTERVENED"
    (pro_stop,) = [r for r in records if r.get("route") == "pro" and r["type"] == "stop"]
    assert pro_stop["applied"]["latency"] == "LATENCY_OPTIMIZED"
