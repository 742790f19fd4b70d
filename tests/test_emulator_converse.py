"""The emulator's Converse beyond text: capabilities, tools, media, guardrails and options.

Driven by the real boto3 bedrock-runtime client (converse_stream, and converse
where the shape differs) against the session emulator process; expected
answers come from the contract's rules, written out here, so a change to the
emulator that breaks them fails here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import urllib.error
import urllib.request
import zlib
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from bedrock_emulator.answers import compose_answer, count_tokens
from dualnova.dev.stack import EmulatorHandle

MICRO = "amazon.nova-micro-v1:0"
LITE = "amazon.nova-lite-v1:0"
PRO = "amazon.nova-pro-v1:0"
WEATHER = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Weather for a city",
        "inputSchema": {
            "json": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer"},
                    "scale": {"type": "number"},
                    "metric": {"type": "boolean"},
                    "hours": {"type": "array"},
                    "where": {"type": "object"},
                },
                "required": ["city"],
            }
        },
    }
}
CLOCK = {
    "toolSpec": {
        "name": "get_time",
        "inputSchema": {"json": {"type": "object", "properties": {"zone": {"type": "string"}}}},
    }
}
WEATHER_INPUT = '{"city":"emulated","days":1,"scale":1.5,"metric":true,"hours":[],"where":{}}'
GUARDRAIL = {"guardrailIdentifier": "gr-dualnova", "guardrailVersion": "1"}


def runtime(emulator: EmulatorHandle) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=emulator.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def stream(emulator: EmulatorHandle, model: str, **request: Any) -> list[dict[str, Any]]:
    """Every event of one ConverseStream, without the `p` padding boto3 keeps."""
    events = list(runtime(emulator).converse_stream(modelId=model, **request)["stream"])
    return [{name: _unpadded(body) for name, body in event.items()} for event in events]


def _unpadded(body: Any) -> Any:
    return {k: v for k, v in body.items() if k != "p"} if isinstance(body, dict) else body


def refusal(emulator: EmulatorHandle, model: str, **request: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as excinfo:
        runtime(emulator).converse_stream(modelId=model, **request)
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


def text_of(events: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        e["contentBlockDelta"]["delta"].get("text", "")
        for e in events
        if "contentBlockDelta" in e and e["contentBlockDelta"]["contentBlockIndex"] == index
    )


def metadata(events: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [e["metadata"] for e in events if "metadata" in e]
    return dict(found)


def stop_reason(events: list[dict[str, Any]]) -> str:
    (found,) = [e["messageStop"]["stopReason"] for e in events if "messageStop" in e]
    return str(found)


def png(width: int, height: int) -> bytes:
    """A real, minimal PNG (signature, IHDR, one IDAT, IEND) of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))
        )

    header = struct.pack("!IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"".join(b"\x00" + b"\x00" * width for _ in range(height)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def image(data: bytes, image_format: str = "png") -> dict[str, Any]:
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def document(name: str = "Report (v2)", data: bytes = b"# Title\n") -> dict[str, Any]:
    return {"document": {"format": "md", "name": name, "source": {"bytes": data}}}


# --- capabilities ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "block, kind",
    [
        (image(png(2, 2)), "image"),
        (document(), "document"),
        ({"video": {"format": "mp4", "source": {"bytes": b"\x00\x00\x00\x18ftypmp4"}}}, "video"),
    ],
    ids=["image", "document", "video"],
)
def test_micro_refuses_media_blocks_with_bedrocks_capability_message(
    emulator: EmulatorHandle, block: dict[str, Any], kind: str
) -> None:
    message = user({"text": "What is this?"}, block)
    assert refusal(emulator, MICRO, messages=[message]) == (
        "ValidationException",
        f"This model doesn't support the {kind} content block that you provided. "
        "Try again with a different model.",
    )
    # The body reached the emulator as boto3 sent it: the bytes base64 in the JSON.
    (entry,) = emulator.requests()
    assert entry["error"] == "ValidationException"
    assert entry["body"]["messages"][0]["content"][1] == json.loads(
        json.dumps(block, default=lambda b: base64.b64encode(b).decode())
    )


def test_micro_refuses_an_image_inside_a_tool_result(emulator: EmulatorHandle) -> None:
    messages = [
        user({"text": "Call get_weather"}),
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}],
        },
        user({"toolResult": {"toolUseId": "t1", "content": [image(png(1, 1))]}}),
    ]
    code, message = refusal(emulator, MICRO, messages=messages, toolConfig={"tools": [WEATHER]})
    assert (code, message.split(".")[0]) == (
        "ValidationException",
        "This model doesn't support the image content block that you provided",
    )


