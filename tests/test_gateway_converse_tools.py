"""Tool calls through DualChat: gateway -> inference service -> boto3 -> emulator, per route.

Each route streams its tool call as Bedrock does (a start with the call's id
and name, the input's JSON fragments, the block's end, stop reason tool_use),
tagged by route; the caller answers each route in its own history
(RouteOverride.messages), since each route's call has its own id.
"""

from __future__ import annotations

import json
import re

import grpc
from converse_support import (
    MODELS,
    WEATHER_INPUT,
    WEATHER_SCHEMA,
    WEATHER_TOOL,
    Block,
    assistant,
    bodies,
    fragments,
    reassemble,
    refused,
    tool_result_block,
    tool_use_block,
    user,
)
from gateway_client import dual_chat

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.gateway.v1 import gateway_pb2

ROUTES = tuple(MODELS)
TOOLS = chat_pb2.ToolConfig(tools=[WEATHER_TOOL])
ASK = "What is the weather in Paris? Ask get_weather."
TOOL_USE_ID = re.compile(r"tooluse_[0-9a-f]{16}")
WEATHER_SPEC = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "inputSchema": {"json": WEATHER_SCHEMA},
    }
}


def test_a_two_turn_tool_conversation_relays_each_routes_input_fragments_exactly(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    first = dual_chat(
        gateway.address, gateway_pb2.DualChatRequest(messages=[user(ASK)], tool_config=TOOLS)
    )
    sent = bodies(emulator)
    calls: dict[str, Block] = {}
    for route in ROUTES:
        got = first.routes[route]
        assert got.error is None
        assert got.events == [
            "start",
            *["delta"] * got.events.count("delta"),
            "content_block_stop",
            "tool_use_start",
            *["tool_input_delta"] * len(fragments(WEATHER_INPUT)),
            "content_block_stop",
            "usage",
            "stop",
        ]
        blocks = reassemble(first.responses, route)
        assert blocks[0].text == "I will call get_weather."
        call = blocks[1]
        assert (call.kind, call.name) == ("tool_use", "get_weather")
        assert TOOL_USE_ID.fullmatch(call.tool_use_id)
        # Fragment for fragment, as Bedrock streamed them: nothing joined, split or re-encoded.
        assert call.fragments == fragments(WEATHER_INPUT)
        assert call.stopped and blocks[0].stopped
        assert got.stop.stop_reason == "tool_use"
        assert got.stop.reason == chat_pb2.STOP_REASON_TOOL_USE
        assert sent[route]["toolConfig"]["tools"] == [WEATHER_SPEC]
        calls[route] = call
    assert calls["micro"].tool_use_id != calls["pro"].tool_use_id

    emulator.reset()
    results = {"micro": "18 degrees and cloudy", "pro": "21 degrees and sunny"}
    histories = {
        route: gateway_pb2.RouteOverride(
            messages=[
                user(ASK),
                assistant("I will call get_weather.", tool_use_block(calls[route])),
                user("", tool_result_block(calls[route].tool_use_id, results[route])),
            ]
        )
        for route in ROUTES
    }
    second = dual_chat(
        gateway.address,
        gateway_pb2.DualChatRequest(tool_config=TOOLS, **histories),
    )
    sent = bodies(emulator)
    for route in ROUTES:
        got = second.routes[route]
        assert got.error is None
        assert got.text == f"The get_weather tool returned: {results[route]}."
        assert got.stop.reason == chat_pb2.STOP_REASON_END_TURN
        # Each route's own history reached Bedrock: its call (input parsed) and its result.
        assert sent[route]["messages"][1:] == [
            {
                "role": "assistant",
                "content": [
                    {"text": "I will call get_weather."},
                    {
                        "toolUse": {
                            "toolUseId": calls[route].tool_use_id,
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
                            "toolUseId": calls[route].tool_use_id,
                            "content": [{"text": results[route]}],
                            "status": "success",
                        }
                    }
                ],
            },
        ]


def test_text_then_a_tool_call_then_text_reassemble_by_block_index_on_each_route(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = dual_chat(
        gateway.address,
        gateway_pb2.DualChatRequest(
            messages=[user("Look up Paris with get_weather, then explain.")], tool_config=TOOLS
        ),
    )
    for route in ROUTES:
        assert result.routes[route].error is None
        blocks = reassemble(result.responses, route)
        assert sorted(blocks) == [0, 1, 2]
        assert (blocks[0].kind, blocks[0].text) == ("text", "I will call get_weather.")
        assert (blocks[1].kind, blocks[1].name, blocks[1].text) == (
            "tool_use",
            "get_weather",
            WEATHER_INPUT,
        )
        assert (blocks[2].kind, blocks[2].text) == ("text", "After the result, I will explain.")
        assert all(block.stopped for block in blocks.values())
        stops = [
            r.content_block_stop.content_block_index
            for r in result.responses
            if r.route == route and r.HasField("content_block_stop")
        ]
        assert stops == [0, 1, 2]
        assert result.routes[route].stop.reason == chat_pb2.STOP_REASON_TOOL_USE


def test_a_routes_tool_config_replaces_the_shared_one_as_a_whole(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    clock = chat_pb2.Tool(
        name="get_time",
        input_schema_json=json.dumps(
            {"type": "object", "properties": {"zone": {"type": "string"}}}
        ),
    )
    micro_tools = chat_pb2.ToolConfig(
        tools=[clock],
        tool_choice=chat_pb2.ToolChoice(mode=chat_pb2.TOOL_CHOICE_MODE_TOOL, name="get_time"),
    )
    result = dual_chat(
        gateway.address,
        gateway_pb2.DualChatRequest(
            messages=[user("What should I wear today?")],
            tool_config=TOOLS,
            micro=gateway_pb2.RouteOverride(tool_config=micro_tools),
        ),
    )
    sent = bodies(emulator)
    assert sent["micro"]["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_time",
                    "inputSchema": {"json": json.loads(clock.input_schema_json)},
                }
            }
        ],
        "toolChoice": {"tool": {"name": "get_time"}},
    }
    assert sent["pro"]["toolConfig"]["tools"] == [WEATHER_SPEC]
    micro_call = reassemble(result.responses, "micro")[1]
    assert (micro_call.name, micro_call.text) == ("get_time", '{"zone":"emulated"}')
    # The question names no tool and pro's choice is auto: pro answers in text.
    assert result.routes["pro"].stop.reason == chat_pb2.STOP_REASON_END_TURN
    assert "tool_use_start" not in result.routes["pro"].events


