"""Converse's full shape through the real inference service and boto3's wire against the emulator.

Tools (a two-turn conversation: the call streamed as Bedrock streams it, its input
fragments relayed exactly, then the tool's result answered), an answer of text,
tool call and text reassembled by content block index, an image Pro describes
and Micro is refused before Bedrock, a guardrail intervening with its trace, and
Bedrock's options reaching Bedrock as sent (the emulator's request log) with what
it applied coming back in Stop.
"""

from __future__ import annotations

import base64
import json
import secrets
import struct
import zlib
from collections import defaultdict
from typing import Any

import grpc
import pytest
from telemetry_support import PRO, OtlpCollector, Pair

from bedrock_emulator.tools import INPUT_FRAGMENT, tool_use_id
from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from inference_service.bedrock import TextDelta, ToolInputFragment
from inference_service.chat import _merge_waiting_deltas

USER = chat_pb2.ROLE_USER
ASSISTANT = chat_pb2.ROLE_ASSISTANT
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "metric": {"type": "boolean"},
        "hours": {"type": "array"},
    },
    "required": ["city"],
}
WEATHER = chat_pb2.Tool(
    name="get_weather",
    description="The weather forecast for a city.",
    input_schema_json=json.dumps(WEATHER_SCHEMA),
)
# What the emulator's model fills WEATHER_SCHEMA with, as it serializes it.
WEATHER_INPUT = '{"city":"emulated","days":1,"metric":true,"hours":[]}'


def chat(
    stub: inference_pb2_grpc.InferenceServiceStub, request: inference_pb2.ChatRequest
) -> list[inference_pb2.ChatResponse]:
    return list(stub.Chat(request, timeout=15))


def kinds(events: list[inference_pb2.ChatResponse]) -> list[str]:
    return [str(event.WhichOneof("event")) for event in events]


def user(text: str = "", *blocks: chat_pb2.ContentBlock) -> chat_pb2.Message:
    return chat_pb2.Message(role=USER, text=text, content=blocks)


def weather_request(question: str, **fields: Any) -> inference_pb2.ChatRequest:
    return inference_pb2.ChatRequest(
        model="pro",
        messages=[user(question)],
        tool_config=chat_pb2.ToolConfig(tools=[WEATHER]),
        **fields,
    )


def blocks_of(events: list[inference_pb2.ChatResponse]) -> dict[int, str]:
    """Each content block's text or tool input, reassembled by its index."""
    blocks: dict[int, str] = defaultdict(str)
    for event in events:
        if event.HasField("delta"):
            blocks[event.delta.content_block_index] += event.delta.text
        elif event.HasField("tool_input_delta"):
            blocks[event.tool_input_delta.content_block_index] += event.tool_input_delta.input_json
    return dict(blocks)


