"""What the services' server interceptors share: which methods they wrap, and how.

Tracing, bearer-token checks and request decoding each wrap the behaviour of
the services' own methods (dualnova.*) and let health and reflection pass
through untouched. grpc.aio chooses how to run a handler by its function type,
so only coroutine behaviours are wrapped (both servicers write with
context.write); a handler is rebuilt with the same kind and serialisers.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias, TypeVar

import grpc

__all__ = ["Behavior", "Context", "Handler", "ScopedInterceptor", "behavior_of", "rebuilt"]

Context = grpc.aio.ServicerContext[Any, Any]
Behavior = Callable[[Any, Context], Awaitable[Any]]
# grpc's stubs make RpcMethodHandler generic; the runtime class is not subscriptable.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


class ScopedInterceptor(grpc.aio.ServerInterceptor):
    """A server interceptor for the methods of some services; wrap() says what it does."""

    def __init__(self, service_prefixes: Sequence[str] = ("dualnova.",)) -> None:
        self._prefixes = tuple(prefix.lstrip("/") for prefix in service_prefixes)

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
        wrapped: grpc.RpcMethodHandler[_Req, _Resp] = self.wrap(
            handler, method, handler_call_details
        )
        return wrapped

    def wrap(self, handler: Handler, method: str, details: grpc.HandlerCallDetails) -> Any:
        """The handler to run instead of `handler` for `method` (itself to leave it alone)."""
        raise NotImplementedError


def behavior_of(handler: Handler) -> Behavior | None:
    """The handler's coroutine behaviour; None for an async generator (not wrappable)."""
    behavior = (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )
    return behavior if inspect.iscoroutinefunction(behavior) else None


def rebuilt(
    handler: Handler,
    behavior: Behavior,
    *,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> Any:
    """A handler of the same kind and serialisers as `handler` running `behavior`."""
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
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