def test_pro_and_lite_read_an_image_and_a_document(emulator: EmulatorHandle) -> None:
    data = b"# Quarterly numbers\n\nUp.\n"
    for model in (PRO, LITE):
        events = stream(
            emulator,
            model,
            messages=[user({"text": "Describe both"}, image(png(3, 2)), document(data=data))],
        )
        text = text_of(events)
        assert text.startswith(
            "I see a png image of 3x2 pixels. I read the document Report (v2) (25 bytes). "
        ), text
        assert stop_reason(events) == "end_turn"


def test_a_non_png_image_is_described_by_its_format(emulator: EmulatorHandle) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 32
    events = stream(emulator, PRO, messages=[user({"text": "And this?"}, image(jpeg, "jpeg"))])
    assert text_of(events).startswith("I see a jpeg image. ")


# --- image and document limits ------------------------------------------------------------


@pytest.mark.parametrize(
    "data, image_format",
    [(png(1, 1), "jpeg"), (b"GIF89a" + b"\x00" * 8, "png"), (b"RIFF\x00\x00\x00\x00WAVE", "webp")],
    ids=["png-as-jpeg", "gif-as-png", "riff-not-webp"],
)
def test_an_image_must_be_the_format_it_claims(
    emulator: EmulatorHandle, data: bytes, image_format: str
) -> None:
    code, message = refusal(
        emulator, PRO, messages=[user({"text": "See"}, image(data, image_format))]
    )
    assert code == "ValidationException"
    assert message.startswith("The provided image is not valid: "), message


def test_image_size_and_count_limits(emulator: EmulatorHandle) -> None:
    largest = png(1, 1)
    largest += b"\x00" * (3_932_160 - len(largest))
    accepted = stream(emulator, PRO, messages=[user({"text": "Big"}, image(largest))])
    assert stop_reason(accepted) == "end_turn"

    code, message = refusal(emulator, PRO, messages=[user({"text": "Big"}, image(largest + b"\0"))])
    assert code == "ValidationException"
    assert "3932161 bytes" in message and message.startswith("The provided image is not valid")

    small = image(png(1, 1))
    twenty = stream(emulator, PRO, messages=[user({"text": "Many"}, *[small] * 20)])
    assert text_of(twenty).count("I see a png image of 1x1 pixels.") == 20
    code, message = refusal(emulator, PRO, messages=[user({"text": "Many"}, *[small] * 21)])
    assert code == "ValidationException" and "20" in message


def test_document_size_and_count_limits(emulator: EmulatorHandle) -> None:
    largest = b"a" * 4_718_592
    accepted = stream(emulator, PRO, messages=[user({"text": "Read"}, document(data=largest))])
    assert text_of(accepted).startswith("I read the document Report (v2) (4718592 bytes).")

    code, message = refusal(
        emulator, PRO, messages=[user({"text": "Read"}, document(data=largest + b"a"))]
    )
    assert code == "ValidationException" and "4718593 bytes" in message

    five = [document(name=f"doc {i}") for i in range(5)]
    assert (
        stop_reason(stream(emulator, PRO, messages=[user({"text": "Read"}, *five)])) == "end_turn"
    )
    code, message = refusal(
        emulator, PRO, messages=[user({"text": "Read"}, *five, document(name="doc 5"))]
    )
    assert code == "ValidationException" and "5" in message


@pytest.mark.parametrize(
    "name",
    ["report.md", "two  spaces", "under_score", "x" * 201],
    ids=["dot", "two-spaces", "underscore", "201-characters"],
)
def test_a_document_name_outside_bedrocks_rules_is_refused(
    emulator: EmulatorHandle, name: str
) -> None:
    code, message = refusal(emulator, PRO, messages=[user({"text": "Read"}, document(name=name))])
    assert code == "ValidationException"
    if len(name) > 200:
        assert "Member must have length less than or equal to 200" in message
    else:
        assert message.startswith("The document file name can only contain alphanumeric")


# --- tools ----------------------------------------------------------------------------


