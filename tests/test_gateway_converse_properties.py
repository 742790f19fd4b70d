"""Property-based: whatever blocks, tools, guardrails and options a DualChat holds, shared or
per route, each route is sent exactly its own (or the shared) ones, and media never reach
Micro.

The first property is the merge itself (gateway.routes.build_chat_request, in process). The
second sends drawn requests to the session's real processes: the gateway answers with
INVALID_ARGUMENT or a stream ending in a summary (never UNKNOWN or INTERNAL), a refusal
costs no Bedrock call, and in what Bedrock received Micro's request holds no image or
document and each route's toolConfig is there exactly when the route was given one.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from converse_support import MODELS, WEATHER_TOOL, png
from gateway_client import dual_chat
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.gateway.v1 import gateway_pb2
from gateway.config import Settings
from gateway.routes import REPLACED_CONFIGS, build_chat_request

ROUTES = tuple(MODELS)
PROPERTIES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Mostly what a careful caller sends, sometimes what Bedrock or our rules refuse.
_texts = st.sampled_from(
    ["Hello", "Use get_weather for Paris.", "Something forbidden?", "Why?", "Hi", " "]
)
_sources = st.sampled_from([png(2, 1), png(3, 3), png(1, 1), b"GIF89a not a png", b""]).map(
    lambda data: chat_pb2.MediaSource(bytes=data)
)
_blocks = st.one_of(
    _texts.map(lambda text: chat_pb2.ContentBlock(text=text)),
    _sources.map(
        lambda source: chat_pb2.ContentBlock(
            image=chat_pb2.ImageBlock(format=chat_pb2.IMAGE_FORMAT_PNG, source=source)
        )
    ),
    st.sampled_from(["notes", "Notes (v2)", "two  spaces"]).map(
        lambda name: chat_pb2.ContentBlock(
            document=chat_pb2.DocumentBlock(
                format=chat_pb2.DOCUMENT_FORMAT_MD,
                name=name,
                source=chat_pb2.MediaSource(bytes=b"# Notes\n"),
            )
        )
    ),
    st.just(chat_pb2.ContentBlock(cache_point=chat_pb2.CachePoint())),
    _texts.map(
        lambda text: chat_pb2.ContentBlock(guard_content=chat_pb2.GuardContentBlock(text=text))
    ),
)
_turn = st.builds(
    lambda text, blocks, blocks_only: chat_pb2.Message(
        role=chat_pb2.ROLE_USER, text="" if blocks_only and blocks else text, content=blocks
    ),
    st.sampled_from(["What is this?", "Tell me.", "Use get_weather, then explain."]),
    st.lists(_blocks, max_size=2),
    st.booleans(),
)
# The shared conversation is usually there; a route's own usually not.
_one_turn = st.lists(_turn, min_size=1, max_size=1)
_shared_messages = st.one_of(*[_one_turn] * 5, st.just([]))
_own_messages = st.one_of(st.just([]), st.just([]), _one_turn)
_tool_configs = st.sampled_from(
    [
        chat_pb2.ToolConfig(tools=[WEATHER_TOOL]),
        chat_pb2.ToolConfig(
            tools=[WEATHER_TOOL],
            tool_choice=chat_pb2.ToolChoice(mode=chat_pb2.TOOL_CHOICE_MODE_ANY),
        ),
        chat_pb2.ToolConfig(tools=[WEATHER_TOOL]),
        chat_pb2.ToolConfig(tools=[chat_pb2.Tool(name="bad", input_schema_json="[]")]),
    ]
)
_guardrails = st.builds(
    chat_pb2.GuardrailConfig,
    identifier=st.sampled_from(["gr-dualnova"] * 6 + ["gr-unknown", ""]),
    version=st.sampled_from(["1"] * 4 + ["DRAFT"] * 3 + ["v2"]),
    trace=st.sampled_from(list(chat_pb2.GuardrailTraceMode.values())),
)
_options = st.builds(
    chat_pb2.BedrockOptions,
    latency=st.sampled_from(list(chat_pb2.Latency.values())),
    service_tier=st.sampled_from(list(chat_pb2.ServiceTier.values())),
    top_k=st.one_of(st.none(), st.integers(-1, 130)),
    request_metadata=st.dictionaries(
        st.sampled_from(["team", "ticket"]), st.just("a1"), max_size=2
    ),
)


def _layer(cls: Any, messages: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A DualChatRequest's or RouteOverride's messages and new fields, each set or not."""
    return st.builds(
        lambda messages, tools, guardrail, options: cls(
            messages=messages,
            **{
                name: value
                for name, value in (
                    ("tool_config", tools),
                    ("guardrail_config", guardrail),
                    ("options", options),
                )
                if value is not None
            },
        ),
        messages,
        st.one_of(st.none(), st.none(), _tool_configs),
        st.one_of(st.none(), st.none(), _guardrails),
        st.one_of(st.none(), st.none(), _options),
    )


_requests = st.builds(
    lambda shared, micro, pro: _with_overrides(shared, micro, pro),
    _layer(gateway_pb2.DualChatRequest, _shared_messages),
    _layer(gateway_pb2.RouteOverride, _own_messages),
    _layer(gateway_pb2.RouteOverride, _own_messages),
)


def _with_overrides(
    shared: gateway_pb2.DualChatRequest,
    micro: gateway_pb2.RouteOverride,
    pro: gateway_pb2.RouteOverride,
) -> gateway_pb2.DualChatRequest:
    shared.micro.CopyFrom(micro)
    shared.pro.CopyFrom(pro)
    return shared


@PROPERTIES
@given(request=_requests)
def test_each_route_is_sent_its_own_settings_or_else_the_shared_ones(
    request: gateway_pb2.DualChatRequest,
) -> None:
    settings_ = Settings()
    for route in ROUTES:
        override = getattr(request, route)
        sent = build_chat_request(request, route, settings_.route_defaults(route))
        assert list(sent.messages) == list(override.messages or request.messages)
        for name in REPLACED_CONFIGS:
            source = override if override.HasField(name) else request
            assert sent.HasField(name) == source.HasField(name)
            assert getattr(sent, name) == getattr(source, name)


def _has_media(value: Any) -> bool:
    return '"image"' in json.dumps(value) or '"document"' in json.dumps(value)


@PROPERTIES
@given(request=_requests)
def test_drawn_dual_chats_are_answered_or_refused_and_micro_never_gets_media(
    gateway: ServiceHandle, emulator: EmulatorHandle, request: gateway_pb2.DualChatRequest
) -> None:
    emulator.reset()
    try:
        result = dual_chat(gateway.address, request, timeout=20)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert emulator.requests() == []
        event("refused: " + error.details().split(":")[0].split("[")[0])
        return
    failed = sorted(route for route, got in result.routes.items() if got.error is not None)
    event(f"accepted, route errors: {failed}")
    entries = [e for e in emulator.requests() if e["operation"] == "ConverseStream"]
    for entry in entries:
        (route,) = [r for r, model in MODELS.items() if model == entry["model_id"]]
        body = entry["body"]
        if route == "micro":
            assert not _has_media(body["messages"])
        override = getattr(request, route)
        offered = override.HasField("tool_config") or request.HasField("tool_config")
        assert ("toolConfig" in body) == offered
    for route in ROUTES:
        got = result.routes[route]
        assert got.error is None or got.error.code not in ("UNKNOWN", "INTERNAL"), got.error
