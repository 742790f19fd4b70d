"""DualChat through a real gateway server in front of a scripted inference service.

Both are real grpc.aio servers on 127.0.0.1 in this process: the fake
InferenceService answers per model alias from a script (deltas, usage,
failures with a status after N deltas, hooks that hold a route back) and
records what it was asked and whether the call was cancelled. The gateway is
the one `python -m gateway` runs (gateway.server.start), pointed at the fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from dualnova.chat.v1 import chat_pb2
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from gateway import server
from gateway.backlog import MAX_MERGED_CHARS, MERGE_BACKLOG, Backlog
from gateway.config import Settings
from gateway.upstream import CONNECTIONS

Hook = Callable[[], Awaitable[None]]

MICRO_USAGE = chat_pb2.Usage(
    input_tokens=10,
    output_tokens=20,
    total_tokens=30,
    cache_read_input_tokens=1,
    cache_write_input_tokens=2,
)
PRO_USAGE = chat_pb2.Usage(
    input_tokens=11,
    output_tokens=40,
    total_tokens=51,
    cache_read_input_tokens=3,
    cache_write_input_tokens=4,
)


@dataclass
class Reply:
    """What the fake inference service streams for one model alias."""

    deltas: Sequence[str] = ("Hello", ", ", "world")
    usage: chat_pb2.Usage | None = None
    stop_reason: str = "end_turn"
    # Fail with this status once `fail_after` deltas were sent.
    fail: tuple[grpc.StatusCode, str] | None = None
    fail_after: int = 0
    # Awaited before the first delta / before usage and stop.
    before_first_delta: Hook | None = None
    before_stop: Hook | None = None
    # Awaited with the delta's index before each delta is sent.
    before_each_delta: Callable[[int], Awaitable[None]] | None = None
    # Never finish after the start event (for cancellation).
    hang: bool = False


@dataclass
class FakeInference(inference_pb2_grpc.InferenceServiceServicer):
    """A scripted InferenceService that records its calls."""

    replies: dict[str, Reply]
    requests: list[inference_pb2.ChatRequest] = field(default_factory=list)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    time_remaining: dict[str, float | None] = field(default_factory=dict)
    peers: set[str] = field(default_factory=set)  # the connections calls came on
    cancelled: dict[str, asyncio.Event] = field(default_factory=dict)
    finished: dict[str, asyncio.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for route in ("micro", "pro"):
            self.cancelled[route] = asyncio.Event()
            self.finished[route] = asyncio.Event()

    async def Chat(  # noqa: N802
        self, request: inference_pb2.ChatRequest, context: grpc.aio.ServicerContext
    ) -> None:
        model = request.model
        self.requests.append(request)
        self.metadata[model] = dict(context.invocation_metadata() or ())
        self.time_remaining[model] = context.time_remaining()
        self.peers.add(context.peer())
        reply = self.replies[model]
        try:
            await context.write(
                inference_pb2.ChatResponse(
                    start=chat_pb2.Start(model_id=f"fake-{model}", request_id=f"req-{model}")
                )
            )
            if reply.hang:
                await asyncio.Event().wait()
            for index, text in enumerate(reply.deltas):
                if reply.fail is not None and index == reply.fail_after:
                    await context.abort(*reply.fail)
                if index == 0 and reply.before_first_delta is not None:
                    await reply.before_first_delta()
                if reply.before_each_delta is not None:
                    await reply.before_each_delta(index)
                await context.write(inference_pb2.ChatResponse(delta=chat_pb2.Delta(text=text)))
            if reply.fail is not None:
                await context.abort(*reply.fail)
            if reply.before_stop is not None:
                await reply.before_stop()
            if reply.usage is not None:
                await context.write(inference_pb2.ChatResponse(usage=reply.usage))
            await context.write(
                inference_pb2.ChatResponse(
                    stop=chat_pb2.Stop(stop_reason=reply.stop_reason, latency_ms=12.5)
                )
            )
        except asyncio.CancelledError:
            self.cancelled[model].set()
            raise
        finally:
            self.finished[model].set()


@dataclass
class Harness:
    fake: FakeInference
    stub: gateway_pb2_grpc.GatewayStub
    gateway: server.RunningGateway


@contextlib.asynccontextmanager
async def running(
    micro: Reply | None = None, pro: Reply | None = None, *, inference_target: str | None = None
) -> AsyncIterator[Harness]:
    """A fake inference server, a gateway in front of it, and a client stub."""
    fake = FakeInference(
        {"micro": micro or Reply(usage=MICRO_USAGE), "pro": pro or Reply(usage=PRO_USAGE)}
    )
    upstream = grpc.aio.server()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(fake, upstream)
    port = upstream.add_insecure_port("127.0.0.1:0")
    await upstream.start()
    gateway = await server.start(
        Settings(
            listen="127.0.0.1:0",
            inference_target=inference_target or f"127.0.0.1:{port}",
        )
    )
    channel = grpc.aio.insecure_channel(gateway.address)
    try:
        yield Harness(fake, gateway_pb2_grpc.GatewayStub(channel), gateway)
    finally:
        await channel.close()
        await gateway.stop(0)
        await upstream.stop(None)


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run one async test body; the timeout only keeps a broken build from hanging."""

    async def bounded() -> None:
        await asyncio.wait_for(coroutine, timeout=15)

    asyncio.run(bounded())


