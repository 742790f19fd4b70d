"""DualChatSession: DualChat whose caller may stop one route mid-answer.

Through the session's three processes (emulator, inference service, gateway):
stopping Pro closes its Bedrock stream (the emulator logs the hang-up) while
Micro's answer arrives whole, as the emulator composed it; the messages a
session may send, each refused with INVALID_ARGUMENT when out of place; and
the limits, tokens and deadlines DualChat has, through the same fan-out. A
last test makes a route fail before its upstream call exists, which must end
that route (not hang the call until its deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from converse_support import MODELS
from gateway_client import ask, route_converse_request
from polling import wait_until
from telemetry_support import OtlpCollector, Pair

from bedrock_emulator.answers import Answer, compose_answer
from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from dualnova.server.callers import parse_entries
from gateway import server
from gateway.config import Settings
from gateway.fanout import DualChat

Event = gateway_pb2.DualChatResponse
QUESTION = "What does DualNova do?"


def expected(route: str) -> Answer:
    """What the emulator answers `route` for QUESTION with the gateway's defaults."""
    return compose_answer(MODELS[route], route_converse_request(route, QUESTION))


class Session:
    """One DualChatSession from a test thread: send messages any time, read events in order."""

    def __init__(self, call: Any, outbox: queue.Queue[gateway_pb2.DualChatSessionRequest | None]):
        self.call = call
        self._outbox = outbox

    def stop(self, route: str) -> None:
        self.send(gateway_pb2.DualChatSessionRequest(stop_route=gateway_pb2.StopRoute(route=route)))

    def send(self, message: gateway_pb2.DualChatSessionRequest) -> None:
        self._outbox.put(message)

    def half_close(self) -> None:
        self._outbox.put(None)

    def events(self) -> Iterator[Event]:
        for response in self.call:
            yield response.event


@contextlib.contextmanager
def session(
    address: str,
    first: gateway_pb2.DualChatSessionRequest | None,
    *,
    metadata: tuple[tuple[str, str], ...] = (),
    timeout: float = 30,
) -> Iterator[Session]:
    """A session whose first message is `first` (None: the caller half-closes at once)."""
    outbox: queue.Queue[gateway_pb2.DualChatSessionRequest | None] = queue.Queue()
    outbox.put(first)
    with grpc.insecure_channel(address) as channel:
        call = gateway_pb2_grpc.GatewayStub(channel).DualChatSession(
            iter(outbox.get, None), timeout=timeout, metadata=metadata
        )
        opened = Session(call, outbox)
        try:
            yield opened
        finally:
            opened.half_close()
            call.cancel()


def start(request: gateway_pb2.DualChatRequest) -> gateway_pb2.DualChatSessionRequest:
    return gateway_pb2.DualChatSessionRequest(start=request)


def kinds(events: list[Event], route: str) -> list[str]:
    return [kind for e in events if e.route == route and (kind := e.WhichOneof("event"))]


def text_of(events: list[Event], route: str) -> str:
    return "".join(e.delta.text for e in events if e.route == route and e.HasField("delta"))


def streams(emulator: EmulatorHandle) -> dict[str, dict[str, Any]]:
    entries = [e for e in emulator.requests() if e["operation"] == "ConverseStream"]
    return {route: e for route in MODELS for e in entries if e["model_id"] == MODELS[route]}


def refusal(address: str, *messages: gateway_pb2.DualChatSessionRequest) -> grpc.RpcError:
    """The status of a session that sends `messages` and reads to the end."""
    with grpc.insecure_channel(address) as channel:
        call = gateway_pb2_grpc.GatewayStub(channel).DualChatSession(iter(messages), timeout=20)
        with pytest.raises(grpc.RpcError) as raised:
            for _ in call:
                pass
    return raised.value


# --- stopping a route --------------------------------------------------------------


