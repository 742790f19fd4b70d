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

from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from dualnova.server.interceptors import (
    Behavior,
    Context,
    Handler,
    ScopedInterceptor,
    behavior_of,
    rebuilt,
)

__all__ = ["RequestDecoding"]


@dataclass(frozen=True)
class _Unparsed:
    """Stands in for a request that did not parse; `reason` is protobuf's."""

    reason: str


class RequestDecoding(ScopedInterceptor):
    """Unary-request methods of the given services: unparsable bytes are INVALID_ARGUMENT."""

    def wrap(self, handler: Handler, method: str, details: grpc.HandlerCallDetails) -> Any:
        behavior = behavior_of(handler)
        if handler.request_streaming or handler.request_deserializer is None or behavior is None:
            return handler
        return _lenient_handler(handler, behavior)


def _lenient_handler(handler: Handler, behavior: Behavior) -> Any:
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

    return rebuilt(handler, checked, request_deserializer=lenient)