def question(**fields: Any) -> gateway_pb2.DualChatRequest:
    return gateway_pb2.DualChatRequest(
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, text="What is DualNova?")], **fields
    )


async def collect(
    call: AsyncIterator[gateway_pb2.DualChatResponse],
    on_event: Callable[[gateway_pb2.DualChatResponse], None] | None = None,
) -> list[gateway_pb2.DualChatResponse]:
    events = []
    async for event in call:
        events.append(event)
        if on_event is not None:
            on_event(event)
    return events


def kinds(events: Sequence[gateway_pb2.DualChatResponse], route: str) -> list[str]:
    return [e.WhichOneof("event") for e in events if e.route == route]


def text_of(events: Sequence[gateway_pb2.DualChatResponse], route: str) -> str:
    return "".join(e.delta.text for e in events if e.route == route and e.HasField("delta"))


def index_of(
    events: Sequence[gateway_pb2.DualChatResponse], route: str, kind: str, nth: int = 0
) -> int:
    matches = [
        i for i, e in enumerate(events) if e.route == route and e.WhichOneof("event") == kind
    ]
    return matches[nth]


def when(event: asyncio.Event) -> Hook:
    async def wait() -> None:
        await event.wait()

    return wait


# --- ordering and tagging ----------------------------------------------------


def test_both_routes_tagged_then_one_summary_with_usage_per_route_and_total() -> None:
    async def body() -> None:
        async with running(
            Reply(deltas=("Micro ", "answer."), usage=MICRO_USAGE),
            Reply(deltas=("Pro ", "longer ", "answer."), usage=PRO_USAGE),
        ) as h:
            events = await collect(h.stub.DualChat(question()))

        assert kinds(events, "micro") == ["start", "delta", "delta", "usage", "stop"]
        assert kinds(events, "pro") == ["start", "delta", "delta", "delta", "usage", "stop"]
        assert text_of(events, "micro") == "Micro answer."
        assert text_of(events, "pro") == "Pro longer answer."
        assert events[index_of(events, "micro", "start")].start.model_id == "fake-micro"
        assert events[index_of(events, "pro", "stop")].stop.stop_reason == "end_turn"
        assert {e.route for e in events[:-1]} == {"micro", "pro"}

        last = events[-1]
        assert last.WhichOneof("event") == "summary" and last.route == ""
        assert sum(e.HasField("summary") for e in events) == 1
        summary = last.summary
        assert dict(summary.usage_by_route) == {"micro": MICRO_USAGE, "pro": PRO_USAGE}
        assert summary.total == chat_pb2.Usage(
            input_tokens=21,
            output_tokens=60,
            total_tokens=81,
            cache_read_input_tokens=4,
            cache_write_input_tokens=6,
        )

    run(body())


@pytest.mark.parametrize(
    "ordering", [gateway_pb2.ORDERING_INTERLEAVED, gateway_pb2.ORDERING_UNSPECIFIED]
)
def test_interleaved_sends_micro_live_while_pro_is_still_thinking(ordering: int) -> None:
    # Pro's first delta waits until the caller has seen Micro's first delta:
    # this only finishes if Micro's events reach the caller without waiting for Pro.
    async def body() -> None:
        micro_seen = asyncio.Event()
        async with running(
            Reply(usage=MICRO_USAGE),
            Reply(usage=PRO_USAGE, before_first_delta=when(micro_seen)),
        ) as h:

            def watch(event: gateway_pb2.DualChatResponse) -> None:
                if event.route == "micro" and event.HasField("delta"):
                    micro_seen.set()

            events = await collect(h.stub.DualChat(question(ordering=ordering)), watch)

        assert index_of(events, "micro", "delta") < index_of(events, "pro", "delta")
        assert text_of(events, "pro") == "Hello, world"

    run(body())


