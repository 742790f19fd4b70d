"""What each route asks the inference service: the DualChatRequest, specialised per route.

Precedence, lowest first: the route's default, the request's shared settings,
the route's override. Settings merge field by field (a request that sets only
top_p still gets the route's max_tokens and temperature), so proto3 presence
(HasField on the optional scalars) decides what "set" means, not zero values.
"""

from __future__ import annotations

from dualnova.chat.v1 import chat_pb2
from dualnova.gateway.v1 import gateway_pb2
from dualnova.inference.v1 import inference_pb2
from dualnova.routes import ROUTES
from gateway.config import RouteDefaults

__all__ = ["ROUTES", "build_chat_request", "merge_inference_config", "route_override"]

_SCALARS = ("max_tokens", "temperature", "top_p")


def route_override(request: gateway_pb2.DualChatRequest, route: str) -> gateway_pb2.RouteOverride:
    """The request's override for `route` (an empty one when unset)."""
    if route not in ROUTES:
        raise KeyError(route)
    return getattr(request, route)


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
    request: gateway_pb2.DualChatRequest, route: str, defaults: RouteDefaults
) -> inference_pb2.ChatRequest:
    """The ChatRequest the gateway sends upstream for `route`, which is also its model alias."""
    override = route_override(request, route)
    return inference_pb2.ChatRequest(
        model=route,
        messages=request.messages,
        system=override.system or request.system,
        inference_config=merge_inference_config(
            defaults, request.inference_config, override.inference_config
        ),
        cache_system=request.cache_system,
    )
