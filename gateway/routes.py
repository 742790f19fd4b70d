"""What each route asks the inference service: the DualChatRequest, specialised per route.

Precedence, lowest first: the route's default, the request's shared settings,
the route's override. Generation settings merge field by field (a request
that sets only top_p still gets the route's max_tokens and temperature), so
proto3 presence (HasField on the optional scalars) decides what "set" means,
not zero values. Messages, tool config, guardrail config and Bedrock options
are replaced as a whole: a route's messages are its own history (its own tool
call ids), and half of one tool config merged into another is no config
anyone wrote. A grounded request's passages (retrieved once, by the gateway) go to
every route whose override does not skip_grounding, as ChatRequest.retrieval.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message as ProtoMessage

from dualnova.chat.v1 import chat_pb2
from dualnova.gateway.v1 import gateway_pb2
from dualnova.inference.v1 import inference_pb2
from dualnova.routes import ROUTES
from gateway.config import RouteDefaults

__all__ = [
    "REPLACED_CONFIGS",
    "ROUTES",
    "build_chat_request",
    "merge_inference_config",
    "route_config",
    "route_messages",
    "route_override",
]

_SCALARS = ("max_tokens", "temperature", "top_p")
# Message fields of both DualChatRequest and RouteOverride that a route's
# override replaces as a whole when it sets them (presence, not emptiness).
REPLACED_CONFIGS = ("tool_config", "guardrail_config", "options")


def route_override(request: gateway_pb2.DualChatRequest, route: str) -> gateway_pb2.RouteOverride:
    """The request's override for `route` (an empty one when unset)."""
    if route not in ROUTES:
        raise KeyError(route)
    return getattr(request, route)


def route_messages(
    request: gateway_pb2.DualChatRequest, route: str
) -> tuple[str, Sequence[chat_pb2.Message]]:
    """The messages `route` is sent, and the request field they come from."""
    override = route_override(request, route)
    if override.messages:
        return f"{route}.messages", override.messages
    return "messages", request.messages


def route_config(
    request: gateway_pb2.DualChatRequest, route: str, name: str
) -> tuple[str, ProtoMessage] | None:
    """The `name` config (of REPLACED_CONFIGS) `route` is sent, and its field; None if unset."""
    override = route_override(request, route)
    if override.HasField(name):
        return f"{route}.{name}", getattr(override, name)
    if request.HasField(name):
        return name, getattr(request, name)
    return None


def merge_inference_config(
    defaults: RouteDefaults,
    shared: chat_pb2.InferenceConfig,
    override: chat_pb2.InferenceConfig,
) -> chat_pb2.InferenceConfig:
    """Route default <- shared set fields <- override set fields; stop sequences as a whole."""
    merged = chat_pb2.InferenceConfig(
        max_tokens=defaults.max_tokens, temperature=defaults.temperature
    )
    for layer in (shared, override):
        for name in _SCALARS:
            if layer.HasField(name):
                setattr(merged, name, getattr(layer, name))
    merged.stop_sequences.extend(override.stop_sequences or shared.stop_sequences)
    return merged


def build_chat_request(
    request: gateway_pb2.DualChatRequest,
    route: str,
    defaults: RouteDefaults,
    retrieval: chat_pb2.Retrieval | None = None,
) -> inference_pb2.ChatRequest:
    """The ChatRequest the gateway sends upstream for `route`, which is also its model alias.

    `retrieval`: the passages of the request's grounding, unless the route skips them.
    """
    override = route_override(request, route)
    chat_request = inference_pb2.ChatRequest(
        model=route,
        messages=route_messages(request, route)[1],
        system=override.system or request.system,
        inference_config=merge_inference_config(
            defaults, request.inference_config, override.inference_config
        ),
        cache_system=request.cache_system,
    )
    for name in REPLACED_CONFIGS:
        chosen = route_config(request, route, name)
        if chosen is not None:
            getattr(chat_request, name).CopyFrom(chosen[1])
    if retrieval is not None and not override.skip_grounding:
        chat_request.retrieval.CopyFrom(retrieval)
    return chat_request