def test_interleaved_sends_pro_live_even_when_micro_is_slower() -> None:
    # Micro's stop waits until the caller has seen Pro's stop.
    async def body() -> None:
        pro_done = asyncio.Event()
        async with running(Reply(usage=MICRO_USAGE, before_stop=when(pro_done))) as h:

            def watch(event: gateway_pb2.DualChatResponse) -> None:
                if event.route == "pro" and event.HasField("stop"):
                    pro_done.set()

            request = question(ordering=gateway_pb2.ORDERING_INTERLEAVED)
            events = await collect(h.stub.DualChat(request), watch)

        assert index_of(events, "pro", "stop") < index_of(events, "micro", "stop")
        assert events[-1].HasField("summary")

    run(body())


def test_micro_first_holds_every_pro_event_until_micro_has_stopped() -> None:
    # Pro finishes upstream while Micro is still streaming; the caller must
    # still see nothing from Pro before Micro's stop, then all of Pro in order.
    async def body() -> None:
        async def after_pro_finished() -> None:
            await h.fake.finished["pro"].wait()
            await asyncio.sleep(0.2)  # let Pro's events reach the gateway first

        async with running(
            Reply(deltas=("m1", "m2"), usage=MICRO_USAGE, before_stop=after_pro_finished),
            Reply(deltas=("p1", "p2", "p3"), usage=PRO_USAGE),
        ) as h:
            request = question(ordering=gateway_pb2.ORDERING_MICRO_FIRST)
            events = await collect(h.stub.DualChat(request))

        micro_stop = index_of(events, "micro", "stop")
        assert all(e.route != "pro" for e in events[:micro_stop])
        assert [e.route for e in events[micro_stop + 1 : -1]] == ["pro"] * 6
        assert kinds(events, "pro") == ["start", "delta", "delta", "delta", "usage", "stop"]
        assert text_of(events, "pro") == "p1p2p3"
        assert events[-1].HasField("summary")

    run(body())


def test_micro_first_releases_pro_when_micro_fails() -> None:
    async def body() -> None:
        async with running(
            Reply(fail=(grpc.StatusCode.UNAVAILABLE, "bedrock unreachable"), fail_after=1)
        ) as h:
            request = question(ordering=gateway_pb2.ORDERING_MICRO_FIRST)
            events = await collect(h.stub.DualChat(request))

        micro_error = index_of(events, "micro", "error")
        assert all(e.route != "pro" for e in events[:micro_error])
        assert kinds(events, "pro") == ["start", "delta", "delta", "delta", "usage", "stop"]

    run(body())


# --- relaying deltas: merged only for a caller that is behind ----------------


def _pieces(route: str, count: int, width: int) -> tuple[str, ...]:
    """Distinct, numbered deltas, so a lost, doubled or reordered one changes the text."""
    return tuple(f"<{route}{index:05d}:{'x' * width}>" for index in range(count))


# No BDP probing: the caller's window stays at HTTP/2's 64 KiB, so it takes
# little before it stops the gateway's writes.
_SMALL_WINDOW = (("grpc.http2.bdp_probe", 0),)


def test_a_slow_caller_gets_merged_deltas_with_the_exact_text_and_first_deltas_alone() -> None:
    # About 1 MB per route while the caller does not read: the gateway's writes
    # wait for the caller, deltas pile up, and go out merged once it reads again.
    micro_pieces = _pieces("m", 4000, 240)
    pro_pieces = _pieces("p", 4000, 240)

    async def body() -> None:
        async with (
            running(
                Reply(deltas=micro_pieces, usage=MICRO_USAGE),
                Reply(deltas=pro_pieces, usage=PRO_USAGE),
            ) as h,
            grpc.aio.insecure_channel(h.gateway.address, options=_SMALL_WINDOW) as channel,
        ):
            call = gateway_pb2_grpc.GatewayStub(channel).DualChat(question())
            events = [await call.read()]
            await asyncio.wait_for(h.fake.finished["micro"].wait(), timeout=10)
            await asyncio.wait_for(h.fake.finished["pro"].wait(), timeout=10)
            await asyncio.sleep(0.2)  # the gateway has read both routes to the end
            while (event := await call.read()) is not grpc.aio.EOF:
                events.append(event)

        assert events[-1].HasField("summary")
        assert dict(events[-1].summary.usage_by_route) == {"micro": MICRO_USAGE, "pro": PRO_USAGE}
        for route, pieces in (("micro", micro_pieces), ("pro", pro_pieces)):
            deltas = [e.delta.text for e in events if e.route == route and e.HasField("delta")]
            assert "".join(deltas) == "".join(pieces)
            assert deltas[0] == pieces[0], "a route's first delta is its own message"
            assert len(deltas) < len(pieces) / 4, "a caller this far behind gets merged deltas"
            assert max(len(text) for text in deltas) < MAX_MERGED_CHARS + len(pieces[0])
            route_kinds = kinds(events, route)
            assert route_kinds == ["start", *["delta"] * len(deltas), "usage", "stop"]

    run(body())


