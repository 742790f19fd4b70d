"""The Gateway servicer: the RPC boundary of DualChat.

Validation, the trace id the caller sees first (initial metadata x-trace-id),
the caller's deadline handed on to both routes, and cancellation: the event
generator is closed whatever ends the call, which cancels both upstream calls.
"""

from __future__ import annotations

import contextlib
import logging

import grpc

from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from gateway.admission import Admission, Refused, caller_of
from gateway.config import Settings
from gateway.fanout import DualChat
from gateway.tracing import TRACE_ID_METADATA_KEY, current_trace_id
from gateway.validation import InvalidRequest, validate_dual_chat

__all__ = ["GatewayServicer"]

logger = logging.getLogger(__name__)


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
            events = self._dual_chat.events(
                request, trace_id=trace_id, timeout=context.time_remaining()
            )
            async with contextlib.aclosing(events):
                async for event in events:
                    await context.write(event)
        logger.info("dual chat finished", extra={"trace_id": trace_id, "status": "OK"})