def test_a_tool_call_streams_its_input_in_fragments(emulator: EmulatorHandle) -> None:
    request = {
        "messages": [user({"text": "What does GET_WEATHER say for Seoul?"})],
        "toolConfig": {"tools": [CLOCK, WEATHER]},
    }
    events = stream(emulator, PRO, **request)
    (entry,) = emulator.requests()
    # boto3's rest-json body is json.dumps of the request, as the log keeps it.
    body = json.dumps(entry["body"]).encode()
    tool_use_id = "tooluse_" + hashlib.sha256(body).hexdigest()[:16]
    fragments = [WEATHER_INPUT[i : i + 7] for i in range(0, len(WEATHER_INPUT), 7)]

    assert [list(e) for e in events] == [
        ["messageStart"],
        *[["contentBlockDelta"]] * 4,  # "I will call get_weather." in four pieces
        ["contentBlockStop"],
        ["contentBlockStart"],
        *[["contentBlockDelta"]] * len(fragments),
        ["contentBlockStop"],
        ["messageStop"],
        ["metadata"],
    ]
    assert text_of(events) == "I will call get_weather."
    assert events[6]["contentBlockStart"] == {
        "contentBlockIndex": 1,
        "start": {"toolUse": {"toolUseId": tool_use_id, "name": "get_weather"}},
    }
    assert [e["contentBlockDelta"] for e in events[7 : 7 + len(fragments)]] == [
        {"contentBlockIndex": 1, "delta": {"toolUse": {"input": fragment}}}
        for fragment in fragments
    ]
    assert len(fragments) > 1
    assert events[-3]["contentBlockStop"] == {"contentBlockIndex": 1}
    assert stop_reason(events) == "tool_use"
    usage = metadata(events)["usage"]
    assert usage["outputTokens"] == 4 + len(fragments)
    assert compose_answer(PRO, entry["body"]).tool_calls[0].tool_use_id == tool_use_id


@pytest.mark.parametrize(
    "choice, text, name",
    [
        ({"tool": {"name": "get_time"}}, "Anything at all", "get_time"),
        ({"any": {}}, "Anything at all", "get_time"),
        ({"auto": {}}, "use get_weather then explain", "get_weather"),
    ],
    ids=["tool", "any", "auto-mentioned"],
)
def test_which_tool_is_called(
    emulator: EmulatorHandle, choice: dict[str, Any], text: str, name: str
) -> None:
    events = stream(
        emulator,
        MICRO,
        messages=[user({"text": text})],
        toolConfig={"tools": [CLOCK, WEATHER], "toolChoice": choice},
    )
    (start,) = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert start["start"]["toolUse"]["name"] == name
    assert text_of(events) == f"I will call {name}."
    explained = "then explain" in text
    assert text_of(events, 2) == ("After the result, I will explain." if explained else "")
    stops = [e["contentBlockStop"]["contentBlockIndex"] for e in events if "contentBlockStop" in e]
    assert stops == ([0, 1, 2] if explained else [0, 1])


def test_no_tool_call_without_a_mention_under_auto(emulator: EmulatorHandle) -> None:
    events = stream(
        emulator, MICRO, messages=[user({"text": "Just chat"})], toolConfig={"tools": [WEATHER]}
    )
    assert not [e for e in events if "contentBlockStart" in e]
    assert stop_reason(events) == "end_turn"


def test_a_tool_result_is_answered_and_converse_returns_the_tool_use(
    emulator: EmulatorHandle,
) -> None:
    config = {"tools": [WEATHER]}
    first = runtime(emulator).converse(
        modelId=PRO, messages=[user({"text": "get_weather please"})], toolConfig=config
    )
    assert first["stopReason"] == "tool_use"
    content = first["output"]["message"]["content"]
    assert content[0] == {"text": "I will call get_weather."}
    call = content[1]["toolUse"]
    assert call["name"] == "get_weather" and call["input"] == json.loads(WEATHER_INPUT)

    for result, said in (
        ({"json": {"temp": 21}}, '{"temp":21}'),
        ({"text": "sunny"}, "sunny"),
    ):
        messages = [
            user({"text": "get_weather please"}),
            {"role": "assistant", "content": content},
            user({"toolResult": {"toolUseId": call["toolUseId"], "content": [result]}}),
        ]
        events = stream(emulator, PRO, messages=messages, toolConfig=config)
        assert text_of(events) == f"The get_weather tool returned: {said}."
        assert stop_reason(events) == "end_turn"
        # The tool's input and result are input the model read.
        read = f"get_weather please I will call get_weather. {WEATHER_INPUT} {said}"
        assert metadata(events)["usage"]["inputTokens"] == count_tokens(read)


