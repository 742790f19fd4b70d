"""Checks on a DualChatRequest before either route starts.

A request both routes would reject is refused once, as INVALID_ARGUMENT naming
the field, rather than as two identical route errors after two upstream calls.
The conversation rules are shared with the inference service
(dualnova.server.conversation); what is checked here is only what DualChat adds:
ordering and the per-route overrides.
"""

from __future__ import annotations

from dualnova.gateway.v1 import gateway_pb2
from dualnova.server.conversation import (
    InvalidRequest,
    validate_inference_config,
    validate_messages,
    validate_system,
)
from gateway.routes import ROUTES, route_override

__all__ = ["InvalidRequest", "validate_dual_chat"]


def validate_dual_chat(request: gateway_pb2.DualChatRequest) -> None:
    """Raise InvalidRequest (field and reason) for the first rule the request breaks."""
    validate_messages(request.messages, "messages")
    validate_system(request.system, "system")
    validate_inference_config(request.inference_config, "inference_config")
    if request.ordering not in gateway_pb2.Ordering.values():
        raise InvalidRequest("ordering", f"unknown value {request.ordering}")
    for route in ROUTES:
        override = route_override(request, route)
        validate_system(override.system, f"{route}.system")
        validate_inference_config(override.inference_config, f"{route}.inference_config")
