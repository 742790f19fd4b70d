"""One turn of `dualnova repl`: a DualChat shown in `dualnova chat`'s views, read into a Turn.

The view (render.LiveView on a terminal, render.PlainView on a pipe) shows the
answers exactly as `dualnova chat` does. Cancelling the task that awaits
run_turn (Ctrl-C) cancels the call, so the gateway, the inference service and
Bedrock all stop working on it, the view marks the routes it cut off as
`dualnova chat` does, and no Turn comes back. A failed call is explained by
render.describe_call_error, the same words `dualnova chat` prints.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import grpc

from dualnova.chat.v1 import chat_pb2
from dualnova.cli.render import ChatState, View, describe_call_error
from dualnova.cli.repl_transcript import RouteAnswer, Turn
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.routes import ROUTES

__all__ = ["TurnFailed", "run_turn"]


class TurnFailed(Exception):
    """The DualChat call itself failed; str() is one line for the person."""


async def run_turn(
    channel: grpc.aio.Channel,
    request: gateway_pb2.DualChatRequest,
    view: View,
    *,
    target: str,
    ordering: str,
    metadata: tuple[tuple[str, str], ...] = (),
) -> Turn:
    """Send `request`, show its events on `view`, and return the turn both routes answered.

    Raises TurnFailed when the call fails (no gateway, a refused request, a
    stream cut short); one route's error is part of the Turn, not a failure.
    """
    state = ChatState()
    stops: dict[str, chat_pb2.Stop] = {}
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    call = gateway_pb2_grpc.GatewayStub(channel).DualChat(request, metadata=metadata)
    view.start()
    try:
        initial = await call.initial_metadata()
        state.trace_id = dict(initial or ()).get("x-trace-id", "")
        async for event in call:
            state.apply(event)
            if event.WhichOneof("event") == "stop":
                stops[event.route] = event.stop
            view.event(event, state)
    except asyncio.CancelledError:
        call.cancel()
        state.cut = "interrupted"
        raise
    except grpc.aio.AioRpcError as error:
        _, message = await describe_call_error(
            error, channel, target, state.events, metadata=metadata
        )
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            message += " (/clear starts a new conversation)"
        raise TurnFailed(message) from None
    finally:
        view.stop(state)
    return _turn(request, state, stops, ordering, started_at, time.monotonic() - clock)


def _turn(
    request: gateway_pb2.DualChatRequest,
    state: ChatState,
    stops: dict[str, chat_pb2.Stop],
    ordering: str,
    started_at: datetime,
    elapsed_s: float,
) -> Turn:
    routes = {}
    for name in ROUTES:
        seen = state.routes[name]
        stop = stops.get(name)
        routes[name] = RouteAnswer(
            model_id=seen.model_id,
            text=seen.text,
            stop_reason=seen.stop_reason,
            error_code=seen.error.code if seen.error is not None else "",
            error_message=seen.error.message if seen.error is not None else "",
            usage=seen.usage,
            time_to_first_token_ms=None if stop is None else stop.time_to_first_token_ms,
            latency_ms=None if stop is None else stop.latency_ms,
        )
    return Turn(
        question=request.messages[-1].text,
        system=list(request.system),
        ordering=ordering,
        started_at=started_at,
        elapsed_ms=elapsed_s * 1000,
        routes=routes,
        total_usage=None if state.summary is None else state.summary.total,
        trace_id=state.trace_id,
    )
