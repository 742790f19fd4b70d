"""What the Converse tests through DualChat share: blocks to send, and answers reassembled.

A caller of DualChat reassembles each route's answer from its events by
content block index (text deltas, a tool call's start and input fragments,
block ends); reassemble() does it the way a caller would, so the tests check
what a caller can rebuild, not just that events arrived.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from gateway_client import dual_chat

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle
from dualnova.gateway.v1 import gateway_pb2

MICRO_MODEL = "amazon.nova-micro-v1:0"
PRO_MODEL = "amazon.nova-pro-v1:0"
MODELS = {"micro": MICRO_MODEL, "pro": PRO_MODEL}

# A tool whose emulated input covers three JSON types (the emulator fills each property).
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "metric": {"type": "boolean"},
    },
    "required": ["city"],
}
WEATHER_TOOL = chat_pb2.Tool(
    name="get_weather",
    description="Current weather for a city",
    input_schema_json=json.dumps(WEATHER_SCHEMA),
)
# What the emulator calls get_weather with, as it streams it: compact JSON.
WEATHER_INPUT = '{"city":"emulated","days":1,"metric":true}'


def fragments(text: str, size: int = 7) -> list[str]:
    """`text` cut as the emulator streams a tool's input: `size` characters a fragment."""
    return [text[start : start + size] for start in range(0, len(text), size)]


def user(text: str = "", *blocks: chat_pb2.ContentBlock) -> chat_pb2.Message:
    return chat_pb2.Message(role=chat_pb2.ROLE_USER, text=text, content=blocks)


def assistant(text: str = "", *blocks: chat_pb2.ContentBlock) -> chat_pb2.Message:
    return chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT, text=text, content=blocks)


def png(width: int, height: int) -> bytes:
    """A real PNG of `width` x `height` grey pixels (the emulator reads IHDR for its answer)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def image_block(
    data: bytes, image_format: int = chat_pb2.IMAGE_FORMAT_PNG
) -> chat_pb2.ContentBlock:
    return chat_pb2.ContentBlock(
        image=chat_pb2.ImageBlock(format=image_format, source=chat_pb2.MediaSource(bytes=data))
    )


def document_block(name: str, data: bytes) -> chat_pb2.ContentBlock:
    return chat_pb2.ContentBlock(
        document=chat_pb2.DocumentBlock(
            format=chat_pb2.DOCUMENT_FORMAT_TXT, name=name, source=chat_pb2.MediaSource(bytes=data)
        )
    )


@dataclass
class Block:
    """One content block of a route's answer as a caller rebuilds it."""

    kind: str  # "text" or "tool_use"
    text: str = ""  # a text block's text, or a tool call's input JSON
    tool_use_id: str = ""
    name: str = ""
    fragments: list[str] = field(default_factory=list)  # a tool call's input as it arrived
    stopped: bool = False


def reassemble(responses: Iterable[gateway_pb2.DualChatResponse], route: str) -> dict[int, Block]:
    """`route`'s answer by content block index, from its events in arrival order."""
    blocks: dict[int, Block] = {}
    for response in responses:
        if response.route != route:
            continue
        kind = response.WhichOneof("event")
        if kind == "delta":
            block = blocks.setdefault(response.delta.content_block_index, Block("text"))
            assert block.kind == "text" and not block.stopped
            block.text += response.delta.text
        elif kind == "tool_use_start":
            start = response.tool_use_start
            assert start.content_block_index not in blocks, "a tool call opens a new block"
            blocks[start.content_block_index] = Block(
                "tool_use", tool_use_id=start.tool_use_id, name=start.name
            )
        elif kind == "tool_input_delta":
            block = blocks[response.tool_input_delta.content_block_index]
            assert block.kind == "tool_use" and not block.stopped
            block.fragments.append(response.tool_input_delta.input_json)
            block.text += response.tool_input_delta.input_json
        elif kind == "content_block_stop":
            block = blocks[response.content_block_stop.content_block_index]
            assert not block.stopped, "a block ends once"
            block.stopped = True
    return blocks


def tool_use_block(call: Block) -> chat_pb2.ContentBlock:
    """The assistant turn's record of a tool call the caller saw streamed."""
    return chat_pb2.ContentBlock(
        tool_use=chat_pb2.ToolUseBlock(
            tool_use_id=call.tool_use_id, name=call.name, input_json=call.text
        )
    )


def tool_result_block(tool_use_id: str, text: str) -> chat_pb2.ContentBlock:
    return chat_pb2.ContentBlock(
        tool_result=chat_pb2.ToolResultBlock(
            tool_use_id=tool_use_id,
            content=[chat_pb2.ToolResultContent(text=text)],
            status=chat_pb2.TOOL_RESULT_STATUS_SUCCESS,
        )
    )


def bodies(emulator: EmulatorHandle) -> dict[str, dict[str, Any]]:
    """The ConverseStream request bodies Bedrock received, by route, one per route."""
    entries = [e for e in emulator.requests() if e["operation"] == "ConverseStream"]
    by_route = {
        route: e["body"]
        for route, model in MODELS.items()
        for e in entries
        if e["model_id"] == model
    }
    assert len(by_route) == len(entries), f"one stream per route expected: {entries}"
    return by_route


def refused(address: str, request: gateway_pb2.DualChatRequest) -> grpc.RpcError:
    """The RPC error of a DualChat the gateway refuses."""
    with pytest.raises(grpc.RpcError) as raised:
        dual_chat(address, request, timeout=10)
    return raised.value
