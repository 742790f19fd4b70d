"""Wiring: the grpc.aio server with Chat and Retrieve, health and reflection.

start() is what `python -m inference_service` runs and what tests may run in
process (on port 0 when they like); serve() adds the signals and the drain.
The gateway's server.py has the same shape (dualnova.server.grpc_server builds both).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from dualnova.server import event_loop
from dualnova.server.auth import BearerAuth
from dualnova.server.callers import token_source
from dualnova.server.grpc_server import bind, common_server_options, new_server
from dualnova.server.shutdown import drain, stop_signals
from dualnova.server.tls_config import mode_of
from inference_service import cloudwatch
from inference_service.bedrock import BedrockProbes, BedrockRuntime, KnowledgeBases
from inference_service.chat import ChatServicer
from inference_service.chat_telemetry import ChatTelemetry
from inference_service.config import AUTH_TOKENS_FILE, LISTEN, Settings
from inference_service.health import InferenceHealth

logger = logging.getLogger(__name__)

__all__ = ["RunningInference", "serve", "start"]

# Chats the cap may admit, plus room for health checks and refusals, may wait for the
# event loop to pick them up (see dualnova.server.grpc_server.common_server_options).
_PENDING_HEADROOM = 1024
_SERVICE_NAME = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name


@dataclass
class RunningInference:
    """A started inference server and what it owns; stop() releases all of it."""

    server: grpc.aio.Server
    health: InferenceHealth
    runtime: BedrockRuntime
    publisher: cloudwatch.CloudWatchPublisher | None
    address: str
    port: int
    knowledge_bases: KnowledgeBases | None = None

    async def stop(
        self, grace: float, *, delay: float = 0.0, received: signal.Signals = signal.SIGINT
    ) -> None:
        """Stop probing, drain (server.shutdown), then close Bedrock's pool and CloudWatch."""
        await self.health.stop()
        await drain(self.server, self.health.servicer, delay=delay, grace=grace, received=received)
        await self.runtime.aclose()
        if self.knowledge_bases is not None:
            await self.knowledge_bases.aclose()
        if self.publisher is not None:
            await self.publisher.stop()


async def start(
    settings: Settings,
    runtime: BedrockRuntime,
    probes: BedrockProbes,
    *,
    knowledge_bases: KnowledgeBases | None = None,
    reuse_port: bool = False,
) -> RunningInference:
    """Build, bind, probe once and start; ConfigError when INFERENCE_LISTEN cannot be bound.

    `knowledge_bases` serves Retrieve and grounded Chat calls (None: they are refused).
    `reuse_port` is for a worker among several on one port (dualnova.server.workers).
    """
    health = InferenceHealth(settings, probes)
    publisher = _cloudwatch_publisher(settings, health)
    server = new_server(
        common_server_options(
            reuse_port=reuse_port,
            pending_calls=settings.max_streams + _PENDING_HEADROOM,
            max_message_bytes=settings.max_message_bytes,
            max_connection_age=(
                settings.max_connection_age_s,
                settings.max_connection_age_grace_s,
            ),
        ),
        health.servicer,
        (_SERVICE_NAME,),
        interceptors=[_chat_auth(settings)],
    )
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(
        ChatServicer(
            settings,
            runtime,
            outcomes=health.runtime,
            telemetry=ChatTelemetry(publisher, settings.prices),
            knowledge_bases=knowledge_bases,
        ),
        server,
    )
    try:
        port = bind(server, settings.listen, LISTEN.variable, settings.tls)
    except BaseException:
        await probes.aclose()
        raise
    # Bound first (a taken port fails at once), probed next, so the first health
    # answer any client gets is a real one.
    await health.start()
    if publisher is not None:
        await publisher.start()
    await server.start()
    host = settings.listen.rpartition(":")[0]
    return RunningInference(
        server, health, runtime, publisher, f"{host}:{port}", port, knowledge_bases
    )


async def serve(
    settings: Settings,
    runtime: BedrockRuntime,
    probes: BedrockProbes,
    *,
    knowledge_bases: KnowledgeBases | None = None,
    reuse_port: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then drain and return (the caller exits 0).

    `on_ready` runs once the server accepts calls.
    """
    received = stop_signals()
    running = await start(
        settings, runtime, probes, knowledge_bases=knowledge_bases, reuse_port=reuse_port
    )
    logger.info(
        f"inference service listening ({mode_of(settings.tls)})",
        extra={"address": running.address, "event_loop": event_loop.current()},
    )
    if on_ready is not None:
        on_ready()
    signal_received = await received
    logger.info(f"inference service stopping on {signal_received.name}")
    await running.stop(
        settings.shutdown_grace_s, delay=settings.shutdown_delay_s, received=signal_received
    )
    logger.info("inference service stopped")


# What a refused Chat or Retrieve caller is told (the guard covers every InferenceService
# method): it reaches a DualChat caller as its route's error when the
# gateway's token is wrong, so it names the gateway's setting, not the caller's token.
UPSTREAM_REFUSAL = (
    "this inference service takes Chat and Retrieve calls from the gateway only: the gateway"
    " sends one of"
    " INFERENCE_AUTH_TOKENS as GATEWAY_UPSTREAM_TOKEN (or presents a client certificate the"
    " service trusts)"
)


def _chat_auth(settings: Settings) -> BearerAuth:
    """Chat and Retrieve only with one of INFERENCE_AUTH_TOKENS when set; the caller named by the
    gateway."""
    tokens = token_source(
        settings.auth_tokens, settings.auth_tokens_file, AUTH_TOKENS_FILE.variable
    )
    logger.info(
        "Chat and Retrieve callers need a bearer token"
        if tokens.enabled
        else "Chat and Retrieve are open to every caller (no INFERENCE_AUTH_TOKENS)"
    )
    return BearerAuth(tokens, (_SERVICE_NAME,), relay_caller=True, refusal=UPSTREAM_REFUSAL)


def _cloudwatch_publisher(
    settings: Settings, health: InferenceHealth
) -> cloudwatch.CloudWatchPublisher | None:
    """Token metrics to CloudWatch when a namespace is set; its state is the `cloudwatch` name."""
    if settings.cloudwatch_namespace is None:
        return None
    on_state = health.add_optional(cloudwatch.HEALTH_NAME)
    return cloudwatch.CloudWatchPublisher(
        cloudwatch.build_client(settings.aws_region),
        settings.cloudwatch_namespace,
        interval_s=settings.cloudwatch_interval_s,
        max_queue=settings.cloudwatch_queue_size,
        on_state=on_state,
    )
