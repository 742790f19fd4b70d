"""Checks on a DualChatRequest before either route starts.

A request both routes would reject is refused once, as INVALID_ARGUMENT naming
the field, rather than as two identical route errors after two upstream calls.
The conversation rules are shared with the inference service
(dualnova.server.conversation); what is checked here is only what DualChat adds:
the gateway's limits on what one request may hold (size, turns, text), ordering
and the per-route overrides. Each limit's message names its number and the
variable that sets it, so a caller knows what to change and an operator what
to raise.
"""

from __future__ import annotations

from dualnova.gateway.v1 import gateway_pb2
from dualnova.server.conversation import (
    InvalidRequest,
    text_chars,
    validate_inference_config,
    validate_messages,
    validate_size,
    validate_system,
)
from gateway.config import MAX_MESSAGE_BYTES, MAX_MESSAGES, MAX_TEXT_CHARS, Settings
from gateway.routes import ROUTES, route_override

__all__ = ["InvalidRequest", "validate_dual_chat"]

_DEFAULTS = Settings()


def validate_dual_chat(
    request: gateway_pb2.DualChatRequest, settings: Settings = _DEFAULTS
) -> None:
    """Raise InvalidRequest (field and reason) for the first rule the request breaks."""
    validate_limits(request, settings)
    validate_messages(request.messages, "messages")
    validate_system(request.system, "system")
    validate_inference_config(request.inference_config, "inference_config")
    if request.ordering not in gateway_pb2.Ordering.values():
        raise InvalidRequest("ordering", f"unknown value {request.ordering}")
    for route in ROUTES:
        override = route_override(request, route)
        validate_system(override.system, f"{route}.system")
        validate_inference_config(override.inference_config, f"{route}.inference_config")


def validate_limits(request: gateway_pb2.DualChatRequest, settings: Settings) -> None:
    """Size, turns and text within the gateway's limits (cheapest first)."""
    validate_size(request, settings.max_message_bytes, MAX_MESSAGE_BYTES.variable)
    count = len(request.messages)
    if count > settings.max_messages:
        raise InvalidRequest(
            "messages",
            f"{count} messages, more than the limit of {settings.max_messages}"
            f" ({MAX_MESSAGES.variable})",
        )
    overrides = (route_override(request, route).system for route in ROUTES)
    systems = [*request.system, *(text for system in overrides for text in system)]
    chars = text_chars(request.messages, systems)
    if chars > settings.max_text_chars:
        raise InvalidRequest(
            "request",
            f"{chars} characters of text in messages and system prompts, more than the limit"
            f" of {settings.max_text_chars} ({MAX_TEXT_CHARS.variable})",
        )