def test_a_caller_that_keeps_up_gets_every_event_as_sent_and_in_order() -> None:
    # Each route sends its next delta only once the caller has read the previous
    # one, so nothing waits in the gateway: no merging, one message per delta.
    count = 40
    seen = {"micro": 0, "pro": 0}
    progress = asyncio.Condition()

    def gate(route: str) -> Callable[[int], Awaitable[None]]:
        async def wait(index: int) -> None:
            async with progress:
                await progress.wait_for(lambda: seen[route] >= index)

        return wait

    async def body() -> None:
        async with running(
            Reply(_pieces("m", count, 3), MICRO_USAGE, before_each_delta=gate("micro")),
            Reply(_pieces("p", count, 3), PRO_USAGE, before_each_delta=gate("pro")),
        ) as h:
            events = []
            async for event in h.stub.DualChat(question()):
                events.append(event)
                if event.HasField("delta"):
                    async with progress:
                        seen[event.route] += 1
                        progress.notify_all()

        for route, name in (("micro", "m"), ("pro", "p")):
            assert kinds(events, route) == ["start", *["delta"] * count, "usage", "stop"]
            deltas = [e.delta.text for e in events if e.route == route and e.HasField("delta")]
            assert deltas == list(_pieces(name, count, 3))
        assert events[-1].HasField("summary")

    run(body())


def _delta(route: str, text: str) -> gateway_pb2.DualChatResponse:
    return gateway_pb2.DualChatResponse(route=route, delta=chat_pb2.Delta(text=text))


def test_merging_never_crosses_a_non_delta_event_and_keeps_each_routes_order() -> None:
    backlog = Backlog()
    backlog.extend([_delta("micro", "m0"), _delta("pro", "p0")])
    behind = range(1, MERGE_BACKLOG * 2)
    backlog.extend(_delta("micro" if i % 2 else "pro", f"{i};") for i in behind)
    backlog.append(gateway_pb2.DualChatResponse(route="pro", usage=PRO_USAGE))
    backlog.extend([_delta("micro", "after-usage;"), _delta("micro", "last;")])

    sent = []
    while backlog:
        sent.append(backlog.pop())

    shape = [(e.route, e.WhichOneof("event"), e.delta.text) for e in sent]
    odd = "".join(f"{i};" for i in range(1, MERGE_BACKLOG * 2, 2))
    even = "".join(f"{i};" for i in range(2, MERGE_BACKLOG * 2, 2))
    assert shape == [
        ("micro", "delta", "m0"),  # first deltas alone, even with a backlog behind them
        ("pro", "delta", "p0"),
        ("micro", "delta", odd),  # merged up to pro's usage, overtaking pro's deltas
        ("pro", "delta", even),
        ("pro", "usage", ""),  # nothing moved past it
        ("micro", "delta", "after-usage;"),  # a short backlog again: sent as they came
        ("micro", "delta", "last;"),
    ]


# --- what reaches the inference service --------------------------------------


def test_route_defaults_when_the_request_sets_nothing() -> None:
    async def body() -> None:
        async with running() as h:
            await collect(h.stub.DualChat(question()))
        sent = {r.model: r for r in h.fake.requests}

        assert set(sent) == {"micro", "pro"}
        for route, max_tokens, temperature in (("micro", 1024, 0.3), ("pro", 2048, 0.5)):
            config = sent[route].inference_config
            assert config.max_tokens == max_tokens
            assert config.temperature == pytest.approx(temperature)
            assert not config.HasField("top_p")
            assert list(config.stop_sequences) == []
            assert [m.text for m in sent[route].messages] == ["What is DualNova?"]
            assert list(sent[route].system) == []

    run(body())


