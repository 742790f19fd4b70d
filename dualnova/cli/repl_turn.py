"""One turn of `dualnova repl`: a DualChatSession shown in `dualnova chat`'s views, as a Turn.

The turn runs over Gateway/DualChatSession so the person can stop one route
while the answers stream: with `keys` (the terminal's descriptor, in cbreak
mode), `m` sends stop_route micro and `p` stop_route pro (STOP_KEYS); that
route ends "(stopped)" and the other goes on.

The view (render.LiveView on a terminal, render.PlainView on a pipe) shows the
answers exactly as `dualnova chat` does. Cancelling the task that awaits
run_turn (Ctrl-C) cancels the call, so the gateway, the inference service and
Bedrock all stop working on it, the view marks the routes it cut off as
`dualnova chat` does, and no Turn comes back. A failed call is explained by
render.describe_call_error, the same words `dualnova chat` prints.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime

import grpc

from dualnova.chat.v1 import chat_pb2
from dualnova.cli.render import ChatState, View, describe_call_error
from dualnova.cli.repl_transcript import RouteAnswer, Turn
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.routes import ROUTES

__all__ = ["STOP_KEYS", "TurnFailed", "run_turn"]

# The key that stops each route while the answers stream.
STOP_KEYS = {route[0]: route for route in ROUTES}


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
    keys: int | None = None,
) -> Turn:
    """Send `request`, show its events on `view`, and return the turn both routes answered.

    `keys`: a descriptor read for STOP_KEYS while the answers stream (None: no keys).
    Raises TurnFailed when the call fails (no gateway, a refused request, a
    stream cut short); one route's error is part of the Turn, not a failure.
    """
    state = ChatState()
    stops: dict[str, chat_pb2.Stop] = {}
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    call = gateway_pb2_grpc.GatewayStub(channel).DualChatSession(metadata=metadata)
    view.start()
    stopper = _Stopper(call, state)
    loop = asyncio.get_running_loop()
    if keys is not None:
        loop.add_reader(keys, stopper.read, keys)
    try:
        await call.write(gateway_pb2.DualChatSessionRequest(start=request))
        initial = await call.initial_metadata()
        state.trace_id = dict(initial or ()).get("x-trace-id", "")
        async for response in call:
            event = response.event
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
        if keys is not None:
            loop.remove_reader(keys)
        view.stop(state)
    return _turn(request, state, stops, ordering, started_at, time.monotonic() - clock)


class _Stopper:
    """Turns a stop key into the session's stop_route for that route, once per route."""

    def __init__(
        self,
        call: grpc.aio.StreamStreamCall[
            gateway_pb2.DualChatSessionRequest, gateway_pb2.DualChatSessionResponse
        ],
        state: ChatState,
    ) -> None:
        self._call = call
        self._state = state
        self._sent: set[str] = set()
        self._writes: set[asyncio.Task[None]] = set()

    def read(self, descriptor: int) -> None:
        try:
            data = os.read(descriptor, 64)
        except OSError:
            data = b""
        if not data:
            # The terminal hung up: stop watching it, or the loop would spin on it.
            asyncio.get_running_loop().remove_reader(descriptor)
            return
        typed = data.decode("utf-8", "replace").lower()
        for key in typed:
            route = STOP_KEYS.get(key)
            if route is None or route in self._sent or self._state.routes[route].ended:
                continue  # other keys are ignored, as the prompt is not showing
            self._sent.add(route)
            task = asyncio.ensure_future(self._stop(route))
            self._writes.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._writes.discard)

    async def _stop(self, route: str) -> None:
        stop = gateway_pb2.StopRoute(route=route)
        try:
            await self._call.write(gateway_pb2.DualChatSessionRequest(stop_route=stop))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError):
            pass  # the session ended meanwhile: nothing left to stop


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
            stopped=seen.stopped,
            cost=state.cost(name),
        )
    return Turn(
        question=request.messages[-1].text,
        system=list(request.system),
        ordering=ordering,
        started_at=started_at,
        elapsed_ms=elapsed_s * 1000,
        routes=routes,
        total_usage=None if state.summary is None else state.summary.total,
        total_cost=state.cost("total"),
        trace_id=state.trace_id,
    )
