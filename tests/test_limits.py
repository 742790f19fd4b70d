"""Limits a caller can see: each refusal names its number and the variable that sets it.

Request size on both servers (through the session's real processes), the
gateway's turn and text limits, and the concurrent-DualChat caps (per caller
and in total) with the RetryInfo a client reads to know when to try again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import ServiceHandle
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from dualnova.server.callers import parse_entries
from gateway import admission, server
from gateway.config import Settings

USER = chat_pb2.ROLE_USER
ASSISTANT = chat_pb2.ROLE_ASSISTANT
MIB = 1024 * 1024


def turns(count: int, text: str = "hi") -> list[chat_pb2.Message]:
    """`count` alternating turns from the user (odd counts end with the user)."""
    return [
        chat_pb2.Message(role=USER if index % 2 == 0 else ASSISTANT, text=text)
        for index in range(count)
    ]


def refusal(address: str, request: gateway_pb2.DualChatRequest) -> grpc.RpcError:
    with grpc.insecure_channel(address) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            for _ in gateway_pb2_grpc.GatewayStub(channel).DualChat(request, timeout=30):
                pass
    return raised.value


def events(address: str, request: gateway_pb2.DualChatRequest) -> list[str]:
    with grpc.insecure_channel(address) as channel:
        return [
            f"{event.route}:{event.WhichOneof('event')}"
            for event in gateway_pb2_grpc.GatewayStub(channel).DualChat(request, timeout=30)
        ]


# Request size, through the real processes with their default limits.


def test_a_33_mib_dual_chat_is_refused_naming_the_limit_and_its_variable(
    gateway: ServiceHandle,
) -> None:
    request = gateway_pb2.DualChatRequest(messages=turns(1, "x" * (33 * MIB)))
    error = refusal(gateway.address, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"request: {request.ByteSize()} bytes")
    assert "more than the limit of 33554432 bytes (GATEWAY_MAX_MESSAGE_BYTES)" in error.details()


def test_five_documents_at_bedrocks_limit_are_answered_by_pro(gateway: ServiceHandle) -> None:
    # Bedrock takes five documents of up to 4.5 MB each: the default limits admit them all.
    document = chat_pb2.DocumentBlock(
        format=chat_pb2.DOCUMENT_FORMAT_TXT,
        name="notes",
        source=chat_pb2.MediaSource(bytes=b"x" * 4_500_000),
    )
    with_documents = chat_pb2.Message(
        role=USER,
        text="Summarize",
        content=[
            chat_pb2.ContentBlock(
                document=chat_pb2.DocumentBlock(
                    name=f"notes {n}", format=document.format, source=document.source
                )
            )
            for n in range(5)
        ],
    )
    request = gateway_pb2.DualChatRequest(
        messages=turns(1, "Summarize"), pro=gateway_pb2.RouteOverride(messages=[with_documents])
    )
    assert request.ByteSize() > 5 * 4_500_000
    seen = events(gateway.address, request)
    assert "micro:stop" in seen and "pro:stop" in seen and seen[-1] == ":summary"


def test_past_twice_the_limit_grpc_itself_cuts_the_request_off(gateway: ServiceHandle) -> None:
    request = gateway_pb2.DualChatRequest(messages=turns(1, "x" * (64 * MIB + 10)))
    error = refusal(gateway.address, request)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in error.details()


def test_a_chat_over_the_inference_limit_is_refused_naming_it(inference: ServiceHandle) -> None:
    request = inference_pb2.ChatRequest(model="micro", messages=turns(1, "x" * (65 * MIB)))
    with grpc.insecure_channel(inference.address) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            list(inference_pb2_grpc.InferenceServiceStub(channel).Chat(request, timeout=30))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "more than the limit of 67108864 bytes (INFERENCE_MAX_MESSAGE_BYTES)" in (
        raised.value.details()
    )


def test_a_request_just_under_the_gateway_limit_is_answered(gateway: ServiceHandle) -> None:
    # Under the byte limit and the text limit: both routes answer (the inference
    # service's own limit is above the gateway's, so the routes' requests pass too).
    request = gateway_pb2.DualChatRequest(messages=turns(1, "한" * 160_000))
    assert 400_000 < request.ByteSize() < Settings().max_message_bytes
    seen = events(gateway.address, request)
    assert "micro:stop" in seen and "pro:stop" in seen and seen[-1] == ":summary"


def test_the_gateways_upstream_channel_carries_what_the_inference_service_allows(
    inference: ServiceHandle,
) -> None:
    """A gateway allowed more than the inference service: the upstream hop adds no limit of
    its own (gRPC's client default would refuse messages over 4 MiB), so a 5 MB conversation
    is answered and a 65 MiB one is refused by the inference service, naming its variable."""

    async def body() -> None:
        gateway = await server.start(
            Settings(
                listen="127.0.0.1:0",
                inference_target=inference.address,
                max_message_bytes=80 * MIB,
                max_text_chars=80 * MIB,
            )
        )
        try:
            # The emulator's answer quotes the question, so answers are as large: this
            # client takes them, and so must both hops.
            async with grpc.aio.insecure_channel(
                gateway.address, options=[("grpc.max_receive_message_length", -1)]
            ) as channel:
                stub = gateway_pb2_grpc.GatewayStub(channel)
                for size, ending in ((5_000_000, "stop"), (65 * MIB, "error")):
                    request = gateway_pb2.DualChatRequest(messages=turns(1, "x" * size))
                    events = [event async for event in stub.DualChat(request, timeout=30)]
                    ends = {
                        e.route: e for e in events if e.WhichOneof("event") in ("stop", "error")
                    }
                    assert {e.WhichOneof("event") for e in ends.values()} == {ending}, size
                    if ending == "error":
                        assert {e.error.code for e in ends.values()} == {"INVALID_ARGUMENT"}
                        assert "(INFERENCE_MAX_MESSAGE_BYTES)" in ends["micro"].error.message
        finally:
            await gateway.stop(0)

    run(body())


# Turns and text at the gateway.


def test_too_many_messages_are_refused_naming_the_limit(gateway: ServiceHandle) -> None:
    error = refusal(gateway.address, gateway_pb2.DualChatRequest(messages=turns(1001)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "messages: 1001 messages, more than the limit of 1000 (GATEWAY_MAX_MESSAGES)"
    )


def test_the_most_messages_allowed_are_answered(gateway: ServiceHandle) -> None:
    seen = events(gateway.address, gateway_pb2.DualChatRequest(messages=turns(999)))
    assert "micro:stop" in seen and "pro:stop" in seen


@pytest.mark.parametrize(
    "request_fields",
    [
        {"messages": turns(1, "a" * 500_001)},
        {"messages": turns(3, "a" * 166_667)},
        {"messages": turns(1, "a" * 250_000), "system": ["b" * 250_001]},
        {
            "messages": turns(1, "a" * 200_000),
            "micro": gateway_pb2.RouteOverride(system=["b" * 150_000]),
            "pro": gateway_pb2.RouteOverride(system=["c" * 150_001]),
        },
    ],
    ids=["one message", "several messages", "with system", "with route overrides"],
)
def test_too_much_text_is_refused_naming_the_limit(
    gateway: ServiceHandle, request_fields: dict[str, object]
) -> None:
    error = refusal(gateway.address, gateway_pb2.DualChatRequest(**request_fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("request: 5000")
    assert error.details().endswith(
        "characters of text in messages and system prompts, more than the limit of 500000"
        " (GATEWAY_MAX_TEXT_CHARS)"
    )


def test_text_is_counted_in_characters_not_bytes(gateway: ServiceHandle) -> None:
    # 500,000 four-byte characters: 2 MB on the wire, exactly the text limit.
    error = refusal(gateway.address, gateway_pb2.DualChatRequest(messages=turns(1, "🙂" * 500_001)))
    assert "500001 characters" in error.details()


# Concurrent DualChats: a gateway in this process in front of an inference service that
# never finishes an answer, so the calls stay open as long as the test holds them.


class _Hanging(inference_pb2_grpc.InferenceServiceServicer):
    async def Chat(  # noqa: N802
        self, request: inference_pb2.ChatRequest, context: grpc.aio.ServicerContext
    ) -> None:
        await context.write(
            inference_pb2.ChatResponse(start=chat_pb2.Start(model_id=request.model))
        )
        await asyncio.Event().wait()


@contextlib.asynccontextmanager
async def capped_gateway(max_streams: int, per_caller: int, **more: Any) -> AsyncIterator[str]:
    upstream = grpc.aio.server()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(_Hanging(), upstream)
    port = upstream.add_insecure_port("127.0.0.1:0")
    await upstream.start()
    gateway = await server.start(
        Settings(
            listen="127.0.0.1:0",
            inference_target=f"127.0.0.1:{port}",
            max_streams=max_streams,
            max_streams_per_caller=per_caller,
            **more,
        )
    )
    try:
        yield gateway.address
    finally:
        await gateway.stop(0)
        await upstream.stop(None)


async def open_dual_chats(
    channel: grpc.aio.Channel, count: int, token: str | None = None
) -> list[grpc.aio.UnaryStreamCall[gateway_pb2.DualChatRequest, gateway_pb2.DualChatResponse]]:
    """`count` DualChats, each admitted (its first event read) before the next starts."""
    stub = gateway_pb2_grpc.GatewayStub(channel)
    calls = []
    for _ in range(count):
        call = stub.DualChat(
            gateway_pb2.DualChatRequest(messages=turns(1)), timeout=30, metadata=bearer(token)
        )
        await call.read()
        calls.append(call)
    return calls


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    return () if token is None else (("authorization", f"Bearer {token}"),)


def refused_by(address: str, token: str | None = None) -> grpc.RpcError:
    """One more DualChat from a blocking client (grpc_status reads its trailers)."""
    with grpc.insecure_channel(address) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            for _ in gateway_pb2_grpc.GatewayStub(channel).DualChat(
                gateway_pb2.DualChatRequest(messages=turns(1)), timeout=30, metadata=bearer(token)
            ):
                pass
    return raised.value


def retry_delay_s(error: grpc.RpcError) -> float:
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status in the trailers"
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert status.message == error.details()
    (detail,) = status.details
    info = error_details_pb2.RetryInfo()
    assert detail.Unpack(info), f"not a RetryInfo: {detail.type_url}"
    return info.retry_delay.ToNanoseconds() / 1e9


def run(body: object) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(body, timeout=20)  # type: ignore[arg-type]

    asyncio.run(bounded())


def test_past_the_per_caller_cap_a_dual_chat_is_refused_at_once_with_retry_info() -> None:
    async def body() -> None:
        async with capped_gateway(max_streams=10, per_caller=2) as address:
            async with grpc.aio.insecure_channel(address) as channel:
                calls = await open_dual_chats(channel, 2)
                error = await asyncio.to_thread(refused_by, address)
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert error.details() == (
                    "too many concurrent DualChats from this caller (limit 2,"
                    " GATEWAY_MAX_STREAMS_PER_CALLER); retry later"
                )
                assert retry_delay_s(error) == admission.RETRY_AFTER_S
                # The trace id still comes with the refusal, as with every DualChat.
                assert dict(error.trailing_metadata()).get("x-trace-id")
                # A call that ends gives its place back.
                calls.pop().cancel()
                await asyncio.sleep(0.2)
                calls += await open_dual_chats(channel, 1)
                for call in calls:
                    call.cancel()

    run(body())


def test_past_the_total_cap_a_dual_chat_is_refused_naming_it() -> None:
    async def body() -> None:
        async with capped_gateway(max_streams=2, per_caller=5) as address:
            async with grpc.aio.insecure_channel(address) as channel:
                calls = await open_dual_chats(channel, 2)
                error = await asyncio.to_thread(refused_by, address)
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "(limit 2, GATEWAY_MAX_STREAMS)" in error.details()
                assert retry_delay_s(error) == admission.RETRY_AFTER_S
                for call in calls:
                    call.cancel()

    run(body())


def test_with_tokens_each_token_name_is_a_caller_of_its_own() -> None:
    tokens = parse_entries(["alice:alice-secret", "bob:bob-secret"], "GATEWAY_AUTH_TOKENS")

    async def body() -> None:
        async with capped_gateway(max_streams=10, per_caller=1, auth_tokens=tokens) as address:
            async with grpc.aio.insecure_channel(address) as channel:
                calls = await open_dual_chats(channel, 1, "alice-secret")
                # Same address, another name: its own count.
                calls += await open_dual_chats(channel, 1, "bob-secret")
                error = await asyncio.to_thread(refused_by, address, "alice-secret")
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "GATEWAY_MAX_STREAMS_PER_CALLER" in error.details()
                assert retry_delay_s(error) == admission.RETRY_AFTER_S
                for call in calls:
                    call.cancel()

    run(body())


def test_an_invalid_request_is_refused_before_it_counts() -> None:
    async def body() -> None:
        async with capped_gateway(max_streams=1, per_caller=1) as address:
            async with grpc.aio.insecure_channel(address) as channel:
                calls = await open_dual_chats(channel, 1)
                error = await asyncio.to_thread(
                    refusal, address, gateway_pb2.DualChatRequest(messages=turns(2))
                )
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
                for call in calls:
                    call.cancel()

    run(body())


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:127.0.0.1:50123", "127.0.0.1"),
        ("ipv6:[::1]:50123", "[::1]"),
        ("unix:/tmp/gateway.sock", "unix:/tmp/gateway.sock"),
    ],
)
def test_without_tokens_a_caller_is_the_host_it_calls_from(peer: str, host: str) -> None:
    assert admission.peer_host(peer) == host


def test_the_count_is_per_caller_and_released() -> None:
    counts = admission.Admission(max_streams=3, max_per_caller=2)
    with counts.admit("a"), counts.admit("a"):
        with pytest.raises(admission.Refused, match="GATEWAY_MAX_STREAMS_PER_CALLER"):
            counts.admit("a")
        with counts.admit("b"):
            with pytest.raises(admission.Refused, match=r"\(limit 3, GATEWAY_MAX_STREAMS\)"):
                counts.admit("c")
        assert counts.running == 2 and counts.running_for("b") == 0
    assert counts.running == 0 and counts.running_for("a") == 0
