"""Wiring: the grpc.aio server with the Gateway, health and reflection services.

start() is what both `python -m gateway` and the tests use, so tests run the
same server the process does (on port 0 when they like).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.server import event_loop
from dualnova.server.auth import BearerAuth
from dualnova.server.callers import TokenSource, UpstreamToken, metadata_of, token_source
from dualnova.server.grpc_server import bind, common_server_options, new_server
from dualnova.server.shutdown import drain, stop_signals
from dualnova.server.tls_config import mode_of
from gateway.config import AUTH_TOKENS_FILE, LISTEN, UPSTREAM_TOKEN_FILE, Settings
from gateway.fanout import DualChat
from gateway.health import UPSTREAM_NAMES, GatewayHealth
from gateway.service import GatewayServicer
from gateway.upstream import Upstream

__all__ = ["RunningGateway", "serve", "server_options", "start"]

logger = logging.getLogger(__name__)

_SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name
# DualChats that may wait for the event loop to pick them up (see common_server_options):
# 2,000 at once measured zero CANCELLED with this, and hundreds with gRPC's 1,000.
PENDING_CALLS = 8192
# Clients may send keepalive pings this often while they have calls open.
_MIN_CLIENT_PING_INTERVAL_MS = 10_000


def server_options(settings: Settings, *, reuse_port: bool = False) -> list[tuple[str, int]]:
    """Server channel arguments: connection age cap, keepalive policy, and the common ones.

    The age cap makes clients reconnect and rebalance; see common_server_options
    for SO_REUSEPORT and the pending-call queue.
    """
    options = [
        ("grpc.http2.min_ping_interval_without_data_ms", _MIN_CLIENT_PING_INTERVAL_MS),
        *common_server_options(
            reuse_port=reuse_port,
            pending_calls=PENDING_CALLS,
            max_message_bytes=settings.max_message_bytes,
            max_connection_age=(
                settings.max_connection_age_s,
                settings.max_connection_age_grace_s,
            ),
        ),
    ]
    return options


@dataclass
class RunningGateway:
    """A started gateway server and what it owns; stop() releases all of it."""

    server: grpc.aio.Server
    upstream: Upstream
    health: GatewayHealth
    address: str
    port: int

    async def stop(
        self, grace: float, *, delay: float = 0.0, received: signal.Signals = signal.SIGINT
    ) -> None:
        """Drain (NOT_SERVING, `delay` on SIGTERM, then `grace`), then close the channel."""
        await drain(self.server, self.health.servicer, delay=delay, grace=grace, received=received)
        await self.upstream.close()


async def start(settings: Settings, *, reuse_port: bool = False) -> RunningGateway:
    """Build, bind and start the server; ConfigError when GATEWAY_LISTEN cannot be bound.

    `reuse_port` is for a worker among several on one port (dualnova.server.workers).
    """
    upstream_token = UpstreamToken(
        settings.upstream_token, settings.upstream_token_file, UPSTREAM_TOKEN_FILE.variable
    )
    upstream = Upstream(
        settings.inference_target,
        reconnect_max_s=settings.health_interval_s,
        credentials=metadata_of(upstream_token.token),
        tls=settings.inference_tls,
    )
    health = GatewayHealth()
    server = new_server(
        server_options(settings, reuse_port=reuse_port),
        health.servicer,
        (_SERVICE_NAME,),
        interceptors=[BearerAuth(_callers(settings), (_SERVICE_NAME,))],
        reflection_on=settings.reflection,
    )
    gateway_pb2_grpc.add_GatewayServicer_to_server(
        GatewayServicer(DualChat(upstream.stub, settings), settings), server
    )
    try:
        port = bind(server, settings.listen, LISTEN.variable, settings.tls)
    except BaseException:
        await upstream.close()
        raise
    await health.start()
    upstream.follow_health(UPSTREAM_NAMES, health.follow)
    await server.start()
    host = settings.listen.rpartition(":")[0]
    return RunningGateway(server, upstream, health, f"{host}:{port}", port)


def _callers(settings: Settings) -> TokenSource:
    """The tokens DualChat callers must present (none configured: no check)."""
    tokens = token_source(
        settings.auth_tokens, settings.auth_tokens_file, AUTH_TOKENS_FILE.variable
    )
    logger.info(
        "DualChat callers need a bearer token"
        if tokens.enabled
        else "DualChat is open to every caller (no GATEWAY_AUTH_TOKENS)"
    )
    return tokens


async def serve(
    settings: Settings,
    *,
    reuse_port: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then drain and return (the caller exits 0).

    `reuse_port`: see server_options. `on_ready` runs once the server accepts calls.
    """
    received = stop_signals()
    gateway = await start(settings, reuse_port=reuse_port)
    logger.info(
        f"gateway listening ({mode_of(settings.tls)}); inference service at"
        f" {settings.inference_target} ({gateway.upstream.mode})",
        extra={"address": gateway.address, "event_loop": event_loop.current()},
    )
    if on_ready is not None:
        on_ready()
    signal_received = await received
    logger.info(f"gateway stopping on {signal_received.name}", extra={"address": gateway.address})
    await gateway.stop(
        settings.shutdown_grace_s, delay=settings.shutdown_delay_s, received=signal_received
    )
    logger.info("gateway stopped", extra={"address": gateway.address})
