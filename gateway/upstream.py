"""The gateway's one connection to the inference service.

One long-lived grpc.aio channel serves every DualChat: HTTP/2 multiplexes the
streams, so a channel per call would only add handshakes. With a resolver
target (dns:///inference:50051) the channel sees every replica's address and
the round_robin policy spreads calls over them one by one; the inference
servers' max connection age makes the channel re-resolve, so new replicas
join the rotation.

The health follower lives here too: one Watch stream per inference health
name the gateway depends on ("", model/micro, model/pro) on the same channel,
re-opened with jittered exponential backoff (capped at the health interval)
after the stream breaks or the server ends it while draining. While a stream
is down its name counts as NOT_SERVING. The channel's own reconnect backoff is
capped at the same interval (gRPC's default grows to two minutes), so both
calls and health recover soon after the inference service is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dualnova.settings import DEFAULT_INTERVAL_S
from dualnova.inference.v1 import inference_pb2_grpc

__all__ = [
    "SERVICE_CONFIG",
    "Backoff",
    "HealthFollower",
    "Upstream",
    "channel_options",
]

logger = logging.getLogger(__name__)

# round_robin per call instead of the default pick_first (which pins every call
# of this process to one replica). Set both ways: the service config is the
# documented mechanism, the channel arg makes it win over a config a DNS TXT
# record might carry.
SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})

# Keepalive pings detect a replica that vanished without closing the connection
# (a lost node) while a stream waits for tokens. Only during calls, and no more
# often than every 5 minutes: by default a gRPC server counts quicker pings on
# a quiet connection as abuse and sends GOAWAY after two. Lower this together
# with the inference server's grpc.http2.min_ping_interval_without_data_ms.
KEEPALIVE_TIME_MS = 300_000
KEEPALIVE_TIMEOUT_MS = 20_000


# First wait before re-opening a broken health stream; it grows to the health interval.
FIRST_RETRY_S = 0.1


def channel_options(reconnect_max_s: float = DEFAULT_INTERVAL_S) -> list[tuple[str, object]]:
    """Channel arguments of the upstream channel (round-robin, keepalive, reconnect backoff)."""
    reconnect_max_ms = max(1, int(reconnect_max_s * 1000))
    return [
        ("grpc.service_config", SERVICE_CONFIG),
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", min(1000, reconnect_max_ms)),
        ("grpc.max_reconnect_backoff_ms", reconnect_max_ms),
    ]


class Backoff:
    """Exponential waits with +-20% jitter (gRPC's connection-backoff shape), capped."""

    def __init__(self, first_s: float, max_s: float, multiplier: float = 1.6) -> None:
        self._first_s = min(first_s, max_s)
        self._max_s = max_s
        self._multiplier = multiplier
        self._next_s = self._first_s

    def next(self) -> float:
        wait = self._next_s
        self._next_s = min(self._next_s * self._multiplier, self._max_s)
        return wait * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._next_s = self._first_s


# (every followed name -> SERVING?, why it changed) -> None
HealthListener = Callable[[Mapping[str, bool], str], Awaitable[None]]


class HealthFollower:
    """Follows some upstream health names with Watch streams; tells a listener each change."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        names: Iterable[str],
        listener: HealthListener,
        *,
        max_backoff_s: float,
    ) -> None:
        self._stub = health_pb2_grpc.HealthStub(channel)
        self._serving = dict.fromkeys(names, False)
        self._listener = listener
        self._max_backoff_s = max_backoff_s
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow(name), name=f"follow-health-{name or 'server'}")
            for name in self._serving
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _follow(self, name: str) -> None:
        backoff = Backoff(FIRST_RETRY_S, self._max_backoff_s)
        while True:
            call = self._stub.Watch(health_pb2.HealthCheckRequest(service=name))
            try:
                async for response in call:
                    backoff.reset()
                    serving = response.status == health_pb2.HealthCheckResponse.SERVING
                    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                    await self._update(
                        name, serving, f"the inference service reports {name!r} {status}"
                    )
                reason = "the inference service ended the health stream"
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.UNIMPLEMENTED:
                    # The health spec: do not retry. The names stay NOT_SERVING.
                    logger.error(
                        "the inference service does not implement grpc.health.v1 Watch;"
                        " its health is not followed",
                        extra={"error": error.details()},
                    )
                    await self._update(name, False, "inference service has no health Watch")
                    return
                reason = f"inference service unreachable ({error.code().name})"
            finally:
                call.cancel()
            await self._update(name, False, reason)
            await asyncio.sleep(backoff.next())

    async def _update(self, name: str, serving: bool, reason: str) -> None:
        if self._serving[name] == serving:
            return
        self._serving[name] = serving
        await self._listener(dict(self._serving), reason)


class Upstream:
    """The channel to the inference service, its stub, and its health follower.

    Create inside the running loop.
    """

    def __init__(self, target: str, *, reconnect_max_s: float = DEFAULT_INTERVAL_S) -> None:
        self.target = target
        self._reconnect_max_s = reconnect_max_s
        self.channel = grpc.aio.insecure_channel(target, options=channel_options(reconnect_max_s))
        self.stub = inference_pb2_grpc.InferenceServiceStub(self.channel)
        self._follower: HealthFollower | None = None

    def follow_health(self, names: Iterable[str], listener: HealthListener) -> None:
        """Start following `names` of the inference service's health; `listener` hears changes."""
        self._follower = HealthFollower(
            self.channel, names, listener, max_backoff_s=self._reconnect_max_s
        )
        self._follower.start()

    async def close(self, grace: float | None = None) -> None:
        """Stop following health, then close the channel (running calls get `grace` seconds)."""
        if self._follower is not None:
            await self._follower.stop()
            self._follower = None
        await self.channel.close(grace)
