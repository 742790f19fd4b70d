"""Property-based, over Converse's new blocks and configs: whatever a caller puts in them, the
inference service answers with a status it chose (INVALID_ARGUMENT, never UNKNOWN or INTERNAL),
keeps running, and streams every request it accepts to its stop with well-formed blocks.

Images (every format value, bytes of each format's magic or of none, empty, S3 uris good and
bad), documents (formats, names, sizes), text, guarded text, cache points and kindless blocks;
a tool exchange (a call in the assistant turn, a result in the user turn, answering it or
not); tool configs (names, duplicates, schemas that are or are not objects of type object,
every choice); guardrail configs; options (latency, tier, metadata, top_k), for Micro and Pro.
The session's real processes answer, on the emulator at the tests' fast pace.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import grpc
from hypothesis import event, given
from hypothesis import strategies as st
from test_request_properties import (
    ANY_TEXTS,
    GOOD_TEXTS,
    INT32,
    NEVER,
    PROPERTIES,
    REFUSED,
    chat_channel,
)

from dualnova.chat.v1 import chat_pb2
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc

__all__ = ["chat_channel"]  # the fixture, shared with test_request_properties

USER = chat_pb2.ROLE_USER
ASSISTANT = chat_pb2.ROLE_ASSISTANT

PNG = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 5, 7) + b"\x08"
MAGIC = {
    chat_pb2.IMAGE_FORMAT_PNG: PNG,
    chat_pb2.IMAGE_FORMAT_JPEG: b"\xff\xd8\xff\xe0jfif",
    chat_pb2.IMAGE_FORMAT_GIF: b"GIF89a....",
    chat_pb2.IMAGE_FORMAT_WEBP: b"RIFF\x10\x00\x00\x00WEBPVP8 ",
}
ENUM_VALUES = st.one_of(st.integers(0, 4), INT32)
IMAGE_BYTES = st.one_of(
    st.sampled_from(list(MAGIC.values())),
    st.binary(max_size=24),
    st.just(b""),
)
S3_URIS = st.one_of(
    st.sampled_from(["s3://dualnova-media/cat.png", "s3://b/k", "https://x/y", "s3://", ""]),
    st.text(max_size=20),
)
DOCUMENT_NAMES = st.from_regex(r"[A-Za-z0-9()\[\]-]{1,12}( [A-Za-z0-9-]{1,8}){0,2}", fullmatch=True)
ODD_DOCUMENT_NAMES = st.one_of(
    st.sampled_from(["", "a  b", " lead", "notes.md", "x" * 201]), st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
JSON_TEXTS = st.one_of(
    JSON_VALUES.map(json.dumps), st.sampled_from(["", "{", "NaN", "[1,", '{"a":1}']), ANY_TEXTS
)
GOOD_TOOL_NAMES = st.one_of(
    st.sampled_from(["lookup", "get_weather", "t-1"]),
    st.from_regex(r"[a-zA-Z][a-zA-Z0-9_-]{0,20}", fullmatch=True),
)
ODD_TOOL_NAMES = st.sampled_from(["", "9lives", "look up", "t" * 65, "café"])
GOOD_SCHEMAS = st.sampled_from(
    [
        json.dumps(
            {"type": "object", "properties": {"city": {"type": "string"}, "n": {"type": "integer"}}}
        ),
        '{"type": "object"}',
    ]
)
ODD_SCHEMAS = st.one_of(JSON_TEXTS, st.sampled_from(['{"type": "string"}', "[]", '{"a": 1}']))
GOOD_METADATA = st.dictionaries(
    st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    st.from_regex(r"[a-z0-9 ]{0,8}", fullmatch=True),
    max_size=16,
)
ODD_METADATA = st.dictionaries(st.text(max_size=3), st.text(max_size=3), min_size=1, max_size=18)


class Pick:
    """Good values only (a careful caller), or good and arbitrary ones, field by field."""

    def __init__(self, draw: st.DrawFn, careful: bool) -> None:
        self.draw = draw
        self.careful = careful

    def __call__(self, good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
        return self.draw(good if self.careful else st.one_of(good, odd))

    def source(self, good: st.SearchStrategy[bytes]) -> chat_pb2.MediaSource:
        kind = self(st.just("bytes"), st.sampled_from(["s3", "none"]))
        if kind == "bytes":
            return chat_pb2.MediaSource(bytes=self(good, st.one_of(IMAGE_BYTES, st.just(b""))))
        if kind == "s3":
            owner = self.draw(st.sampled_from(["", "123456789012", "owner"]))
            return chat_pb2.MediaSource(
                s3_location=chat_pb2.S3Location(uri=self.draw(S3_URIS), bucket_owner=owner)
            )
        return chat_pb2.MediaSource()

    def image(self) -> chat_pb2.ImageBlock:
        image_format = self(st.sampled_from(list(MAGIC)), ENUM_VALUES)
        return chat_pb2.ImageBlock(
            format=image_format, source=self.source(st.just(MAGIC.get(image_format, b"x")))
        )

    def document(self) -> chat_pb2.DocumentBlock:
        return chat_pb2.DocumentBlock(
            format=self(st.integers(1, 9), INT32),
            name=self(DOCUMENT_NAMES, ODD_DOCUMENT_NAMES),
            source=self.source(st.binary(min_size=1, max_size=64)),
        )

    def block(self) -> chat_pb2.ContentBlock:
        kind = self.draw(st.sampled_from(["text", "image", "document", "guard", "cache", "none"]))
        if kind == "text":
            return chat_pb2.ContentBlock(text=self(GOOD_TEXTS, ANY_TEXTS))
        if kind == "image":
            return chat_pb2.ContentBlock(image=self.image())
        if kind == "document":
            return chat_pb2.ContentBlock(document=self.document())
        if kind == "guard":
            guarded = chat_pb2.GuardContentBlock(
                text=self(GOOD_TEXTS, ANY_TEXTS),
                qualifiers=self(
                    st.lists(st.integers(1, 3), max_size=2), st.lists(INT32, max_size=2)
                ),
            )
            return chat_pb2.ContentBlock(guard_content=guarded)
        if kind == "cache" or self.careful:
            return chat_pb2.ContentBlock(cache_point=chat_pb2.CachePoint())
        return chat_pb2.ContentBlock()

    def result_item(self) -> chat_pb2.ToolResultContent:
        kind = self.draw(st.sampled_from(["text", "json", "image", "none"]))
        if kind == "text":
            return chat_pb2.ToolResultContent(text=self(GOOD_TEXTS, ANY_TEXTS))
        if kind == "json":
            return chat_pb2.ToolResultContent(json=self(JSON_VALUES.map(json.dumps), JSON_TEXTS))
        if kind == "image" or self.careful:
            return chat_pb2.ToolResultContent(image=self.image())
        return chat_pb2.ToolResultContent()

    def conversation(self) -> list[chat_pb2.Message]:
        """A question of blocks, or a tool exchange ending in the tool's result."""
        question = chat_pb2.Message(
            role=USER,
            text=self(st.sampled_from(["Describe these; use lookup.", ""]), st.just(" ")),
            content=[self.block() for _ in range(self.draw(st.integers(0, 3)))],
        )
        if not question.content and not question.text:
            question.text = "Describe these."
        if not self.draw(st.booleans()):
            return [question]
        call_id = self(st.sampled_from(["tooluse_1", "tooluse_abc-DEF"]), st.just("id space"))
        call = chat_pb2.ToolUseBlock(
            tool_use_id=call_id,
            name=self(GOOD_TOOL_NAMES, ODD_TOOL_NAMES),
            input_json=self(st.sampled_from(['{"city":"Seoul"}', "{}", ""]), JSON_TEXTS),
        )
        result = chat_pb2.ToolResultBlock(
            tool_use_id=self(st.just(call_id), st.sampled_from(["tooluse_2", ""])),
            content=[self.result_item() for _ in range(self(st.integers(1, 2), st.just(0)))],
            status=self(st.integers(0, 2), INT32),
        )
        call_turn = chat_pb2.Message(role=ASSISTANT, content=[chat_pb2.ContentBlock(tool_use=call)])
        result_turn = chat_pb2.Message(
            role=USER, content=[chat_pb2.ContentBlock(tool_result=result)]
        )
        if self(st.just(False), st.booleans()):  # the blocks in each other's turns
            call_turn.content[0].CopyFrom(chat_pb2.ContentBlock(tool_result=result))
            result_turn.content[0].CopyFrom(chat_pb2.ContentBlock(tool_use=call))
        return [question, call_turn, result_turn]

    def tool_config(self) -> chat_pb2.ToolConfig:
        count = self(st.integers(1, 3), st.just(0))
        names = self(
            st.lists(GOOD_TOOL_NAMES, min_size=count, max_size=count, unique=True),
            st.lists(st.one_of(GOOD_TOOL_NAMES, ODD_TOOL_NAMES), min_size=count, max_size=count),
        )
        tools = [
            chat_pb2.Tool(
                name=name,
                description=self.draw(st.sampled_from(["", "Looks things up."])),
                input_schema_json=self(GOOD_SCHEMAS, ODD_SCHEMAS),
            )
            for name in names
        ]
        mode = self(st.integers(0, 3), INT32)
        named = mode == chat_pb2.TOOL_CHOICE_MODE_TOOL and names
        choice = chat_pb2.ToolChoice(
            mode=mode,
            name=self(st.sampled_from(names) if named else st.just(""), GOOD_TOOL_NAMES),
        )
        return chat_pb2.ToolConfig(tools=tools, tool_choice=choice)

    def guardrail(self) -> chat_pb2.GuardrailConfig:
        return chat_pb2.GuardrailConfig(
            identifier=self(st.just("gr-dualnova"), st.sampled_from(["", " ", "gr-other"])),
            version=self(
                st.sampled_from(["1", "DRAFT"]),
                st.one_of(st.sampled_from(["2", "01", "draft", ""]), st.text(max_size=4)),
            ),
            trace=self(st.integers(0, 3), INT32),
            stream_processing_mode=self(st.integers(0, 2), INT32),
        )

    def options(self) -> chat_pb2.BedrockOptions:
        chosen = chat_pb2.BedrockOptions(
            latency=self(st.integers(0, 2), INT32),
            service_tier=self(st.integers(0, 3), INT32),
            request_metadata=self(GOOD_METADATA, ODD_METADATA),
        )
        if self.draw(st.booleans()):
            chosen.top_k = self(st.integers(1, 128), INT32)
        return chosen