def test_a_tool_result_must_answer_the_previous_assistant_turn(emulator: EmulatorHandle) -> None:
    messages = [
        user({"text": "get_weather"}),
        {
            "role": "assistant",
            "content": [
                {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather", "input": {}}}
            ],
        },
        user({"toolResult": {"toolUseId": "tooluse_b", "content": [{"text": "x"}]}}),
    ]
    assert refusal(emulator, PRO, messages=messages, toolConfig={"tools": [WEATHER]}) == (
        "ValidationException",
        "The toolUseId tooluse_b in a toolResult does not match a toolUse in the previous "
        "assistant turn.",
    )


@pytest.mark.parametrize(
    "config, message",
    [
        (
            {"tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": {"type": "string"}}}}]},
            "The input schema of tool t is not valid: inputSchema.json must be a JSON schema "
            'object with "type": "object".',
        ),
        (
            {"tools": [WEATHER], "toolChoice": {"tool": {"name": "get_time"}}},
            "The tool get_time named in toolConfig.toolChoice is not defined in toolConfig.tools.",
        ),
        (
            {"tools": [WEATHER, WEATHER]},
            "The toolConfig contains duplicate tool names. Rename the tools and try again.",
        ),
        (
            {"tools": [{"toolSpec": {**CLOCK["toolSpec"], "name": "get time"}}]},
            "1 validation error detected: Value 'get time' at "
            "'toolConfig.tools.0.member.toolSpec.name' failed to satisfy constraint: Member must "
            "satisfy regular expression pattern: [a-zA-Z0-9_-]+",
        ),
    ],
    ids=["schema-not-object", "choice-undefined", "duplicate-names", "name-pattern"],
)
def test_a_tool_config_bedrock_would_refuse_is_refused(
    emulator: EmulatorHandle, config: dict[str, Any], message: str
) -> None:
    assert refusal(emulator, PRO, messages=[user({"text": "t"})], toolConfig=config) == (
        "ValidationException",
        message,
    )


# --- guardrails -------------------------------------------------------------------------


@pytest.mark.parametrize("trace", ["enabled", "enabled_full", "disabled"])
def test_the_guardrail_intervenes_on_the_marker_with_a_trace(
    emulator: EmulatorHandle, trace: str
) -> None:
    events = stream(
        emulator,
        MICRO,
        messages=[user({"text": "Tell me the Forbidden thing."})],
        guardrailConfig={**GUARDRAIL, "trace": trace, "streamProcessingMode": "async"},
    )
    assert text_of(events) == "Sorry, I can't help with that."
    assert stop_reason(events) == "guardrail_intervened"
    expected: dict[str, Any] = {
        "inputAssessment": {
            "gr-dualnova": {
                "topicPolicy": {
                    "topics": [{"name": "Forbidden", "type": "DENY", "action": "BLOCKED"}]
                }
            }
        }
    }
    if trace == "enabled_full":
        expected["outputAssessments"] = {}
    assert metadata(events).get("trace") == (
        None if trace == "disabled" else {"guardrail": expected}
    )


def test_the_guardrail_passes_other_prompts_and_traces_an_empty_assessment(
    emulator: EmulatorHandle,
) -> None:
    request = {
        "messages": [user({"text": "Hello there"})],
        "guardrailConfig": {**GUARDRAIL, "guardrailVersion": "DRAFT", "trace": "enabled"},
    }
    events = stream(emulator, PRO, **request)
    assert text_of(events) == compose_answer(PRO, request).text
    assert stop_reason(events) == "end_turn"
    assert metadata(events)["trace"] == {"guardrail": {"inputAssessment": {"gr-dualnova": {}}}}


def test_enabled_full_without_the_marker_traces_only_the_input(emulator: EmulatorHandle) -> None:
    events = stream(
        emulator,
        MICRO,
        messages=[user({"text": "Hello there"})],
        guardrailConfig={**GUARDRAIL, "trace": "enabled_full"},
    )
    assert metadata(events)["trace"] == {"guardrail": {"inputAssessment": {"gr-dualnova": {}}}}


def test_guard_content_is_read_and_guarded_like_text(emulator: EmulatorHandle) -> None:
    guarded = {"guardContent": {"text": {"text": "the forbidden part", "qualifiers": ["query"]}}}
    request = {
        "system": [{"text": "Be brief."}, {"guardContent": {"text": {"text": "Rules apply."}}}],
        "messages": [user({"text": "Hello"}, guarded)],
    }
    plain = stream(emulator, MICRO, **request)
    assert text_of(plain).startswith('질문: "Hello the forbidden part" —')
    assert metadata(plain)["usage"]["inputTokens"] == count_tokens(
        "Be brief. Rules apply. Hello the forbidden part"
    )
    blocked = stream(emulator, MICRO, **request, guardrailConfig=GUARDRAIL)
    assert stop_reason(blocked) == "guardrail_intervened"