def test_stopping_pro_mid_answer_closes_only_its_bedrock_stream_and_micro_answers_whole(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    # Pro pauses between deltas, so it is mid-answer when the first one arrives.
    emulator.add_fault(kind="slow", model=MODELS["pro"], delay_ms=300)
    events: list[Event] = []
    stopped_at = 0.0
    with session(gateway.address, start(ask(QUESTION))) as opened:
        for event in opened.events():
            events.append(event)
            if event.route == "pro" and event.HasField("delta") and not stopped_at:
                stopped_at = time.time()
                opened.stop("pro")

    pro = kinds(events, "pro")
    assert pro[0] == "start" and pro[-1] == "route_stopped", pro
    assert "stop" not in pro and "usage" not in pro and "error" not in pro
    (ended,) = [e for e in events if e.HasField("route_stopped")]
    assert ended.route == "pro" and ended.route_stopped.reason == "stopped by caller"
    # Micro went on: its whole answer, exactly as the emulator composes it.
    micro_answer = expected("micro")
    assert text_of(events, "micro") == micro_answer.text
    assert kinds(events, "micro")[-2:] == ["usage", "stop"]
    assert events[-1].HasField("summary")
    summary = events[-1].summary
    assert set(summary.usage_by_route) == {"micro"}  # Pro never reported usage
    assert set(summary.cost_by_route) == {"micro"}

    logged = streams(emulator)
    assert logged["micro"]["completed"] and not logged["micro"]["disconnected"]
    assert logged["micro"]["response_text"] == micro_answer.text
    wait_until(lambda: streams(emulator)["pro"]["disconnected"], "pro's Bedrock stream to close")
    pro_entry = streams(emulator)["pro"]
    assert pro_entry["completed"] is False
    assert pro_entry["disconnected_at"] - stopped_at < 0.5
    assert expected("pro").text.startswith(text_of(events, "pro"))


def test_stopping_both_routes_still_ends_with_the_summary(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="slow", delay_ms=300, operations=["ConverseStream"])
    events: list[Event] = []
    with session(gateway.address, start(ask(QUESTION))) as opened:
        for event in opened.events():
            events.append(event)
            if event.HasField("start"):
                opened.stop(event.route)

    assert kinds(events, "micro")[-1] == kinds(events, "pro")[-1] == "route_stopped"
    assert events[-1].HasField("summary")
    assert dict(events[-1].summary.usage_by_route) == {}
    assert not events[-1].summary.HasField("total_cost")
    wait_until(
        lambda: all(entry["disconnected"] for entry in streams(emulator).values()),
        "both Bedrock streams to close",
    )


def test_stopping_a_route_that_has_answered_changes_nothing(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="slow", model=MODELS["pro"], delay_ms=20)
    events: list[Event] = []
    with session(gateway.address, start(ask(QUESTION))) as opened:
        for event in opened.events():
            events.append(event)
            if event.route == "micro" and event.HasField("stop"):
                opened.stop("micro")
                opened.stop("micro")

    assert "route_stopped" not in kinds(events, "micro") + kinds(events, "pro")
    assert text_of(events, "micro") == expected("micro").text
    assert text_of(events, "pro") == expected("pro").text
    assert set(events[-1].summary.usage_by_route) == {"micro", "pro"}


def test_a_session_half_closed_after_start_is_answered_in_full(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    with session(gateway.address, start(ask(QUESTION))) as opened:
        opened.half_close()
        events = list(opened.events())
        metadata = dict(opened.call.initial_metadata())

    assert text_of(events, "micro") == expected("micro").text
    assert text_of(events, "pro") == expected("pro").text
    assert events[-1].summary.trace_id == metadata["x-trace-id"]


# --- what a session may send ---------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "says"),
    [
        ((), "start: the first message of a session must be start"),
        (
            (gateway_pb2.DualChatSessionRequest(stop_route=gateway_pb2.StopRoute(route="pro")),),
            "must be start (the DualChatRequest), got stop_route",
        ),
        ((gateway_pb2.DualChatSessionRequest(),), "got nothing"),
        ((start(gateway_pb2.DualChatRequest()),), "messages: must contain at least one message"),
    ],
    ids=["no message", "stop first", "empty first", "invalid start"],
)
def test_a_session_that_does_not_start_with_a_valid_request_is_refused(
    gateway: ServiceHandle,
    emulator: EmulatorHandle,
    messages: tuple[gateway_pb2.DualChatSessionRequest, ...],
    says: str,
) -> None:
    error = refusal(gateway.address, *messages)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in error.details()
    assert streams(emulator) == {}


@pytest.mark.parametrize(
    ("later", "says"),
    [
        (
            gateway_pb2.DualChatSessionRequest(stop_route=gateway_pb2.StopRoute(route="nano")),
            """stop_route.route: must be "micro" or "pro", got 'nano'""",
        ),
        (start(ask("again")), "start: only the first message of a session may be start"),
        (gateway_pb2.DualChatSessionRequest(), "message: empty; set start (first) or stop_route"),
    ],
    ids=["unknown route", "second start", "empty"],
)
def test_a_bad_later_message_ends_the_session_with_invalid_argument(
    gateway: ServiceHandle,
    emulator: EmulatorHandle,
    later: gateway_pb2.DualChatSessionRequest,
    says: str,
) -> None:
    emulator.add_fault(kind="slow", delay_ms=300, operations=["ConverseStream"])
    with session(gateway.address, start(ask(QUESTION))) as opened:
        with pytest.raises(grpc.RpcError) as raised:
            for event in opened.events():
                if event.HasField("start"):
                    opened.send(later)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == says
    # Nobody reads the answers any more: both Bedrock streams are closed.
    wait_until(
        lambda: all(entry["disconnected"] for entry in streams(emulator).values()),
        "both Bedrock streams to close",
    )


# --- what DualChat has: deadlines, limits, tokens, tracing ----------------------------


def test_the_callers_deadline_reaches_both_routes(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="hang", after_deltas=1, operations=["ConverseStream"])
    with session(gateway.address, start(ask(QUESTION)), timeout=2) as opened:
        with pytest.raises(grpc.RpcError) as raised:
            list(opened.events())
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(
        lambda: all(entry["disconnected"] for entry in streams(emulator).values()),
        "both hung Bedrock streams to be hung up on",
    )


def run(body: Any) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(body, timeout=20)

    asyncio.run(bounded())


def test_sessions_need_the_token_and_count_against_the_limits(
    inference: ServiceHandle, emulator: EmulatorHandle
) -> None:
    """One place in all: an open session holds it, so a DualChat beside it is refused."""
    emulator.add_fault(kind="slow", delay_ms=200, operations=["ConverseStream"])

    async def body() -> None:
        gateway = await server.start(
            Settings(
                listen="127.0.0.1:0",
                inference_target=inference.address,
                auth_tokens=parse_entries(["tester:s3ss10n-t0ken"], "GATEWAY_AUTH_TOKENS"),
                max_streams=1,
            )
        )
        auth = (("authorization", "Bearer s3ss10n-t0ken"),)
        try:
            async with grpc.aio.insecure_channel(gateway.address) as channel:
                stub = gateway_pb2_grpc.GatewayStub(channel)
                anonymous = stub.DualChatSession(iter([start(ask(QUESTION))]), timeout=10)
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    async for _ in anonymous:
                        pass
                assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED

                outbox: asyncio.Queue[gateway_pb2.DualChatSessionRequest] = asyncio.Queue()
                await outbox.put(start(ask(QUESTION)))

                async def messages() -> Any:
                    while True:
                        yield await outbox.get()

                held = stub.DualChatSession(messages(), timeout=10, metadata=auth)
                first = await held.read()
                assert first.event.route in ("micro", "pro")
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    async for _ in stub.DualChat(ask(QUESTION), timeout=10, metadata=auth):
                        pass
                assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "GATEWAY_MAX_STREAMS" in (refused.value.details() or "")
                await outbox.put(
                    gateway_pb2.DualChatSessionRequest(
                        stop_route=gateway_pb2.StopRoute(route="micro")
                    )
                )
                await outbox.put(
                    gateway_pb2.DualChatSessionRequest(
                        stop_route=gateway_pb2.StopRoute(route="pro")
                    )
                )
                rest = []
                while (response := await held.read()) is not grpc.aio.EOF:
                    rest.append(response.event)
                assert rest[-1].HasField("summary")
                # The place is free again (answered at the emulator's usual pace).
                emulator.clear_faults()
                answered = [
                    e async for e in stub.DualChat(ask(QUESTION), timeout=10, metadata=auth)
                ]
                assert answered[-1].HasField("summary")
        finally:
            await gateway.stop(0)

    run(body())


def test_a_stopped_routes_span_says_the_caller_stopped_it(
    exporting_pair: Pair, collector: OtlpCollector, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="slow", model=MODELS["pro"], delay_ms=300)
    events: list[Event] = []
    with session(exporting_pair.gateway.address, start(ask(QUESTION))) as opened:
        for event in opened.events():
            events.append(event)
            if event.route == "pro" and event.HasField("delta"):
                opened.stop("pro")
    trace_id = events[-1].summary.trace_id
    spans = collector.wait_for_trace(trace_id, 7)
    by_route = {
        s.attributes.get("dualnova.route"): s
        for s in spans
        if (s.service, s.kind) == ("gateway", "CLIENT")
    }
    pro, micro = by_route["pro"], by_route["micro"]
    assert pro.attributes["dualnova.route.stopped"] == "stopped by caller"
    assert pro.attributes["rpc.response.status_code"] == "CANCELLED"
    assert pro.status != "ERROR"  # the caller's choice, not a failure
    assert "dualnova.cost.usd" not in pro.attributes
    assert "dualnova.route.stopped" not in micro.attributes
    assert micro.attributes["rpc.response.status_code"] == "OK"
    (server_span,) = [s for s in spans if (s.service, s.kind) == ("gateway", "SERVER")]
    assert server_span.name.endswith("DualChatSession")


# --- the shared fan-out -------------------------------------------------------------


class MicroCannotCall:
    """The inference stub, except that opening micro's call fails (before any stream)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = inference_pb2_grpc.InferenceServiceStub(channel)

    def Chat(self, request: inference_pb2.ChatRequest, **kwargs: Any) -> Any:  # noqa: N802
        if request.model == "micro":
            raise RuntimeError("no channel for micro")
        return self._stub.Chat(request, **kwargs)

    def Retrieve(self, request: inference_pb2.RetrieveRequest, **kwargs: Any) -> Any:  # noqa: N802
        return self._stub.Retrieve(request, **kwargs)


def test_a_route_that_fails_before_its_call_opens_ends_as_that_routes_error(
    inference: ServiceHandle, emulator: EmulatorHandle
) -> None:
    async def body() -> None:
        async with grpc.aio.insecure_channel(inference.address) as channel:
            core = DualChat(MicroCannotCall(channel), Settings(inference_target=inference.address))
            events = [e async for e in core.events(ask(QUESTION), trace_id="ab" * 16, timeout=30)]
        micro = [e for e in events if e.route == "micro"]
        assert [e.WhichOneof("event") for e in micro] == ["error"]
        assert micro[0].error.code == "INTERNAL"
        assert "no channel for micro" in micro[0].error.message
        assert text_of(events, "pro") == expected("pro").text
        assert events[-1].HasField("summary")

    # Bounded well below the call's deadline: a route that never ends would hang to it.
    run(asyncio.wait_for(body(), timeout=10))