@st.composite
def converse_requests(draw: st.DrawFn) -> inference_pb2.ChatRequest:
    pick = Pick(draw, careful=draw(st.booleans()))
    request = inference_pb2.ChatRequest(
        model=draw(st.sampled_from(["micro", "pro"])), messages=pick.conversation()
    )
    if draw(st.booleans()):
        request.tool_config.CopyFrom(pick.tool_config())
    if draw(st.booleans()):
        request.guardrail_config.CopyFrom(pick.guardrail())
    if draw(st.booleans()):
        request.options.CopyFrom(pick.options())
    return request


def check_converse(channel: grpc.Channel, request: inference_pb2.ChatRequest) -> None:
    events: list[inference_pb2.ChatResponse] = []
    try:
        for response in inference_pb2_grpc.InferenceServiceStub(channel).Chat(request, timeout=30):
            events.append(response)
    except grpc.RpcError as error:
        assert error.code() not in NEVER, f"{error.code().name}: {error.details()}"
        assert error.code() == REFUSED, f"{error.code().name}: {error.details()}"
        event(f"refused: {(error.details() or '').split(':')[0]}")
        return
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "start" and kinds[-2:] == ["usage", "stop"], kinds
    # Well-formed blocks: a tool call's fragments follow its start and precede its stop.
    started: set[int] = set()
    stopped: set[int] = set()
    for response in events:
        kind = response.WhichOneof("event")
        if kind == "tool_use_start":
            started.add(response.tool_use_start.content_block_index)
        elif kind == "tool_input_delta":
            index = response.tool_input_delta.content_block_index
            assert index in started and index not in stopped
        elif kind == "content_block_stop":
            stopped.add(response.content_block_stop.content_block_index)
    assert started <= stopped
    if started:
        assert events[-1].stop.reason == chat_pb2.STOP_REASON_TOOL_USE
    event(f"accepted: {events[-1].stop.stop_reason}")


@PROPERTIES
@given(request=converse_requests())
def test_any_converse_request_is_answered_or_refused_by_a_status_we_chose(
    chat_channel: grpc.Channel, request: inference_pb2.ChatRequest
) -> None:
    check_converse(chat_channel, request)