def test_a_two_turn_tool_conversation_relays_the_call_as_bedrock_streamed_it(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    question = "What will the weather be in Busan? Use get_weather."
    first = chat(stub, weather_request(question))

    (sent,) = emulator.requests()
    assert sent["body"]["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "The weather forecast for a city.",
                    "inputSchema": {"json": WEATHER_SCHEMA},
                }
            }
        ]
    }
    call_id = tool_use_id(json.dumps(sent["body"]).encode())
    fragments = [
        WEATHER_INPUT[i : i + INPUT_FRAGMENT] for i in range(0, len(WEATHER_INPUT), INPUT_FRAGMENT)
    ]
    assert len(fragments) > 1
    text_deltas = [e for e in first if e.HasField("delta")]
    assert kinds(first) == [
        "start",
        *["delta"] * len(text_deltas),
        "content_block_stop",
        "tool_use_start",
        *["tool_input_delta"] * len(fragments),
        "content_block_stop",
        "usage",
        "stop",
    ]
    assert "".join(e.delta.text for e in text_deltas) == "I will call get_weather."
    assert {e.delta.content_block_index for e in text_deltas} == {0}
    start = first[len(text_deltas) + 2].tool_use_start
    assert (start.content_block_index, start.tool_use_id, start.name) == (1, call_id, "get_weather")
    relayed = [e.tool_input_delta for e in first if e.HasField("tool_input_delta")]
    assert [f.input_json for f in relayed] == fragments
    assert {f.content_block_index for f in relayed} == {1}
    stops = [
        e.content_block_stop.content_block_index for e in first if e.HasField("content_block_stop")
    ]
    assert stops == [0, 1]
    stop = first[-1].stop
    assert (stop.stop_reason, stop.reason) == ("tool_use", chat_pb2.STOP_REASON_TOOL_USE)
    assert not stop.HasField("applied")

    # The caller answers with the tool's result, quoting the call as it reassembled it.
    second_request = weather_request(question)
    second_request.messages.extend(
        [
            chat_pb2.Message(
                role=ASSISTANT,
                content=[
                    chat_pb2.ContentBlock(text="I will call get_weather."),
                    chat_pb2.ContentBlock(
                        tool_use=chat_pb2.ToolUseBlock(
                            tool_use_id=start.tool_use_id,
                            name=start.name,
                            input_json="".join(f.input_json for f in relayed),
                        )
                    ),
                ],
            ),
            user(
                "",
                chat_pb2.ContentBlock(
                    tool_result=chat_pb2.ToolResultBlock(
                        tool_use_id=start.tool_use_id,
                        content=[chat_pb2.ToolResultContent(json='{"sky": "clear", "high": 21}')],
                        status=chat_pb2.TOOL_RESULT_STATUS_SUCCESS,
                    )
                ),
            ),
        ]
    )
    second = chat(stub, second_request)

    sent = emulator.requests()[-1]
    assert sent["body"]["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"text": "I will call get_weather."},
                {
                    "toolUse": {
                        "toolUseId": call_id,
                        "name": "get_weather",
                        "input": json.loads(WEATHER_INPUT),
                    }
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": call_id,
                        "content": [{"json": {"sky": "clear", "high": 21}}],
                        "status": "success",
                    }
                }
            ],
        },
    ]
    assert blocks_of(second) == {0: sent["response_text"]}
    assert sent["response_text"].startswith("The get_weather tool returned: ")
    assert "clear" in sent["response_text"]
    assert (second[-1].stop.stop_reason, second[-1].stop.reason) == (
        "end_turn",
        chat_pb2.STOP_REASON_END_TURN,
    )
    assert "tool_use_start" not in kinds(second)


def test_text_then_a_tool_call_then_text_reassemble_by_block_index(
    stub: inference_pb2_grpc.InferenceServiceStub,
) -> None:
    events = chat(stub, weather_request("Check get_weather for Jeju, then explain."))

    assert blocks_of(events) == {
        0: "I will call get_weather.",
        1: WEATHER_INPUT,
        2: "After the result, I will explain.",
    }
    # Each block's events lie between its first event and its stop, in index order.
    order = [
        (kind, index)
        for event in events
        for kind in [event.WhichOneof("event")]
        if kind in ("delta", "tool_use_start", "tool_input_delta", "content_block_stop")
        for index in [getattr(event, str(kind)).content_block_index]
    ]
    indexes = [index for _, index in order]
    assert indexes == sorted(indexes)
    assert [index for kind, index in order if kind == "content_block_stop"] == [0, 1, 2]
    assert [kind for kind, _ in order].count("tool_use_start") == 1


def test_a_one_block_answer_keeps_the_text_only_shape(
    stub: inference_pb2_grpc.InferenceServiceStub,
) -> None:
    """Tools offered but not called: start, deltas, usage, stop, as before blocks existed."""
    events = chat(stub, weather_request("Say hello."))
    assert set(kinds(events)) == {"start", "delta", "usage", "stop"}
    assert events[-1].stop.reason == chat_pb2.STOP_REASON_END_TURN


