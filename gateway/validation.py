"""Checks on a DualChatRequest before either route starts.

A request both routes would reject is refused once, as INVALID_ARGUMENT naming
the field, rather than as two identical route errors after two upstream calls.
The conversation, block and config rules are shared with the inference
service (dualnova.server.conversation); what is checked here is only what
DualChat adds: the gateway's limits on what one request may hold (size,
turns, text), ordering, the per-route overrides, and which route may be sent
images and documents (dualnova.routes.MEDIA_ROUTES), and the grounding with its
query (the shared messages' last user turn). Each limit's message
names its number and the variable that sets it, so a caller knows what to
change and an operator what to raise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dualnova.chat.v1 import chat_pb2
from dualnova.gateway.v1 import gateway_pb2
from dualnova.routes import MEDIA_ROUTES, PRO
from dualnova.server.conversation import (
    InvalidRequest,
    last_user_text,
    media_blocks,
    text_chars,
    validate_grounding,
    validate_guardrail_config,
    validate_inference_config,
    validate_messages,
    validate_options,
    validate_query,
    validate_size,
    validate_system,
    validate_tool_config,
    validate_tools_offered,
)
from gateway.config import MAX_MESSAGE_BYTES, MAX_MESSAGES, MAX_TEXT_CHARS, Settings
from gateway.routes import ROUTES, route_config, route_messages, route_override

__all__ = ["InvalidRequest", "TEXT_ONLY", "grounding_query", "validate_dual_chat"]

_DEFAULTS = Settings()

# Why micro (the one route outside MEDIA_ROUTES) refuses media, and where they belong.
TEXT_ONLY = (
    f"Nova Micro takes text only; send images and documents to {PRO} alone through {PRO}.messages"
)
_CONFIG_CHECKS: dict[str, Callable[[Any, str], None]] = {
    "tool_config": validate_tool_config,
    "guardrail_config": validate_guardrail_config,
    "options": validate_options,
}


def validate_dual_chat(
    request: gateway_pb2.DualChatRequest, settings: Settings = _DEFAULTS
) -> None:
    """Raise InvalidRequest (field and reason) for the first rule the request breaks."""
    validate_limits(request, settings)
    validate_conversations(request)
    validate_system(request.system, "system")
    validate_inference_config(request.inference_config, "inference_config")
    if request.ordering not in gateway_pb2.Ordering.values():
        raise InvalidRequest("ordering", f"unknown value {request.ordering}")
    validate_configs(request, "")
    for route in ROUTES:
        override = route_override(request, route)
        validate_system(override.system, f"{route}.system")
        validate_inference_config(override.inference_config, f"{route}.inference_config")
        validate_configs(override, f"{route}.")
    validate_tools_per_route(request)
    validate_media(request)
    if request.HasField("grounding"):
        validate_grounding(request.grounding, "grounding")
        query = grounding_query(request)
        if not query.strip():
            raise InvalidRequest(
                "grounding",
                "retrieves with the text of the last user turn of messages, which has none",
            )
        validate_query(query, "grounding (its query, the last user turn's text)")


def grounding_query(request: gateway_pb2.DualChatRequest) -> str:
    """What a grounded DualChat retrieves with: the last user turn of the shared messages."""
    return last_user_text(request.messages)


def validate_conversations(request: gateway_pb2.DualChatRequest) -> None:
    """The shared messages and each route's own; the shared ones may be empty only if unused."""
    without_own = [route for route in ROUTES if not route_override(request, route).messages]
    if request.messages or len(without_own) == len(ROUTES):
        validate_messages(request.messages, "messages")
    elif without_own:
        raise InvalidRequest(
            "messages",
            f"must contain at least one message: {without_own[0]} has no"
            f" {without_own[0]}.messages of its own",
        )
    for route in ROUTES:
        own = route_override(request, route).messages
        if own:
            validate_messages(own, f"{route}.messages")


def validate_configs(
    layer: gateway_pb2.DualChatRequest | gateway_pb2.RouteOverride, prefix: str
) -> None:
    """Tool config, guardrail config and options of the request or of one override, when set."""
    for name, check in _CONFIG_CHECKS.items():
        if layer.HasField(name):
            check(getattr(layer, name), f"{prefix}{name}")


def validate_tools_per_route(request: gateway_pb2.DualChatRequest) -> None:
    """Tool calls and results only in the messages of a route that is sent a tool config."""
    for route in ROUTES:
        field, messages = route_messages(request, route)
        offered = route_config(request, route, "tool_config") is not None
        try:
            validate_tools_offered(messages, offered, field)
        except InvalidRequest as error:
            raise InvalidRequest(
                error.field, f"{error.reason}; {route} is sent no tool_config"
            ) from None


def validate_media(request: gateway_pb2.DualChatRequest) -> None:
    """No image or document in the messages a text-only route would be sent."""
    for route in ROUTES:
        if route in MEDIA_ROUTES:
            continue
        field, messages = route_messages(request, route)
        found = media_blocks(messages, field)
        if found:
            path, kind = found[0]
            raise InvalidRequest(route, f"{TEXT_ONLY} ({path} is {_a(kind)})")


def validate_limits(request: gateway_pb2.DualChatRequest, settings: Settings) -> None:
    """Size, turns and text within the gateway's limits (cheapest first)."""
    validate_size(request, settings.max_message_bytes, MAX_MESSAGE_BYTES.variable)
    conversations = _conversations(request)
    for field, messages in conversations:
        count = len(messages)
        if count > settings.max_messages:
            raise InvalidRequest(
                field,
                f"{count} messages, more than the limit of {settings.max_messages}"
                f" ({MAX_MESSAGES.variable})",
            )
    overrides = (route_override(request, route).system for route in ROUTES)
    systems = [*request.system, *(text for system in overrides for text in system)]
    every_message = [message for _, messages in conversations for message in messages]
    chars = text_chars(every_message, systems)
    if chars > settings.max_text_chars:
        raise InvalidRequest(
            "request",
            f"{chars} characters of text in messages and system prompts, more than the limit"
            f" of {settings.max_text_chars} ({MAX_TEXT_CHARS.variable})",
        )


def _conversations(
    request: gateway_pb2.DualChatRequest,
) -> list[tuple[str, Sequence[chat_pb2.Message]]]:
    """Every message list the request holds, with its field: shared first, then each route's."""
    lists: list[tuple[str, Sequence[chat_pb2.Message]]] = [("messages", request.messages)]
    for route in ROUTES:
        own = route_override(request, route).messages
        if own:
            lists.append((f"{route}.messages", own))
    return lists


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
