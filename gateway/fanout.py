"""DualChat's core: both routes at once, merged into one tagged stream, then a summary.

DualChat and DualChatSession both run here (one DualChatRun per call). A
grounded request first retrieves once (InferenceService/Retrieve), streams
the retrieval event, and then gives both routes the same passages (a route
that skips grounding gets none); a failed Retrieve fails the whole call with
the inference service's status, before any route starts. Each route is an
asyncio task relaying its upstream Chat stream into one queue; the merge
reads the queue and decides when each event goes out (interleaved: at once;
micro-first: Pro's events wait until Micro's stream ends), and deltas
waiting for a slow caller go out merged (gateway.backlog). A route's failure
becomes that route's error event and never touches the other route; when
the inference service could not be reached, the event says so in words
(gateway.upstream_errors). A session may stop one route: its upstream call
is cancelled at once and it ends with a route_stopped event. Closing the
event generator (the caller hung up, the deadline passed) cancels both
upstream calls, so the inference service stops paying Bedrock for an answer
nobody reads. The summary has each route's usage and estimated cost
(dualnova.pricing, from the model id its start event named).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from dualnova import pricing
from dualnova.chat.v1 import chat_pb2
from dualnova.gateway.v1 import gateway_pb2
from dualnova.inference.v1 import inference_pb2
from dualnova.routes import MICRO, PRO
from gateway.backlog import Backlog
from gateway.config import Settings
from gateway.routes import ROUTES, build_chat_request
from gateway.tracing import TRACE_ID_METADATA_KEY, retrieve_call, route_call
from gateway.upstream_errors import route_failure_message
from gateway.validation import grounding_query

__all__ = [
    "STOPPED_BY_CALLER",
    "CallFailed",
    "DualChat",
    "DualChatRun",
    "InferenceStub",
    "route_error",
    "route_stopped",
    "summarize",
]

logger = logging.getLogger(__name__)

_USAGE_FIELDS = tuple(field.name for field in chat_pb2.Usage.DESCRIPTOR.fields)
# RouteStopped.reason (gateway.proto).
STOPPED_BY_CALLER = "stopped by caller"
# Where a status's details (RetryInfo, ...) travel; passed on with the status they belong to.
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class CallFailed(Exception):
    """The whole call fails with this status: a failed Retrieve, a bad session message."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        trailing_metadata: tuple[tuple[str, str | bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.trailing_metadata = trailing_metadata


@dataclass(frozen=True)
class _RouteEnded:
    """Queue marker: the route sends nothing more (finished, failed, stopped or cancelled)."""

    route: str


_QueueItem = gateway_pb2.DualChatResponse | _RouteEnded | CallFailed


class InferenceStub(Protocol):
    """InferenceService's Chat and Retrieve as the generated stub has them (or ChatCallers)."""

    def Chat(  # noqa: N802 - the RPC's name
        self, request: inference_pb2.ChatRequest, **kwargs: Any
    ) -> grpc.aio.UnaryStreamCall[inference_pb2.ChatRequest, inference_pb2.ChatResponse]: ...

    def Retrieve(  # noqa: N802 - the RPC's name
        self, request: inference_pb2.RetrieveRequest, **kwargs: Any
    ) -> grpc.aio.UnaryUnaryCall[inference_pb2.RetrieveRequest, inference_pb2.RetrieveResponse]: ...


class DualChat:
    """Runs DualChat calls against one inference service stub; one instance per server."""

    def __init__(self, stub: InferenceStub, settings: Settings) -> None:
        self.stub = stub
        self.settings = settings
        self.target = settings.inference_target

    def run(
        self,
        request: gateway_pb2.DualChatRequest,
        *,
        trace_id: str,
        timeout: float | None = None,
    ) -> DualChatRun:
        """One call of a validated request; `timeout` is what is left of the caller's deadline."""
        return DualChatRun(self, request, trace_id=trace_id, timeout=timeout)

    def events(
        self,
        request: gateway_pb2.DualChatRequest,
        *,
        trace_id: str,
        timeout: float | None = None,
    ) -> AsyncGenerator[gateway_pb2.DualChatResponse, None]:
        """The merged stream of a call no one will stop a route of (see DualChatRun.events)."""
        return self.run(request, trace_id=trace_id, timeout=timeout).events()


