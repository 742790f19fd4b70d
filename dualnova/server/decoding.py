"""A request that does not parse as its message is INVALID_ARGUMENT, not gRPC's UNKNOWN.

grpc.aio parses each request with the handler's request_deserializer before any
servicer runs. Bytes that are not a valid message (a string field that is not
UTF-8, a corrupt wire format: what a hand-made or another language's client can
send) raise DecodeError there, and the caller hears UNKNOWN "Unexpected <class
'google.protobuf.message.DecodeError'>", the status of a server bug. This
interceptor parses DualNova's own requests itself and lets such a call reach a
handler that refuses it as the caller's error, naming what protobuf found wrong.
Health and reflection are grpc's and are left alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError

__all__ = ["RequestDecoding"]

Context = grpc.aio.ServicerContext[Any, Any]
Behavior = Callable[[Any, Context], Awaitable[Any]]
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


@dataclass(frozen=True)
class _Unparsed:
    """Stands in for a request that did not parse; `reason` is protobuf's."""

    reason: str


class RequestDecoding(grpc.aio.ServerInterceptor):
    """Unary-request methods of the given services: unparsable bytes are INVALID_ARGUMENT."""

    def __init__(self, service_prefixes: Sequence[str] = ("dualnova.",)) -> None:
        self._prefixes = tuple(service_prefixes)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[_Req, _Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_Req, _Resp] | None:
        handler = await continuation(handler_call_details)
        if (
            handler is None
            or handler.request_streaming
            or handler.request_deserializer is None
            or not handler_call_details.method.lstrip("/").startswith(self._prefixes)
        ):
            return handler
        behavior = handler.unary_stream if handler.response_streaming else handler.unary_unary
        if not inspect.iscoroutinefunction(behavior):
            return handler
        return _lenient_handler(handler, behavior)


def _lenient_handler(handler: grpc.RpcMethodHandler[Any, Any], behavior: Behavior) -> Any:
    parse = handler.request_deserializer
    assert parse is not None

    def lenient(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as error:
            return _Unparsed(str(error))

    async def checked(request: Any, context: Context) -> Any:
        if isinstance(request, _Unparsed):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"request: cannot be parsed ({request.reason})"
            )
        return await behavior(request, context)

    factory: Callable[..., Any] = (
        grpc.unary_stream_rpc_method_handler
        if handler.response_streaming
        else grpc.unary_unary_rpc_method_handler
    )
    return factory(
        checked, request_deserializer=lenient, response_serializer=handler.response_serializer
    )
