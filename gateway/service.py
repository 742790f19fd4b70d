"""The Gateway servicer: the RPC boundary of DualChat and DualChatSession.

Both RPCs are one path (serve): validation, admission, the trace id the
caller sees first (initial metadata x-trace-id), the caller's deadline handed
on to the upstream calls, and cancellation: the event generator is closed
whatever ends the call, which cancels both upstream calls. A session's first
message is its DualChatRequest; what the caller sends after it (stop_route)
is read beside the events and may stop one route.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from gateway.admission import Admission, Refused, caller_of
from gateway.config import Settings
from gateway.fanout import CallFailed, DualChat, DualChatRun
from gateway.routes import ROUTES
from gateway.tracing import TRACE_ID_METADATA_KEY, current_trace_id
from gateway.validation import InvalidRequest, validate_dual_chat

__all__ = ["GatewayServicer"]

logger = logging.getLogger(__name__)

_ROUTE_NAMES = " or ".join(f'"{route}"' for route in ROUTES)


class GatewayServicer(gateway_pb2_grpc.GatewayServicer):
    """dualnova.gateway.v1.Gateway over one DualChat core."""

    def __init__(self, dual_chat: DualChat, settings: Settings | None = None) -> None:
        self._dual_chat = dual_chat
        self._settings = settings or Settings()
        self._admission = Admission(
            self._settings.max_streams, self._settings.max_streams_per_caller
        )

    async def DualChat(  # noqa: N802 - the RPC's name
        self,
        request: gateway_pb2.DualChatRequest,
        context: grpc.aio.ServicerContext[
            gateway_pb2.DualChatRequest, gateway_pb2.DualChatResponse
        ],
    ) -> None:
        await self._serve(request, context, lambda event: event)

    async def DualChatSession(  # noqa: N802 - the RPC's name
        self,
        request_iterator: AsyncIterator[gateway_pb2.DualChatSessionRequest],
        context: grpc.aio.ServicerContext[
            gateway_pb2.DualChatSessionRequest, gateway_pb2.DualChatSessionResponse
        ],
    ) -> None:
        try:
            first = await anext(request_iterator)
        except StopAsyncIteration:
            first = gateway_pb2.DualChatSessionRequest()
        if first.WhichOneof("message") != "start":
            got = first.WhichOneof("message") or "nothing"
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"start: the first message of a session must be start (the DualChatRequest),"
                f" got {got}",
            )
        await self._serve(
            first.start,
            context,
            lambda event: gateway_pb2.DualChatSessionResponse(event=event),
            requests=request_iterator,
        )

    async def _serve(
        self,
        request: gateway_pb2.DualChatRequest,
        context: grpc.aio.ServicerContext[Any, Any],
        wrap: Callable[[gateway_pb2.DualChatResponse], Any],
        *,
        requests: AsyncIterator[gateway_pb2.DualChatSessionRequest] | None = None,
    ) -> None:
        """Validate, admit and run one DualChat; `requests`: a session's later messages."""
        trace_id = current_trace_id()
        trace_metadata = ((TRACE_ID_METADATA_KEY, trace_id),)
        try:
            validate_dual_chat(request, self._settings)
        except InvalidRequest as error:
            logger.info(
                "dual chat rejected",
                extra={"trace_id": trace_id, "status": "INVALID_ARGUMENT", "error": str(error)},
            )
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, str(error), trailing_metadata=trace_metadata
            )
        try:
            place = self._admission.admit(caller_of(context))
        except Refused as refused:
            logger.info(
                "dual chat refused",
                extra={"trace_id": trace_id, "status": "RESOURCE_EXHAUSTED", "error": str(refused)},
            )
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                str(refused),
                trailing_metadata=trace_metadata + refused.trailing_metadata(),
            )
        with place:
            await context.send_initial_metadata(trace_metadata)
            logger.info("dual chat started", extra={"trace_id": trace_id, "peer": context.peer()})
            run = self._dual_chat.run(request, trace_id=trace_id, timeout=context.time_remaining())
            follower = (
                None
                if requests is None
                else asyncio.create_task(_follow(requests, run, trace_id), name="dualchat-session")
            )
            events = run.events()
            try:
                async with contextlib.aclosing(events):
                    async for event in events:
                        await context.write(wrap(event))
            except CallFailed as failed:
                logger.info(
                    "dual chat failed",
                    extra={"trace_id": trace_id, "status": failed.code.name, "error": str(failed)},
                )
                await context.abort(
                    failed.code,
                    failed.message,
                    trailing_metadata=trace_metadata + failed.trailing_metadata,
                )
            finally:
                if follower is not None:
                    follower.cancel()
                    await asyncio.gather(follower, return_exceptions=True)
        logger.info("dual chat finished", extra={"trace_id": trace_id, "status": "OK"})


async def _follow(
    requests: AsyncIterator[gateway_pb2.DualChatSessionRequest], run: DualChatRun, trace_id: str
) -> None:
    """A session's messages after start: each stop_route stops its route; anything else
    ends the call with INVALID_ARGUMENT. The caller half-closing ends only this reading."""
    async for message in requests:
        kind = message.WhichOneof("message")
        if kind == "stop_route":
            route = message.stop_route.route
            if route in ROUTES:
                logger.info("route stop asked", extra={"trace_id": trace_id, "route": route})
                run.stop(route)
                continue
            reason = f"stop_route.route: must be {_ROUTE_NAMES}, got {route!r}"
        elif kind == "start":
            reason = "start: only the first message of a session may be start"
        else:
            reason = "message: empty; set start (first) or stop_route"
        run.fail(CallFailed(grpc.StatusCode.INVALID_ARGUMENT, reason))
        return