def test_request_settings_and_route_overrides_merge_field_by_field() -> None:
    async def body() -> None:
        request = gateway_pb2.DualChatRequest(
            messages=[
                chat_pb2.Message(role=chat_pb2.ROLE_USER, text="서울 날씨 어때?"),
                chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT, text="맑아요."),
                chat_pb2.Message(role=chat_pb2.ROLE_USER, text="And tomorrow?"),
            ],
            system=["You are a concise weather assistant."],
            inference_config=chat_pb2.InferenceConfig(top_p=0.9, stop_sequences=["###"]),
            micro=gateway_pb2.RouteOverride(
                system=["당신은 한국어로만 답하는 날씨 도우미입니다."],
                inference_config=chat_pb2.InferenceConfig(temperature=0.1),
            ),
            pro=gateway_pb2.RouteOverride(
                inference_config=chat_pb2.InferenceConfig(max_tokens=500, stop_sequences=["END"])
            ),
            cache_system=True,
        )
        async with running() as h:
            await collect(h.stub.DualChat(request))
        sent = {r.model: r for r in h.fake.requests}

        micro, pro = sent["micro"], sent["pro"]
        assert list(micro.system) == ["당신은 한국어로만 답하는 날씨 도우미입니다."]
        assert list(pro.system) == ["You are a concise weather assistant."]
        assert micro.inference_config.max_tokens == 1024  # route default
        assert micro.inference_config.temperature == pytest.approx(0.1)  # override
        assert micro.inference_config.top_p == pytest.approx(0.9)  # request
        assert list(micro.inference_config.stop_sequences) == ["###"]  # request
        assert pro.inference_config.max_tokens == 500  # override
        assert pro.inference_config.temperature == pytest.approx(0.5)  # route default
        assert pro.inference_config.top_p == pytest.approx(0.9)  # request
        assert list(pro.inference_config.stop_sequences) == ["END"]  # override replaces
        for chat in (micro, pro):
            assert chat.cache_system is True
            assert list(chat.messages) == list(request.messages)

    run(body())


def test_caller_deadline_and_trace_id_are_forwarded_upstream() -> None:
    async def body() -> None:
        async with running() as h:
            call = h.stub.DualChat(question(), timeout=30)
            events = await collect(call)
        trace_id = events[-1].summary.trace_id

        for route in ("micro", "pro"):
            remaining = h.fake.time_remaining[route]
            # gRPC rounds deadlines on the wire; "about 30 s" is the point, not the digits.
            assert remaining is not None and 0 < remaining < 31
            assert h.fake.metadata[route]["x-trace-id"] == trace_id

    run(body())


def test_calls_take_turns_over_several_upstream_connections() -> None:
    # One connection would put every call on one inference worker process.
    async def body() -> None:
        async with running() as h:
            for _ in range(CONNECTIONS):
                await collect(h.stub.DualChat(question()))

        assert CONNECTIONS > 1
        assert len(h.fake.peers) == CONNECTIONS, h.fake.peers

    run(body())


# --- failures ----------------------------------------------------------------


def test_one_route_failing_mid_stream_leaves_the_other_complete() -> None:
    async def body() -> None:
        async with running(
            Reply(deltas=("fine", " answer"), usage=MICRO_USAGE),
            Reply(
                usage=PRO_USAGE,
                fail=(grpc.StatusCode.RESOURCE_EXHAUSTED, "Too many requests, slow down"),
                fail_after=2,
            ),
        ) as h:
            events = await collect(h.stub.DualChat(question()))

        assert kinds(events, "pro") == ["start", "delta", "delta", "error"]
        error = events[index_of(events, "pro", "error")].error
        assert error.code == "RESOURCE_EXHAUSTED"
        assert error.message == "Too many requests, slow down"
        assert kinds(events, "micro") == ["start", "delta", "delta", "usage", "stop"]
        assert text_of(events, "micro") == "fine answer"
        summary = events[-1].summary
        assert dict(summary.usage_by_route) == {"micro": MICRO_USAGE}
        assert summary.total == MICRO_USAGE

    run(body())