@pytest.mark.parametrize(
    "config",
    [
        {"guardrailIdentifier": "gr-other", "guardrailVersion": "1"},
        {**GUARDRAIL, "guardrailVersion": "2"},
    ],
    ids=["identifier", "version"],
)
def test_an_unknown_guardrail_is_refused(emulator: EmulatorHandle, config: dict[str, str]) -> None:
    assert refusal(emulator, MICRO, messages=[user({"text": "hi"})], guardrailConfig=config) == (
        "ValidationException",
        "The guardrail identifier or version provided in the request does not exist.",
    )


# --- options -----------------------------------------------------------------------------


def test_latency_optimized_only_on_pro_and_options_are_echoed(emulator: EmulatorHandle) -> None:
    assert refusal(
        emulator, MICRO, messages=[user({"text": "hi"})], performanceConfig={"latency": "optimized"}
    ) == ("ValidationException", "The model doesn't support latency-optimized inference.")

    request = {
        "messages": [user({"text": "hi"})],
        "performanceConfig": {"latency": "optimized"},
        "serviceTier": {"type": "flex"},
        "requestMetadata": {"team": "dualnova", "ticket": "12"},
        "additionalModelRequestFields": {"inferenceConfig": {"topK": 128}},
    }
    found = metadata(stream(emulator, PRO, **request))
    assert found["performanceConfig"] == {"latency": "optimized"}
    assert found["serviceTier"] == {"type": "flex"}
    (entry,) = [e for e in emulator.requests() if e["status"] == 200]
    assert entry["body"]["requestMetadata"] == {"team": "dualnova", "ticket": "12"}
    assert entry["body"]["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 128}}

    standard = metadata(
        stream(
            emulator,
            MICRO,
            messages=[user({"text": "hi"})],
            performanceConfig={"latency": "standard"},
        )
    )
    assert standard["performanceConfig"] == {"latency": "standard"}
    assert "serviceTier" not in standard
    plain = metadata(stream(emulator, MICRO, messages=[user({"text": "hi"})]))
    assert set(plain) == {"usage", "metrics"}


@pytest.mark.parametrize("top_k", [0, 129, "5"])
def test_top_k_must_be_an_integer_from_1_to_128(emulator: EmulatorHandle, top_k: Any) -> None:
    code, message = refusal(
        emulator,
        MICRO,
        messages=[user({"text": "hi"})],
        additionalModelRequestFields={"inferenceConfig": {"topK": top_k}},
    )
    assert code == "ValidationException" and "topK" in message


def test_converse_reports_the_trace_and_the_applied_options(emulator: EmulatorHandle) -> None:
    answer = runtime(emulator).converse(
        modelId=PRO,
        messages=[user({"text": "Something forbidden"})],
        guardrailConfig={**GUARDRAIL, "trace": "enabled"},
        performanceConfig={"latency": "optimized"},
        serviceTier={"type": "priority"},
    )
    assert answer["stopReason"] == "guardrail_intervened"
    assert answer["output"]["message"]["content"] == [{"text": "Sorry, I can't help with that."}]
    assert answer["trace"]["guardrail"]["inputAssessment"]["gr-dualnova"]["topicPolicy"]
    assert answer["performanceConfig"] == {"latency": "optimized"}
    assert answer["serviceTier"] == {"type": "priority"}


# --- the request log and faults -------------------------------------------------------------


def test_the_log_keeps_every_body_as_received(emulator: EmulatorHandle) -> None:
    url = f"{emulator.url}/model/{MICRO}/converse-stream"
    for body in (b'{"messages": [', b'{"messages": []}'):
        request = urllib.request.Request(url, data=body, method="POST")  # unsigned
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            urllib.request.urlopen(request, timeout=10)
        assert excinfo.value.code == 403
    logged = [entry["body"] for entry in emulator.requests()]
    assert logged == ['{"messages": [', {"messages": []}]


def test_a_mid_stream_error_can_cut_a_tool_call(emulator: EmulatorHandle) -> None:
    emulator.add_fault(kind="mid_stream_error", after_deltas=6, times=1)
    events: list[dict[str, Any]] = []
    with pytest.raises(EventStreamError):
        response = runtime(emulator).converse_stream(
            modelId=PRO,
            messages=[user({"text": "get_weather now"})],
            toolConfig={"tools": [WEATHER]},
        )
        for event in response["stream"]:
            events.append(event)
    # Four text pieces, the toolUse start, then two of its input fragments.
    inputs = [
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in events
        if "toolUse" in e.get("contentBlockDelta", {}).get("delta", {})
    ]
    assert inputs == [WEATHER_INPUT[:7], WEATHER_INPUT[7:14]]
    assert emulator.requests()[-1]["completed"] is False