class DualChatRun:
    """One DualChat: its events, and stop() for a session's caller."""

    def __init__(
        self,
        core: DualChat,
        request: gateway_pb2.DualChatRequest,
        *,
        trace_id: str,
        timeout: float | None,
    ) -> None:
        self._core = core
        self._request = request
        self._trace_id = trace_id
        self._metadata = ((TRACE_ID_METADATA_KEY, trace_id),)
        # Each upstream call gets what is left of the caller's deadline when it starts.
        self._deadline = None if timeout is None else time.monotonic() + timeout
        # Unbounded: at most two answers' worth of deltas, already capped by
        # max_tokens, and micro-first must hold all of Pro's anyway.
        self._queue: asyncio.Queue[_QueueItem] = asyncio.Queue()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._retrieving: asyncio.Task[chat_pb2.Retrieval] | None = None
        self._stopped: set[str] = set()
        # Routes whose answer is complete (their stop event relayed): stopping one is a no-op.
        self._answered: set[str] = set()
        self._failure: CallFailed | None = None
        self._costs: dict[str, chat_pb2.Cost] = {}

    def stop(self, route: str) -> None:
        """Stop `route` (MICRO or PRO) now: its upstream call is cancelled, it ends with
        route_stopped. A route that has ended already, or is stopped, is left alone."""
        if route not in ROUTES:
            raise KeyError(route)
        if route in self._stopped or route in self._answered:
            return
        task = self._tasks.get(route)
        if task is not None and task.done():
            return
        self._stopped.add(route)
        if task is not None:
            task.cancel()
        # No task yet (Retrieve is running): the route is never started.

    def fail(self, failure: CallFailed) -> None:
        """End the call with `failure` (a bad session message): events() raises it."""
        if self._failure is not None:
            return
        self._failure = failure
        if self._retrieving is not None:
            self._retrieving.cancel()
        self._queue.put_nowait(failure)

    async def events(self) -> AsyncGenerator[gateway_pb2.DualChatResponse, None]:
        """The merged stream, ending with the summary; CallFailed ends the call instead.

        Close the generator (contextlib.aclosing) to cancel both routes early.
        """
        try:
            retrieval = None
            if self._request.HasField("grounding"):
                retrieval = await self._retrieved()
                yield gateway_pb2.DualChatResponse(retrieval=retrieval)
            self._start_routes(retrieval)
            async for event in self._merged():
                yield event
        finally:
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _retrieved(self) -> chat_pb2.Retrieval:
        self._retrieving = asyncio.create_task(self._retrieve(), name="dualchat-retrieve")
        try:
            return await self._retrieving
        except asyncio.CancelledError:
            # fail() cancelled the Retrieve; a cancellation of this call itself goes on.
            if self._failure is not None and not _being_cancelled():
                raise self._failure from None
            self._retrieving.cancel()
            raise
        finally:
            self._retrieving = None

    def _start_routes(self, retrieval: chat_pb2.Retrieval | None) -> None:
        settings = self._core.settings
        for route in ROUTES:
            if route in self._stopped:
                # Stopped while the passages were retrieved: it never calls upstream.
                self._queue.put_nowait(route_stopped(route))
                self._queue.put_nowait(_RouteEnded(route))
                continue
            chat_request = build_chat_request(
                self._request, route, settings.route_defaults(route), retrieval
            )
            task = asyncio.create_task(self._relay(route, chat_request), name=f"dualchat-{route}")
            # Whatever ends the task (even a cancellation before its first step, which
            # no try inside it sees), the merge hears that the route has ended: else it
            # would wait for the route until the deadline.
            task.add_done_callback(functools.partial(self._route_ended, route))
            self._tasks[route] = task

    def _route_ended(self, route: str, task: asyncio.Task[None]) -> None:
        if task.cancelled() and route in self._stopped:
            # Stopped before its relay began: nothing else says so.
            self._queue.put_nowait(route_stopped(route))
        self._queue.put_nowait(_RouteEnded(route))

    async def _merged(self) -> AsyncGenerator[gateway_pb2.DualChatResponse, None]:
        order = _Order(micro_first=self._request.ordering == gateway_pb2.ORDERING_MICRO_FIRST)
        usage: dict[str, chat_pb2.Usage] = {}
        running = set(ROUTES)
        backlog = Backlog()

        def take(item: _QueueItem) -> None:
            if isinstance(item, CallFailed):
                raise item
            if isinstance(item, _RouteEnded):
                running.discard(item.route)
                backlog.extend(order.route_ended(item.route))
                return
            if item.HasField("usage"):
                usage[item.route] = item.usage
            if order.holds(item):
                return
            backlog.append(item)

        while True:
            if not backlog:
                if not running:
                    break
                take(await self._queue.get())
            # Everything that arrived while the last message was written: the
            # backlog decides how much of it goes out in one message.
            while not self._queue.empty():
                take(self._queue.get_nowait())
            if backlog:
                yield backlog.pop()
        yield gateway_pb2.DualChatResponse(summary=summarize(usage, self._trace_id, self._costs))

    def _remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    async def _retrieve(self) -> chat_pb2.Retrieval:
        """The grounding's passages, retrieved once; CallFailed with the upstream status."""
        grounding = self._request.grounding
        target = self._core.target
        started = time.monotonic()
        log = {"trace_id": self._trace_id, "knowledge_base_id": grounding.knowledge_base_id}
        request = inference_pb2.RetrieveRequest(
            grounding=grounding, query=grounding_query(self._request)
        )
        with retrieve_call(target, grounding.knowledge_base_id) as traced:
            try:
                response = await self._core.stub.Retrieve(
                    request, timeout=self._remaining(), metadata=traced.metadata(self._metadata)
                )
            except grpc.aio.AioRpcError as error:
                traced.ended(error.code())
                message = route_failure_message(target, error)
                logger.warning(
                    "retrieve failed",
                    extra={
                        **log,
                        "status": error.code().name,
                        "error": message,
                        "latency_ms": _ms(started),
                    },
                )
                raise CallFailed(error.code(), message, _details_of(error, message)) from None
            except asyncio.CancelledError:
                traced.ended(grpc.StatusCode.CANCELLED)
                raise
            traced.ended(grpc.StatusCode.OK)
            traced.retrieved(response.retrieval)
        logger.info(
            "retrieved",
            extra={
                **log,
                "passages": len(response.retrieval.passages),
                "latency_ms": _ms(started),
            },
        )
        return response.retrieval

    async def _relay(self, route: str, chat_request: inference_pb2.ChatRequest) -> None:
        """One route's whole life: a failure anywhere in it is the route's error event."""
        try:
            await self._stream(route, chat_request)
        except asyncio.CancelledError:
            if route not in self._stopped:
                raise
            # Our own cancellation (stop()): the route ends here, the call goes on.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            self._queue.put_nowait(route_stopped(route))
        # The route boundary: a bug here is logged and becomes this route's error;
        # the other route and the summary still go out.
        except Exception as error:  # noqa: BLE001
            logger.exception(
                "route relay broke",
                extra={"trace_id": self._trace_id, "route": route, "status": "INTERNAL"},
            )
            self._queue.put_nowait(route_error(route, "INTERNAL", f"gateway error: {error}"))

    async def _stream(self, route: str, chat_request: inference_pb2.ChatRequest) -> None:
        """Copy one upstream Chat stream into the queue, tagged."""
        started = time.monotonic()
        log = {"trace_id": self._trace_id, "route": route, "model": chat_request.model}
        guardrail = (
            chat_request.guardrail_config if chat_request.HasField("guardrail_config") else None
        )
        with route_call(route, self._core.target, guardrail) as traced:
            call = self._core.stub.Chat(
                chat_request, timeout=self._remaining(), metadata=traced.metadata(self._metadata)
            )
            usage: chat_pb2.Usage | None = None
            model_id = ""
            try:
                async for response in call:
                    event = _tag(route, response)
                    if event is None:
                        continue
                    if not event.HasField("delta"):
                        kind = event.WhichOneof("event")
                        if kind == "start":
                            model_id = event.start.model_id
                        elif kind == "usage":
                            usage = event.usage
                            self._priced(route, model_id, usage, traced.cost)
                        elif kind == "stop":
                            self._answered.add(route)
                        traced.observe(event)
                    self._queue.put_nowait(event)
                traced.ended(grpc.StatusCode.OK)
                logger.info(
                    "route finished",
                    extra={**log, **_usage_log(usage), "status": "OK", "latency_ms": _ms(started)},
                )
            except grpc.aio.AioRpcError as error:
                traced.ended(error.code())
                code = error.code().name
                # The code stays; a failure of the channel is told as the inference service's.
                message = route_failure_message(self._core.target, error)
                logger.warning(
                    "route failed",
                    extra={**log, "status": code, "error": message, "latency_ms": _ms(started)},
                )
                self._queue.put_nowait(route_error(route, code, message))
            except asyncio.CancelledError:
                # Closes the upstream stream, so the inference service closes Bedrock's.
                call.cancel()
                if route in self._stopped:
                    traced.stopped(STOPPED_BY_CALLER)
                    logger.info(
                        "route stopped",
                        extra={
                            **log,
                            **_usage_log(usage),
                            "status": "CANCELLED",
                            "reason": STOPPED_BY_CALLER,
                            "latency_ms": _ms(started),
                        },
                    )
                else:
                    traced.ended(grpc.StatusCode.CANCELLED)
                    logger.info("route cancelled", extra={**log, "status": "CANCELLED"})
                raise

    def _priced(
        self,
        route: str,
        model_id: str,
        usage: chat_pb2.Usage,
        record: Callable[[chat_pb2.Cost], None],
    ) -> None:
        """The route's estimated cost from its usage, noted for the summary and its span."""
        cost = pricing.estimate(self._core.settings.prices, model_id, usage)
        if cost is None:
            return
        self._costs[route] = cost
        record(cost)


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