def test_a_stray_tool_result_a_schema_that_is_no_object_and_tools_without_config_are_refused(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    stray = gateway_pb2.DualChatRequest(
        messages=[user(ASK)],
        tool_config=TOOLS,
        pro=gateway_pb2.RouteOverride(
            messages=[
                user(ASK),
                assistant("I will look it up."),
                user("", tool_result_block("tooluse_0000000000000000", "21 degrees")),
            ]
        ),
    )
    error = refused(gateway.address, stray)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "pro.messages[2].content[0].tool_result.tool_use_id:"
        " does not match a tool_use in the previous assistant turn"
    )

    not_an_object = chat_pb2.ToolConfig(
        tools=[chat_pb2.Tool(name="get_weather", input_schema_json='{"type": "string"}')]
    )
    error = refused(
        gateway.address,
        gateway_pb2.DualChatRequest(
            messages=[user(ASK)], micro=gateway_pb2.RouteOverride(tool_config=not_an_object)
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("micro.tool_config.tools[0].input_schema_json: ")

    # Bedrock refuses tool blocks without a toolConfig: pro would get the shared turns bare.
    answered = chat_pb2.ContentBlock(
        tool_use=chat_pb2.ToolUseBlock(
            tool_use_id="tooluse_0123456789abcdef", name="get_weather", input_json="{}"
        )
    )
    error = refused(
        gateway.address,
        gateway_pb2.DualChatRequest(
            messages=[
                user(ASK),
                assistant("I will call get_weather.", answered),
                user("", tool_result_block("tooluse_0123456789abcdef", "21 degrees")),
            ],
            micro=gateway_pb2.RouteOverride(tool_config=TOOLS),
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("messages[1].content[0].tool_use: ")
    assert error.details().endswith("; pro is sent no tool_config")
    assert emulator.requests() == []
