"""Bearer tokens at a server: the interceptor that lets a call in, or ends it UNAUTHENTICATED.

Only the methods under the guarded service prefixes are checked; health and
(unless a server turns it off) reflection stay open, so probes and grpcurl's
listing need no token. With no token configured nothing is checked, as
before. A refused call hears one message whatever was wrong (no header, not
Bearer, a token nobody accepts), so a guess learns nothing; the log line
says the same, with the peer, and never the token.

A call let in runs with the caller's name as the current caller
(dualnova.server.callers): the log filter puts it in every line of the call,
this interceptor puts it on the call's server span (dualnova.caller), and the
gateway sends it upstream (x-dualnova-caller) for the inference service's
lines. Placed after rpc_tracing.ServerTracing, so the span exists and a
refusal is recorded on it as UNAUTHENTICATED.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
from opentelemetry import trace

from dualnova.server.callers import (
    CALLER_ATTRIBUTE,
    CALLER_METADATA_KEY,
    TokenSource,
    relayed_name,
    set_caller,
)

__all__ = ["REFUSAL", "BearerAuth"]

logger = logging.getLogger(__name__)

# What every refused caller is told: what to send, never what was wrong with what it sent.
REFUSAL = (
    "this service needs a valid bearer token: send metadata 'authorization: Bearer <token>'"
    " (dualnova --token, or DUALNOVA_TOKEN)"
)
_AUTHORIZATION = "authorization"
_SCHEME = "bearer "

Context = grpc.aio.ServicerContext[Any, Any]
Behavior = Callable[[Any, Context], Awaitable[Any]]
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


class BearerAuth(grpc.aio.ServerInterceptor):
    """Checks `authorization: Bearer <token>` on the guarded services' methods.

    `relay_caller`: take the caller's name from x-dualnova-caller when the
    call carries one (the inference service behind the gateway: the gateway
    names the caller it serves); otherwise the name is the token's.
    """

    def __init__(
        self,
        tokens: TokenSource,
        guarded_prefixes: Sequence[str],
        *,
        relay_caller: bool = False,
    ) -> None:
        self._tokens = tokens
        self._prefixes = tuple(prefix.lstrip("/") for prefix in guarded_prefixes)
        self._relay = relay_caller

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[_Req, _Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_Req, _Resp] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method.lstrip("/")
        if handler is None or not method.startswith(self._prefixes):
            return handler
        if not self._tokens.enabled and not self._relay:
            return handler
        metadata = tuple(handler_call_details.invocation_metadata or ())
        name: str | None = None
        if self._tokens.enabled:
            name = self._identify(metadata)
            if name is None:
                return _replace(handler, _refuse(method))
        if self._relay:
            name = _relayed(metadata) or name
        if name is None:
            return handler
        return _replace(handler, _as_caller(_behavior(handler), name))

    def _identify(self, metadata: Sequence[tuple[str, str | bytes]]) -> str | None:
        for key, value in metadata:
            if key == _AUTHORIZATION and isinstance(value, str):
                if value[: len(_SCHEME)].lower() != _SCHEME:
                    return None
                return self._tokens.identify(value[len(_SCHEME) :].strip())
        return None


def _relayed(metadata: Sequence[tuple[str, str | bytes]]) -> str | None:
    for key, value in metadata:
        if key == CALLER_METADATA_KEY:
            return relayed_name(value)
    return None


def _refuse(method: str) -> Behavior:
    async def refuse(request: Any, context: Context) -> None:
        logger.warning(
            f"call refused: no valid bearer token for {method}",
            extra={"status": "UNAUTHENTICATED", "peer": context.peer()},
        )
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)

    return refuse


def _as_caller(behavior: Behavior, name: str) -> Behavior:
    async def as_caller(request: Any, context: Context) -> Any:
        set_caller(name)  # this call's own context: it ends with the call
        trace.get_current_span().set_attribute(CALLER_ATTRIBUTE, name)
        return await behavior(request, context)

    return as_caller


def _behavior(handler: grpc.RpcMethodHandler[Any, Any]) -> Behavior:
    behavior = (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )
    if not inspect.iscoroutinefunction(behavior):
        # An async generator would need a generator wrapper; DualNova's servicers write
        # with context.write (see rpc_tracing), so this is a programming error.
        raise TypeError("BearerAuth guards coroutine handlers only")
    return behavior


def _replace(handler: grpc.RpcMethodHandler[Any, Any], behavior: Behavior) -> Any:
    if handler.request_streaming and handler.response_streaming:
        factory: Callable[..., Any] = grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        factory = grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        factory = grpc.unary_stream_rpc_method_handler
    else:
        factory = grpc.unary_unary_rpc_method_handler
    return factory(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
