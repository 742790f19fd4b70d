"""The gateway's connections to the inference service.

A few long-lived grpc.aio channels serve every DualChat, each call on the
next channel in turn: HTTP/2 multiplexes the streams, so a channel per call
would only add handshakes, while more than one lets an inference service
that runs several worker processes on one port (the kernel hands each of
them whole connections) share the calls among them. With a resolver target
(dns:///inference:50051) each channel sees every replica's address and the
round_robin policy spreads calls over them one by one; the inference
servers' max connection age makes the channels re-resolve, so new replicas
join the rotation.

The health follower lives here too: one Watch stream per inference health
name the gateway depends on ("", model/micro, model/pro) on the first channel,
re-opened with jittered exponential backoff (capped at the health interval)
after the stream breaks or the server ends it while draining. While a stream
is down its name counts as NOT_SERVING. A stream that was SERVING and then
breaks or reports NOT_SERVING is first re-opened once at once: with several
replicas it lands on another one, so one replica's restart is not reported as
the inference service's outage. Each name's first state is reported too, and
every reason names the inference service and its address (gateway.upstream_errors):
unreachable in gRPC's words, or what it reports, with its own reason from
dualnova.health.v1 ListDetails. The channel's own reconnect backoff is
capped at the same interval (gRPC's default grows to two minutes), so both
calls and health recover soon after the inference service is back.

With INFERENCE_TLS_CA the channels speak TLS (and present the gateway's
certificate for mutual TLS), from files read once, when the gateway starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from dualnova.server.settings import DEFAULT_INTERVAL_S
from dualnova.server.tls import channel_credentials
from dualnova.server.tls_config import ClientTLS, mode_of
from gateway.upstream_errors import UNHEALTHY, channel_failed, unreachable, upstream_reason

__all__ = [
    "RETRY_POLICY",
    "SERVICE_CONFIG",
    "CONNECTIONS",
    "Backoff",
    "ChatCallers",
    "HealthFollower",
    "Upstream",
    "channel_options",
]

logger = logging.getLogger(__name__)

# round_robin per call instead of the default pick_first (which pins every call
# of this process to one replica). Set both ways: the service config is the
# documented mechanism, the channel arg makes it win over a config a DNS TXT
# record might carry.
#
# healthCheckConfig: each subchannel (one per replica) follows that replica's
# health name "" with a Watch of its own, and round_robin picks only replicas
# that report SERVING (one without a health service counts as healthy). A
# replica that gets SIGTERM reports NOT_SERVING at once and keeps serving for
# its shutdown delay, so new calls stop going to it before it refuses them.
#
# retryPolicy: a Chat (or Retrieve) that fails UNAVAILABLE before any response (the replica
# went away or refused it while closing, or the pick raced its NOT_SERVING) is
# tried again, on the next replica round_robin picks. gRPC never retries a call
# once a response message (or headers) arrived: a stream that broke mid-answer
# fails as it did, never replays tokens twice. The backoff is short: the point
# is the next replica, not waiting for this one.
RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": ""},
        "methodConfig": [
            {
                "name": [
                    {"service": "dualnova.inference.v1.InferenceService", "method": method}
                    for method in ("Chat", "Retrieve")
                ],
                "retryPolicy": RETRY_POLICY,
            }
        ],
    }
)

# Keepalive pings detect a replica that vanished without closing the connection
# (a lost node) while a stream waits for tokens. Only during calls, and no more
# often than every 5 minutes: by default a gRPC server counts quicker pings on
# a quiet connection as abuse and sends GOAWAY after two. Lower this together
# with the inference server's grpc.http2.min_ping_interval_without_data_ms.
KEEPALIVE_TIME_MS = 300_000
KEEPALIVE_TIMEOUT_MS = 20_000


# Connections to the inference service (channels). Several, so that calls
# spread over its worker processes when it runs more than one on its port.
CONNECTIONS = 4
# Without it, gRPC lets channels with the same target and arguments share
# subchannels, so they would share one connection.
_OWN_SUBCHANNELS = ("grpc.use_local_subchannel_pool", 1)


# First wait before re-opening a broken health stream; it grows to the health interval.
FIRST_RETRY_S = 0.1
# How long the follower waits for the inference service's reason (ListDetails) for a name.
_REASON_TIMEOUT_S = 2.0
# The channel the follower asks for reasons on: no client-side health checking, which
# refuses every call to a replica reporting NOT_SERVING, just when its reason is wanted.
_DETAILS_OPTIONS = [
    ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"pick_first": {}}]})),
    ("grpc.service_config_disable_resolution", 1),
]


def channel_options(reconnect_max_s: float = DEFAULT_INTERVAL_S) -> list[tuple[str, object]]:
    """Channel arguments of the upstream channel (round-robin, keepalive, reconnect backoff)."""
    reconnect_max_ms = max(1, int(reconnect_max_s * 1000))
    return [
        ("grpc.service_config", SERVICE_CONFIG),
        ("grpc.lb_policy_name", "round_robin"),
        # Retries are on by default in grpcio; said here so the retryPolicy above holds.
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", min(1000, reconnect_max_ms)),
        ("grpc.max_reconnect_backoff_ms", reconnect_max_ms),
        # No limit of the channel's own: the inference service's INFERENCE_MAX_MESSAGE_BYTES
        # decides, and its refusal (naming that setting) comes back as the route's error.
        ("grpc.max_send_message_length", -1),
        ("grpc.max_receive_message_length", -1),
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


# (followed name, SERVING?, why) -> None; told each name's first state, then each change
HealthListener = Callable[[str, bool, str], Awaitable[None]]


class HealthFollower:
    """Follows some upstream health names with Watch streams; tells a listener each change."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        names: Iterable[str],
        listener: HealthListener,
        *,
        max_backoff_s: float,
        target: str,
        details_channel: grpc.aio.Channel | None = None,
    ) -> None:
        # ListDetails goes to `details_channel` (one without client-side health checking).
        self._details_channel = details_channel or channel
        self._stub = health_pb2_grpc.HealthStub(channel)
        # None until the first answer (or failure): that one is reported too.
        self._serving: dict[str, bool | None] = dict.fromkeys(names)
        self._reasons: dict[str, str] = {}
        self._target = target
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
        # A loss seen while SERVING and not yet reported: it is looked at once more first.
        unconfirmed: str | None = None
        while True:
            call = self._stub.Watch(health_pb2.HealthCheckRequest(service=name))
            reason = ""
            try:
                async for response in call:
                    serving = response.status == health_pb2.HealthCheckResponse.SERVING
                    reason = await self._reported(name, response.status)
                    if not serving and self._serving[name] and unconfirmed is None:
                        break
                    unconfirmed = None
                    backoff.reset()
                    await self._update(name, serving, reason)
                else:
                    reason = (
                        f"the inference service at {self._target} ended the health stream"
                        " (it is shutting down)"
                    )
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.UNIMPLEMENTED:
                    # The health spec: do not retry. The names stay NOT_SERVING.
                    logger.error(
                        "the inference service does not implement grpc.health.v1 Watch;"
                        " its health is not followed",
                        extra={"error": error.details()},
                    )
                    await self._update(
                        name,
                        False,
                        f"the inference service at {self._target} has no grpc.health.v1 Watch",
                    )
                    return
                reason = await self._failed(name, error)
            finally:
                call.cancel()
            if self._serving[name] and unconfirmed is None:
                # SERVING until now, and the one replica this stream was on broke it or
                # reports NOT_SERVING (it is draining). Look again at once, on a fresh pick
                # that client-side health checking steers to a SERVING replica if any,
                # before reporting the loss: one replica of several restarting is no outage.
                unconfirmed = reason
                continue
            await self._update(name, False, unconfirmed or reason)
            unconfirmed = None
            await asyncio.sleep(backoff.next())

    async def _update(self, name: str, serving: bool, reason: str) -> None:
        if self._serving[name] == serving and self._reasons.get(name) == reason:
            return
        self._serving[name] = serving
        self._reasons[name] = reason
        await self._listener(name, serving, reason)

    async def _reported(self, name: str, status: int) -> str:
        """What the inference service says of `name`, with its own reason when not SERVING."""
        shown = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
        said = f"the inference service at {self._target} reports {name!r} {shown}"
        if status == health_pb2.HealthCheckResponse.SERVING:
            return said
        why = await upstream_reason(self._details_channel, name, _REASON_TIMEOUT_S)
        return f"{said}: {why}" if why else said

    async def _failed(self, name: str, error: grpc.aio.AioRpcError) -> str:
        if channel_failed(error) and (error.details() or "").endswith(UNHEALTHY):
            # Reachable, and every replica reports "" NOT_SERVING, so the channel lets
            # no call through, this Watch included.
            return await self._reported(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if channel_failed(error):
            return unreachable(self._target, error.details() or "")
        return (
            f"the health Watch on the inference service at {self._target} failed:"
            f" {error.code().name}: {error.details()}"
        )


class ChatCallers:
    """InferenceService/Chat and Retrieve spread over several channels, one call each in turn.

    All of a channel's calls share its one HTTP/2 connection (per replica),
    and a server process serves a connection alone. With several server
    processes on one port (INFERENCE_WORKERS, SO_REUSEPORT), the kernel
    spreads connections, not calls, over them: one connection would put every
    call on one worker. The kernel picks a worker per connection by a hash of
    its addresses, so a few more connections than workers spread better. Each
    channel here has a subchannel pool of its own, so it opens a connection
    of its own.
    """

    def __init__(
        self,
        channels: Sequence[grpc.aio.Channel],
        credentials: Callable[[], tuple[tuple[str, str], ...]] = tuple,
    ) -> None:
        self._stubs = [inference_pb2_grpc.InferenceServiceStub(channel) for channel in channels]
        self._turn = itertools.cycle(self._stubs)
        # The gateway's own token for the inference service (authorization), read per call
        # so that a rotated GATEWAY_UPSTREAM_TOKEN_FILE is sent from the next call on.
        self._credentials = credentials

    def Chat(  # noqa: N802 - the stub's method name
        self, request: inference_pb2.ChatRequest, **kwargs: Any
    ) -> grpc.aio.UnaryStreamCall[inference_pb2.ChatRequest, inference_pb2.ChatResponse]:
        return next(self._turn).Chat(request, **self._with_credentials(kwargs))

    def Retrieve(  # noqa: N802 - the stub's method name
        self, request: inference_pb2.RetrieveRequest, **kwargs: Any
    ) -> grpc.aio.UnaryUnaryCall[inference_pb2.RetrieveRequest, inference_pb2.RetrieveResponse]:
        return next(self._turn).Retrieve(request, **self._with_credentials(kwargs))

    def _with_credentials(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        credentials = self._credentials()
        if credentials:
            kwargs["metadata"] = (*(kwargs.get("metadata") or ()), *credentials)
        return kwargs


class Upstream:
    """The channels to the inference service, a stub over them, and the health follower.

    Create inside the running loop.
    """

    def __init__(
        self,
        target: str,
        *,
        reconnect_max_s: float = DEFAULT_INTERVAL_S,
        connections: int = CONNECTIONS,
        credentials: Callable[[], tuple[tuple[str, str], ...]] = tuple,
        tls: ClientTLS | None = None,
    ) -> None:
        # tls: the CA the inference service's certificate is checked against, and the
        # gateway's own certificate for mutual TLS; None for plaintext. A bad file raises
        # ConfigError naming its variable.
        self.target = target
        self.mode = mode_of(tls)
        self._reconnect_max_s = reconnect_max_s
        options = [*channel_options(reconnect_max_s), _OWN_SUBCHANNELS]
        channel_tls = None if tls is None else channel_credentials(tls)
        self.channels = [
            grpc.aio.insecure_channel(target, options=options)
            if channel_tls is None
            else grpc.aio.secure_channel(target, channel_tls, options=options)
            for _ in range(connections)
        ]
        # Health follows the first connection, as it did when there was only one.
        self.channel = self.channels[0]
        details_options = [*_DETAILS_OPTIONS, _OWN_SUBCHANNELS]
        self._details_channel = (
            grpc.aio.insecure_channel(target, options=details_options)
            if channel_tls is None
            else grpc.aio.secure_channel(target, channel_tls, options=details_options)
        )
        self.stub = ChatCallers(self.channels, credentials)
        self._follower: HealthFollower | None = None

    def follow_health(self, names: Iterable[str], listener: HealthListener) -> None:
        """Start following `names` of the inference service's health; `listener` hears changes."""
        self._follower = HealthFollower(
            self.channel,
            names,
            listener,
            max_backoff_s=self._reconnect_max_s,
            target=self.target,
            details_channel=self._details_channel,
        )
        self._follower.start()

    async def close(self, grace: float | None = None) -> None:
        """Stop following health, then close the channels (running calls get `grace` seconds)."""
        if self._follower is not None:
            await self._follower.stop()
            self._follower = None
        await asyncio.gather(
            *(channel.close(grace) for channel in (*self.channels, self._details_channel))
        )