def png(width: int, height: int) -> bytes:
    """A real (tiny, grey) PNG of that size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def image_question(model: str, data: bytes) -> inference_pb2.ChatRequest:
    image = chat_pb2.ImageBlock(
        format=chat_pb2.IMAGE_FORMAT_PNG, source=chat_pb2.MediaSource(bytes=data)
    )
    return inference_pb2.ChatRequest(
        model=model,
        messages=[user("What is in this picture?", chat_pb2.ContentBlock(image=image))],
    )


def test_pro_describes_an_image_and_micro_refuses_it_before_bedrock(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    picture = png(37, 21)
    events = chat(stub, image_question("pro", picture))

    (sent,) = emulator.requests()
    assert sent["body"]["messages"] == [
        {
            "role": "user",
            "content": [
                {"text": "What is in this picture?"},
                {
                    "image": {
                        "format": "png",
                        "source": {"bytes": base64.b64encode(picture).decode()},
                    }
                },
            ],
        }
    ]
    assert "I see a png image of 37x21 pixels." in blocks_of(events)[0]
    assert events[-1].stop.reason == chat_pb2.STOP_REASON_END_TURN

    with pytest.raises(grpc.RpcError) as refused:
        chat(stub, image_question("micro", picture))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == (
        "messages[0].content[0].image: amazon.nova-micro-v1:0 takes text only and cannot read"
        " this image; send images and documents to a model that takes them (Nova Pro or Nova Lite)"
    )
    assert len(emulator.requests()) == 1  # Micro's was never sent


def guarded(question: str, trace: int, **config: Any) -> inference_pb2.ChatRequest:
    return inference_pb2.ChatRequest(
        model="micro",
        messages=[user(question)],
        guardrail_config=chat_pb2.GuardrailConfig(
            identifier=config.get("identifier", "gr-dualnova"),
            version=config.get("version", "1"),
            trace=trace,
            stream_processing_mode=chat_pb2.GUARDRAIL_STREAM_MODE_ASYNC,
        ),
    )


def test_a_guardrail_intervention_comes_back_with_its_trace(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    events = chat(
        stub, guarded("Tell me the Forbidden recipe.", chat_pb2.GUARDRAIL_TRACE_MODE_ENABLED)
    )

    (sent,) = emulator.requests()
    assert sent["body"]["guardrailConfig"] == {
        "guardrailIdentifier": "gr-dualnova",
        "guardrailVersion": "1",
        "trace": "enabled",
        "streamProcessingMode": "async",
    }
    assert blocks_of(events) == {0: "Sorry, I can't help with that."}
    assert kinds(events)[-3:] == ["guardrail_trace", "usage", "stop"]
    trace = events[-3].guardrail_trace
    assert json.loads(trace.trace_json) == {
        "inputAssessment": {
            "gr-dualnova": {
                "topicPolicy": {
                    "topics": [{"name": "Forbidden", "type": "DENY", "action": "BLOCKED"}]
                }
            }
        }
    }
    assert trace.intervened
    stop = events[-1].stop
    assert (stop.stop_reason, stop.reason) == (
        "guardrail_intervened",
        chat_pb2.STOP_REASON_GUARDRAIL_INTERVENED,
    )


def test_a_guardrail_that_lets_the_answer_through_still_reports_its_trace(
    stub: inference_pb2_grpc.InferenceServiceStub,
) -> None:
    events = chat(stub, guarded("A harmless question.", chat_pb2.GUARDRAIL_TRACE_MODE_ENABLED_FULL))
    (trace,) = [e.guardrail_trace for e in events if e.HasField("guardrail_trace")]
    assert json.loads(trace.trace_json) == {"inputAssessment": {"gr-dualnova": {}}}
    assert not trace.intervened
    assert events[-1].stop.reason == chat_pb2.STOP_REASON_END_TURN


def test_without_a_trace_asked_for_no_trace_event_comes(
    stub: inference_pb2_grpc.InferenceServiceStub,
) -> None:
    events = chat(stub, guarded("forbidden words", chat_pb2.GUARDRAIL_TRACE_MODE_UNSPECIFIED))
    assert "guardrail_trace" not in kinds(events)
    assert events[-1].stop.reason == chat_pb2.STOP_REASON_GUARDRAIL_INTERVENED


def test_a_guardrail_bedrock_does_not_know_is_its_invalid_argument(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        chat(stub, guarded("hi", chat_pb2.GUARDRAIL_TRACE_MODE_ENABLED, version="7"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not exist" in refused.value.details()
    assert len(emulator.requests()) == 1  # valid for us: Bedrock is the one that knows


METADATA_VALUE = "ticket-" + secrets.token_hex(6)


def with_options(model: str, **options: Any) -> inference_pb2.ChatRequest:
    return inference_pb2.ChatRequest(
        model=model,
        messages=[user("Options, please.")],
        options=chat_pb2.BedrockOptions(**options),
    )


def test_options_reach_bedrock_as_sent_and_what_it_applied_comes_back(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle, log_dir: Any
) -> None:
    request = with_options(
        "pro",
        latency=chat_pb2.LATENCY_OPTIMIZED,
        service_tier=chat_pb2.SERVICE_TIER_PRIORITY,
        request_metadata={"team": "search", "ticket": METADATA_VALUE},
        top_k=5,
    )
    events = chat(stub, request)

    (sent,) = emulator.requests()
    body = sent["body"]
    assert body["performanceConfig"] == {"latency": "optimized"}
    assert body["serviceTier"] == {"type": "priority"}
    assert body["requestMetadata"] == {"team": "search", "ticket": METADATA_VALUE}
    assert body["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 5}}
    assert body["inferenceConfig"] == {"maxTokens": 1024}  # topK is Nova's own field
    applied = events[-1].stop.applied
    assert (applied.latency, applied.service_tier) == (
        chat_pb2.LATENCY_OPTIMIZED,
        chat_pb2.SERVICE_TIER_PRIORITY,
    )
    # Request metadata goes to Bedrock only, never into our logs.
    assert METADATA_VALUE not in (log_dir / "inference_service.log").read_text()


def test_a_standard_flex_call_reports_what_bedrock_applied(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    events = chat(
        stub,
        with_options(
            "micro", latency=chat_pb2.LATENCY_STANDARD, service_tier=chat_pb2.SERVICE_TIER_FLEX
        ),
    )
    (sent,) = emulator.requests()
    assert (sent["body"]["performanceConfig"], sent["body"]["serviceTier"]) == (
        {"latency": "standard"},
        {"type": "flex"},
    )
    assert "requestMetadata" not in sent["body"]
    applied = events[-1].stop.applied
    assert (applied.latency, applied.service_tier) == (
        chat_pb2.LATENCY_STANDARD,
        chat_pb2.SERVICE_TIER_FLEX,
    )


def test_latency_optimized_on_micro_is_bedrocks_refusal(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        chat(stub, with_options("micro", latency=chat_pb2.LATENCY_OPTIMIZED))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "latency-optimized" in refused.value.details()
    assert len(emulator.requests()) == 1


def test_text_deltas_merge_only_within_one_block_and_tool_input_never() -> None:
    """A caller that fell behind gets a block's waiting deltas as one, never two blocks' text."""
    batch = (
        TextDelta("a", 0),
        TextDelta("b", 0),
        TextDelta("c", 0),
        TextDelta("d", 2),
        TextDelta("e", 2),
        ToolInputFragment(1, '{"ci'),
        ToolInputFragment(1, 'ty":1}'),
    )
    assert _merge_waiting_deltas(batch, first_pending=True) == (
        TextDelta("a", 0),
        TextDelta("bc", 0),
        TextDelta("de", 2),
        ToolInputFragment(1, '{"ci'),
        ToolInputFragment(1, 'ty":1}'),
    )


def test_tool_calls_and_guardrail_results_are_span_events(
    exporting_pair: Pair, collector: OtlpCollector, emulator: EmulatorHandle
) -> None:
    trace_id = secrets.token_hex(16)
    request = weather_request(
        "forbidden: use get_weather",
        guardrail_config=chat_pb2.GuardrailConfig(
            identifier="gr-dualnova", version="DRAFT", trace=chat_pb2.GUARDRAIL_TRACE_MODE_ENABLED
        ),
        options=chat_pb2.BedrockOptions(top_k=9, request_metadata={"ticket": METADATA_VALUE}),
    )
    tool_request = weather_request("use get_weather")
    spans_by_request = {}
    with grpc.insecure_channel(exporting_pair.inference.address) as channel:
        client = inference_pb2_grpc.InferenceServiceStub(channel)
        for name, each in (("guarded", request), ("tool", tool_request)):
            each_trace = secrets.token_hex(16) if name == "tool" else trace_id
            list(
                client.Chat(
                    each,
                    timeout=30,
                    metadata=(("traceparent", f"00-{each_trace}-{secrets.token_hex(8)}-01"),),
                )
            )
            spans = collector.wait_for_trace(each_trace, 2)
            (spans_by_request[name],) = [s for s in spans if s.name == f"chat {PRO}"]

    guarded_span = spans_by_request["guarded"]
    assert guarded_span.attributes["gen_ai.request.top_k"] == 9
    assert guarded_span.attributes["aws.bedrock.guardrail.id"] == "gr-dualnova"
    assert guarded_span.attributes["gen_ai.response.finish_reasons"] == ("guardrail_intervened",)
    # The trace's blocked topic and the intervening stop: two results.
    assert guarded_span.events.count("gen_ai.guardrail.result") == 2
    assert "gen_ai.tool.call" not in guarded_span.events
    assert all(METADATA_VALUE not in str(value) for value in guarded_span.attributes.values())

    tool_span = spans_by_request["tool"]
    assert tool_span.events.count("gen_ai.tool.call") == 1
    assert tool_span.attributes["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert "gen_ai.guardrail.result" not in tool_span.events
