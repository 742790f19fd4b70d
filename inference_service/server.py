"""Wiring: the gRPC server with Chat, health and reflection, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

import grpc
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection

from inference_service import health
from inference_service.bedrock import BedrockRuntime
from inference_service.chat import ChatServicer
from inference_service.config import Settings

logger = logging.getLogger(__name__)


class ListenError(Exception):
    """The listen address cannot be bound; the message names it."""


async def serve(settings: Settings, runtime: BedrockRuntime) -> None:
    """Serve until SIGTERM or SIGINT, then let running streams finish within the grace period."""
    server = grpc.aio.server()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(
        ChatServicer(settings, runtime), server
    )
    health_servicer = await health.setup(server)
    reflection.enable_server_reflection(
        (
            inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    try:
        server.add_insecure_port(settings.listen)
    except RuntimeError as exc:
        raise ListenError(
            f"INFERENCE_LISTEN={settings.listen!r}: cannot listen there"
            " (in use, or not an address of this machine)"
        ) from exc
    await server.start()
    logger.info("inference service listening", extra={"address": settings.listen})

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()

    logger.info("inference service stopping")
    # Readiness probes see NOT_SERVING while running streams finish.
    await health_servicer.enter_graceful_shutdown()
    await server.stop(settings.shutdown_grace_s)
    runtime.close()
    logger.info("inference service stopped")
