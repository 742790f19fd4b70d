"""DualChat's core: both routes at once, merged into one tagged stream, then a summary.

Each route is an asyncio task relaying its upstream Chat stream into one
queue; the merge reads the queue and decides when each event goes out
(interleaved: at once; micro-first: Pro's events wait until Micro's stream
ends), and deltas waiting for a slow caller go out merged (gateway.backlog).
A route's failure becomes that route's error event and never touches the
other route; when the inference service could not be reached, the event
says so in words (gateway.upstream_errors). Closing the event generator
(the caller hung up, the deadline passed) cancels both upstream calls, so
the inference service stops paying Bedrock for an answer nobody reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from dualnova.chat.v1 import chat_pb2
from dualnova.gateway.v1 import gateway_pb2
from dualnova.inference.v1 import inference_pb2
from dualnova.routes import MICRO, PRO
from gateway.backlog import Backlog
from gateway.config import Settings
from gateway.routes import ROUTES, build_chat_request
from gateway.tracing import TRACE_ID_METADATA_KEY, route_call
from gateway.upstream_errors import route_failure_message

__all__ = ["ChatStub", "DualChat", "route_error", "summarize"]

logger = logging.getLogger(__name__)

_USAGE_FIELDS = tuple(field.name for field in chat_pb2.Usage.DESCRIPTOR.fields)


@dataclass(frozen=True)
class _RouteEnded:
    """Queue marker: the route sends nothing more (finished, failed or cancelled)."""

    route: str


_QueueItem = gateway_pb2.DualChatResponse | _RouteEnded


class ChatStub(Protocol):
    """InferenceService/Chat as the generated stub has it (or gateway.upstream.ChatCallers)."""

    def Chat(  # noqa: N802 - the RPC's name
        self, request: inference_pb2.ChatRequest, **kwargs: Any
    ) -> grpc.aio.UnaryStreamCall[inference_pb2.ChatRequest, inference_pb2.ChatResponse]: ...


class DualChat:
    """Runs DualChat calls against one inference service stub; one instance per server."""

    def __init__(self, stub: ChatStub, settings: Settings) -> None:
        self._stub = stub
        self._settings = settings
        self._target = settings.inference_target

    async def events(
        self,
        request: gateway_pb2.DualChatRequest,
        *,
        trace_id: str,
        timeout: float | None = None,
    ) -> AsyncGenerator[gateway_pb2.DualChatResponse, None]:
        """The merged stream for a validated request, ending with the summary.

        `timeout` (seconds) is what is left of the caller's deadline; both
        upstream calls get it, so neither outlives the call it serves. Close
        the generator (contextlib.aclosing) to cancel both routes early.
        """
        # Unbounded: at most two answers' worth of deltas, already capped by
        # max_tokens, and micro-first must hold all of Pro's anyway.
        queue: asyncio.Queue[_QueueItem] = asyncio.Queue()
        metadata = ((TRACE_ID_METADATA_KEY, trace_id),)
        tasks = [
            asyncio.create_task(
                self._relay(
                    route,
                    build_chat_request(request, route, self._settings.route_defaults(route)),
                    queue,
                    timeout=timeout,
                    metadata=metadata,
                    trace_id=trace_id,
                ),
                name=f"dualchat-{route}",
            )
            for route in ROUTES
        ]
        order = _Order(micro_first=request.ordering == gateway_pb2.ORDERING_MICRO_FIRST)
        usage: dict[str, chat_pb2.Usage] = {}
        running = set(ROUTES)
        backlog = Backlog()

        def take(item: _QueueItem) -> None:
            if isinstance(item, _RouteEnded):
                running.discard(item.route)
                backlog.extend(order.route_ended(item.route))
                return
            if item.HasField("usage"):
                usage[item.route] = item.usage
            if order.holds(item):
                return
            backlog.append(item)

        try:
            while True:
                if not backlog:
                    if not running:
                        break
                    take(await queue.get())
                # Everything that arrived while the last message was written: the
                # backlog decides how much of it goes out in one message.
                while not queue.empty():
                    take(queue.get_nowait())
                if backlog:
                    yield backlog.pop()
            yield gateway_pb2.DualChatResponse(summary=summarize(usage, trace_id))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _relay(
        self,
        route: str,
        chat_request: inference_pb2.ChatRequest,
        queue: asyncio.Queue[_QueueItem],
        *,
        timeout: float | None,
        metadata: Sequence[tuple[str, str]],
        trace_id: str,
    ) -> None:
        """Copy one upstream Chat stream into the queue, tagged; end with _RouteEnded."""
        started = time.monotonic()
        log = {"trace_id": trace_id, "route": route, "model": chat_request.model}
        guardrail = (
            chat_request.guardrail_config if chat_request.HasField("guardrail_config") else None
        )
        with route_call(route, self._target, guardrail) as traced:
            call = self._stub.Chat(
                chat_request, timeout=timeout, metadata=traced.metadata(metadata)
            )
            usage: chat_pb2.Usage | None = None
            try:
                async for response in call:
                    event = _tag(route, response)
                    if event is None:
                        continue
                    if not event.HasField("delta"):
                        if event.HasField("usage"):
                            usage = event.usage
                        traced.observe(event)
                    queue.put_nowait(event)
                traced.ended(grpc.StatusCode.OK)
                logger.info(
                    "route finished",
                    extra={**log, **_usage_log(usage), "status": "OK", "latency_ms": _ms(started)},
                )
            except grpc.aio.AioRpcError as error:
                traced.ended(error.code())
                code = error.code().name
                # The code stays; a failure of the channel is told as the inference service's.
                message = route_failure_message(self._target, error)
                logger.warning(
                    "route failed",
                    extra={**log, "status": code, "error": message, "latency_ms": _ms(started)},
                )
                queue.put_nowait(route_error(route, code, message))
            except asyncio.CancelledError:
                call.cancel()
                traced.ended(grpc.StatusCode.CANCELLED)
                logger.info("route cancelled", extra={**log, "status": "CANCELLED"})
                raise
            # The route boundary: a bug here is logged and becomes this route's error;
            # the other route and the summary still go out.
            except Exception as error:  # noqa: BLE001
                traced.ended(grpc.StatusCode.INTERNAL)
                logger.exception("route relay broke", extra={**log, "status": "INTERNAL"})
                queue.put_nowait(route_error(route, "INTERNAL", f"gateway error: {error}"))
            finally:
                queue.put_nowait(_RouteEnded(route))


class _Order:
    """When each event may go out: at once, or (micro-first) Pro's after Micro's end."""

    def __init__(self, *, micro_first: bool) -> None:
        self._holding = micro_first
        self._held: list[gateway_pb2.DualChatResponse] = []

    def holds(self, event: gateway_pb2.DualChatResponse) -> bool:
        """True when `event` must wait (it is kept until route_ended releases it)."""
        if self._holding and event.route == PRO:
            self._held.append(event)
            return True
        return False

    def route_ended(self, route: str) -> list[gateway_pb2.DualChatResponse]:
        if route != MICRO or not self._holding:
            return []
        self._holding = False
        released, self._held = self._held, []
        return released


def route_error(route: str, code: str, message: str) -> gateway_pb2.DualChatResponse:
    """The event that says `route` failed with gRPC status `code` (its name)."""
    return gateway_pb2.DualChatResponse(
        route=route, error=gateway_pb2.RouteError(code=code, message=message)
    )


def summarize(usage_by_route: Mapping[str, chat_pb2.Usage], trace_id: str) -> gateway_pb2.Summary:
    """Usage per route that reported it, their field-wise total, and the trace id."""
    total = chat_pb2.Usage()
    for usage in usage_by_route.values():
        for name in _USAGE_FIELDS:
            setattr(total, name, getattr(total, name) + getattr(usage, name))
    summary = gateway_pb2.Summary(total=total, trace_id=trace_id)
    for route, usage in usage_by_route.items():
        summary.usage_by_route[route].CopyFrom(usage)
    return summary


def _tag(route: str, response: inference_pb2.ChatResponse) -> gateway_pb2.DualChatResponse | None:
    """The upstream event as a DualChat event of `route`; None for an empty event.

    Every kind is copied as sent (the two oneofs share their field names): text
    and tool-input deltas with their block index, tool-use starts, block stops,
    guardrail traces, and Stop with its typed reason and what Bedrock applied.
    """
    kind = response.WhichOneof("event")
    if kind is None:
        return None
    event = gateway_pb2.DualChatResponse(route=route)
    getattr(event, kind).CopyFrom(getattr(response, kind))
    return event


def _usage_log(usage: chat_pb2.Usage | None) -> dict[str, int]:
    if usage is None:
        return {}
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000.0, 1)
