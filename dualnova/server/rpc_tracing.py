"""gRPC server spans and trace-context propagation, for grpc.aio servicers that use context.write.

Ours rather than opentelemetry-instrumentation-grpc's aio server interceptor:
in 0.66b2 that one iterates every response-streaming handler with `async
for`, so a servicer that streams with `await context.write()` (both of ours
do, for prompt cancellation) fails with UNKNOWN "'async for' requires an
object with __aiter__ method, got coroutine" (open-telemetry/
opentelemetry-python-contrib#3066). This interceptor wraps coroutine
handlers as coroutines and leaves async-generator handlers alone.

Only DualNova's own services are traced: health checks and reflection would
otherwise put a span in the backend every few seconds per prober.

Attributes follow the RPC semantic conventions: the span is named after the
full method ("dualnova.gateway.v1.Gateway/DualChat"), kind SERVER, with
rpc.system.name, rpc.method and rpc.response.status_code (the status name).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from dualnova.server.interceptors import (
    Behavior,
    Context,
    Handler,
    ScopedInterceptor,
    behavior_of,
    rebuilt,
)
from dualnova.server.telemetry import INSTRUMENTATION_NAME

__all__ = ["ServerTracing", "outgoing_metadata", "record_status"]

Code = grpc.StatusCode

# Statuses that mark a SERVER span as failed (the others are the caller's doing).
_SERVER_ERRORS = frozenset(
    {
        Code.UNKNOWN,
        Code.DEADLINE_EXCEEDED,
        Code.UNIMPLEMENTED,
        Code.INTERNAL,
        Code.UNAVAILABLE,
        Code.DATA_LOSS,
    }
)


class ServerTracing(ScopedInterceptor):
    """One SERVER span per call of a traced service, continuing the caller's traceparent."""

    def __init__(self, service_prefixes: Sequence[str] = ("dualnova.",)) -> None:
        super().__init__(service_prefixes)
        self._tracer = trace.get_tracer(INSTRUMENTATION_NAME)

    def wrap(self, handler: Handler, method: str, details: grpc.HandlerCallDetails) -> Any:
        behavior = behavior_of(handler)
        if behavior is None:
            return handler  # an async generator: grpc.aio decides by function type, keep it
        return rebuilt(handler, self._traced(behavior, method))

    def _traced(self, behavior: Behavior, method: str) -> Behavior:
        tracer = self._tracer

        async def traced(request: Any, context: Context) -> Any:
            parent = propagate.extract(_carrier(context.invocation_metadata()))
            with tracer.start_as_current_span(
                method,
                context=parent,
                kind=SpanKind.SERVER,
                attributes={"rpc.system.name": "grpc", "rpc.method": method},
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                code = Code.UNKNOWN
                try:
                    result = await behavior(request, context)
                    code = context.code() or Code.OK
                    return result
                except grpc.aio.AbortError:
                    code = context.code() or Code.UNKNOWN
                    raise
                except asyncio.CancelledError:
                    # The caller hung up, or its deadline passed.
                    remaining = context.time_remaining()
                    expired = remaining is not None and remaining <= 0
                    code = Code.DEADLINE_EXCEEDED if expired else Code.CANCELLED
                    raise
                except Exception as error:
                    span.record_exception(error)  # grpc turns it into UNKNOWN
                    raise
                finally:
                    record_status(span, code, server=True)

        return traced


def record_status(span: trace.Span, code: grpc.StatusCode, *, server: bool) -> None:
    """rpc.response.status_code, and the span's error status where the conventions want one."""
    span.set_attribute("rpc.response.status_code", code.name)
    failed = code in _SERVER_ERRORS if server else code is not Code.OK
    if failed:
        span.set_attribute("error.type", code.name)
        span.set_status(Status(StatusCode.ERROR, code.name))


def outgoing_metadata(extra: Iterable[tuple[str, str]] = ()) -> tuple[tuple[str, str], ...]:
    """Metadata for an outgoing call: `extra` plus the current span's traceparent."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return (*extra, *carrier.items())


def _carrier(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """Text metadata as the propagator reads it (keys are lowercase on the wire)."""
    return {key: value for key, value in (metadata or ()) if isinstance(value, str)}
