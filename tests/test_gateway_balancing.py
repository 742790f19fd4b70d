"""Spreading load: over inference replicas (round robin), and over gateway replicas (max age)."""

from __future__ import annotations

import asyncio

import grpc

from dualnova.chat.v1 import chat_pb2
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from gateway import server
from gateway.config import Settings


class Replica(inference_pb2_grpc.InferenceServiceServicer):
    """An inference replica that answers at once and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def Chat(  # noqa: N802
        self, request: inference_pb2.ChatRequest, context: grpc.aio.ServicerContext
    ) -> None:
        self.calls += 1
        await context.write(inference_pb2.ChatResponse(delta=chat_pb2.Delta(text="ok")))
        await context.write(inference_pb2.ChatResponse(stop=chat_pb2.Stop(stop_reason="end_turn")))


def test_calls_spread_round_robin_over_all_replicas_of_one_target() -> None:
    async def body() -> None:
        replicas = [Replica(), Replica(), Replica()]
        servers, ports = [], []
        for replica in replicas:
            replica_server = grpc.aio.server()
            inference_pb2_grpc.add_InferenceServiceServicer_to_server(replica, replica_server)
            ports.append(replica_server.add_insecure_port("127.0.0.1:0"))
            await replica_server.start()
            servers.append(replica_server)
        # One target naming three addresses, as DNS would for three replicas.
        target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)
        gateway = await server.start(Settings(listen="127.0.0.1:0", inference_target=target))
        request = gateway_pb2.DualChatRequest(
            messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, text="hi")]
        )
        try:
            async with grpc.aio.insecure_channel(gateway.address) as channel:
                stub = gateway_pb2_grpc.GatewayStub(channel)
                for _ in range(6):
                    events = [event async for event in stub.DualChat(request)]
                    assert not any(event.HasField("error") for event in events)
        finally:
            await gateway.stop(0)
            for replica_server in servers:
                await replica_server.stop(None)

        # 12 upstream calls; pick_first would have sent all of them to one replica.
        assert sum(replica.calls for replica in replicas) == 12
        assert all(replica.calls > 0 for replica in replicas)

    asyncio.run(asyncio.wait_for(body(), timeout=15))


async def _long_dual_chat(
    max_connection_age_s: float, grace_s: float, hold_s: float
) -> list[list[str | None] | grpc.aio.AioRpcError]:
    """One DualChat whose pro route holds `hold_s` before stopping, on a gateway with a max age."""

    class SlowPro(Replica):
        async def Chat(  # noqa: N802
            self, request: inference_pb2.ChatRequest, context: grpc.aio.ServicerContext
        ) -> None:
            if request.model == "pro":
                await asyncio.sleep(hold_s)
            await super().Chat(request, context)

    replica_server = grpc.aio.server()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(SlowPro(), replica_server)
    port = replica_server.add_insecure_port("127.0.0.1:0")
    await replica_server.start()
    gateway = await server.start(
        Settings(
            listen="127.0.0.1:0",
            inference_target=f"127.0.0.1:{port}",
            max_connection_age_s=max_connection_age_s,
            max_connection_age_grace_s=grace_s,
        )
    )
    request = gateway_pb2.DualChatRequest(
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, text="hi")]
    )
    outcomes: list[list[str | None] | grpc.aio.AioRpcError] = []
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayStub(channel)
            for _ in range(2):
                try:
                    events = [event async for event in stub.DualChat(request)]
                    outcomes.append([event.WhichOneof("event") for event in events])
                except grpc.aio.AioRpcError as error:
                    outcomes.append(error)
    finally:
        await gateway.stop(0)
        await replica_server.stop(0)
    return outcomes


def test_a_stream_outliving_the_connection_age_finishes_within_the_grace() -> None:
    # The connection is retired after 0.3 s; the 1 s stream on it still completes,
    # and the next call goes out on a new connection.
    outcomes = asyncio.run(asyncio.wait_for(_long_dual_chat(0.3, 10.0, 1.0), timeout=15))

    for kinds in outcomes:
        assert isinstance(kinds, list), kinds
        assert kinds[-1] == "summary" and "error" not in kinds


def test_the_connection_age_is_enforced_once_the_grace_is_over() -> None:
    # Same age, 0.2 s of grace: a stream that would take 5 s is cut, which shows the
    # server really caps connection age (clients then reconnect and rebalance).
    outcomes = asyncio.run(asyncio.wait_for(_long_dual_chat(0.3, 0.2, 5.0), timeout=30))

    error = outcomes[0]
    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "max connection age" in (error.details() or "")