def test_both_routes_failing_give_two_errors_and_an_empty_summary() -> None:
    async def body() -> None:
        async with running(
            Reply(fail=(grpc.StatusCode.UNAVAILABLE, "bedrock unreachable")),
            Reply(fail=(grpc.StatusCode.PERMISSION_DENIED, "no access to amazon.nova-pro-v1:0")),
        ) as h:
            events = await collect(h.stub.DualChat(question()))

        errors = {e.route: e.error for e in events if e.HasField("error")}
        assert errors["micro"].code == "UNAVAILABLE"
        assert errors["pro"].code == "PERMISSION_DENIED"
        assert errors["pro"].message == "no access to amazon.nova-pro-v1:0"
        assert events[-1].HasField("summary")
        assert len(events[-1].summary.usage_by_route) == 0
        assert events[-1].summary.total == chat_pb2.Usage()

    run(body())


def test_unreachable_inference_service_is_an_unavailable_error_on_each_route() -> None:
    async def body() -> None:
        async with running(inference_target="127.0.0.1:1") as h:
            events = await collect(h.stub.DualChat(question()))

        assert [(e.route, e.error.code) for e in events[:-1]] == [
            ("micro", "UNAVAILABLE"),
            ("pro", "UNAVAILABLE"),
        ] or [(e.route, e.error.code) for e in events[:-1]] == [
            ("pro", "UNAVAILABLE"),
            ("micro", "UNAVAILABLE"),
        ]
        assert events[-1].HasField("summary")

    run(body())


def _user(text: str) -> chat_pb2.Message:
    return chat_pb2.Message(role=chat_pb2.ROLE_USER, text=text)


def _assistant(text: str) -> chat_pb2.Message:
    return chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT, text=text)


@pytest.mark.parametrize(
    ("request_", "field_name"),
    [
        (gateway_pb2.DualChatRequest(), "messages"),
        (gateway_pb2.DualChatRequest(messages=[_assistant("hi")]), "messages[0].role"),
        (gateway_pb2.DualChatRequest(messages=[_user("a"), _user("b")]), "messages[1].role"),
        (gateway_pb2.DualChatRequest(messages=[_user("a"), _assistant("b")]), "messages[1].role"),
        (gateway_pb2.DualChatRequest(messages=[_user("  ")]), "messages[0].text"),
        (
            gateway_pb2.DualChatRequest(messages=[chat_pb2.Message(text="no role")]),
            "messages[0].role",
        ),
        (question(system=[""]), "system[0]"),
        (question(ordering=7), "ordering"),
        (
            question(inference_config=chat_pb2.InferenceConfig(max_tokens=0)),
            "inference_config.max_tokens",
        ),
        (
            question(inference_config=chat_pb2.InferenceConfig(stop_sequences=["a"] * 5)),
            "inference_config.stop_sequences",
        ),
        (
            question(
                micro=gateway_pb2.RouteOverride(
                    inference_config=chat_pb2.InferenceConfig(temperature=1.5)
                )
            ),
            "micro.inference_config.temperature",
        ),
        (
            question(
                pro=gateway_pb2.RouteOverride(inference_config=chat_pb2.InferenceConfig(top_p=-0.1))
            ),
            "pro.inference_config.top_p",
        ),
    ],
)
def test_invalid_request_is_refused_before_any_upstream_call(
    request_: gateway_pb2.DualChatRequest, field_name: str
) -> None:
    async def body() -> None:
        async with running() as h:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await collect(h.stub.DualChat(request_))

        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith(f"{field_name}: ")
        assert h.fake.requests == []

    run(body())


# --- cancellation and trace id -----------------------------------------------


def test_caller_cancelling_cancels_both_upstream_calls() -> None:
    async def body() -> None:
        async with running(Reply(hang=True), Reply(hang=True)) as h:
            call = h.stub.DualChat(question())
            started = set()
            async for event in call:
                started.add(event.route)
                if started == {"micro", "pro"}:
                    break
            call.cancel()

            # Each wait fails the test (TimeoutError) unless that upstream call is cancelled.
            await asyncio.wait_for(h.fake.cancelled["micro"].wait(), timeout=5)
            await asyncio.wait_for(h.fake.cancelled["pro"].wait(), timeout=5)

    run(body())


def test_trace_id_is_w3c_format_and_sent_first_as_metadata() -> None:
    async def body() -> None:
        async with running() as h:
            first = h.stub.DualChat(question())
            metadata = dict(await first.initial_metadata())
            first_events = await collect(first)
            second_events = await collect(h.stub.DualChat(question()))

        trace_id = first_events[-1].summary.trace_id
        assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
        assert trace_id != "0" * 32
        assert metadata["x-trace-id"] == trace_id
        assert second_events[-1].summary.trace_id != trace_id

    run(body())