def route_stopped(route: str) -> gateway_pb2.DualChatResponse:
    """The last event of a route the caller stopped."""
    return gateway_pb2.DualChatResponse(
        route=route, route_stopped=gateway_pb2.RouteStopped(reason=STOPPED_BY_CALLER)
    )


def summarize(
    usage_by_route: Mapping[str, chat_pb2.Usage],
    trace_id: str,
    cost_by_route: Mapping[str, chat_pb2.Cost] | None = None,
) -> gateway_pb2.Summary:
    """Usage and cost per route that reported them, their field-wise totals, and the trace id.

    total_cost is set only when some route has a cost (a model with no price has none).
    """
    total = chat_pb2.Usage()
    for usage in usage_by_route.values():
        for name in _USAGE_FIELDS:
            setattr(total, name, getattr(total, name) + getattr(usage, name))
    summary = gateway_pb2.Summary(total=total, trace_id=trace_id)
    for route, usage in usage_by_route.items():
        summary.usage_by_route[route].CopyFrom(usage)
    if cost_by_route:
        for route, cost in cost_by_route.items():
            summary.cost_by_route[route].CopyFrom(cost)
        summary.total_cost.CopyFrom(pricing.add_costs(cost_by_route.values()))
    return summary


def _tag(route: str, response: inference_pb2.ChatResponse) -> gateway_pb2.DualChatResponse | None:
    """The upstream event as a DualChat event of `route`; None for an empty event.

    Every kind is copied as sent (the two oneofs share their field names): text
    and tool-input deltas with their block index, tool-use starts, block stops,
    guardrail traces, citations, and Stop with its typed reason and what Bedrock
    applied. A retrieval event never comes (the gateway sends the passages itself).
    """
    kind = response.WhichOneof("event")
    if kind is None or kind == "retrieval":
        return None
    event = gateway_pb2.DualChatResponse(route=route)
    getattr(event, kind).CopyFrom(getattr(response, kind))
    return event


def _details_of(error: grpc.aio.AioRpcError, message: str) -> tuple[tuple[str, str | bytes], ...]:
    """The status details (RetryInfo, ...) the inference service sent, when its message stands."""
    if message != (error.details() or ""):
        return ()
    return tuple(
        (key, value)
        for key, value in (error.trailing_metadata() or ())
        if key == _STATUS_DETAILS_KEY
    )


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


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
