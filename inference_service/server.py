"""Wiring: the gRPC server with Chat, health and reflection, until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dualnova import event_loop
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from dualnova.rpc_tracing import ServerTracing
from dualnova.server_options import common_server_options
from dualnova.shutdown import drain, stop_signals
from inference_service import cloudwatch
from inference_service.bedrock import BedrockRuntime
from inference_service.bedrock_probes import BedrockProbes
from inference_service.chat import ChatServicer
from inference_service.chat_telemetry import ChatTelemetry
from inference_service.config import Settings
from inference_service.health import InferenceHealth

logger = logging.getLogger(__name__)


_PENDING_HEADROOM = 1024


class ListenError(Exception):
    """The listen address cannot be bound; the message names it."""


async def serve(
    settings: Settings,
    runtime: BedrockRuntime,
    probes: BedrockProbes,
    *,
    reuse_port: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain (dualnova.shutdown) and return.

    `reuse_port` is for a worker among several on one port (dualnova.workers);
    otherwise a port that another server holds fails here, rather than being
    shared with it as gRPC's default SO_REUSEPORT would. `on_ready` runs once
    the server accepts calls.
    """
    received = stop_signals()
    health = InferenceHealth(settings, probes)
    publisher = _cloudwatch_publisher(settings, health)
    server = grpc.aio.server(
        options=common_server_options(
            reuse_port=reuse_port,
            # Every Chat the cap may admit, plus room for health checks and refusals.
            pending_calls=settings.max_streams + _PENDING_HEADROOM,
        ),
        interceptors=[ServerTracing()],
    )
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(
        ChatServicer(
            settings, runtime, outcomes=health.runtime, telemetry=ChatTelemetry(publisher)
        ),
        server,
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    reflection.enable_server_reflection(
        (
            inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    try:
        port = server.add_insecure_port(settings.listen)
    except RuntimeError:
        port = 0
    if port == 0:
        await probes.aclose()
        raise ListenError(
            f"INFERENCE_LISTEN={settings.listen!r}: cannot listen there"
            " (in use, or not an address of this machine)"
        )
    # Bound first (a taken port fails at once), probed next, so the first health
    # answer any client gets is a real one.
    await health.start()
    if publisher is not None:
        await publisher.start()
    await server.start()
    logger.info(
        "inference service listening",
        extra={"address": settings.listen, "event_loop": event_loop.current()},
    )
    if on_ready is not None:
        on_ready()

    signal_received = await received
    logger.info(f"inference service stopping on {signal_received.name}")
    await health.stop()
    await drain(
        server,
        health.servicer,
        delay=settings.shutdown_delay_s,
        grace=settings.shutdown_grace_s,
        received=signal_received,
    )
    await runtime.aclose()
    if publisher is not None:
        await publisher.stop()
    logger.info("inference service stopped")


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
