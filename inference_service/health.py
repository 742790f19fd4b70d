"""The standard grpc.health.v1 service for the inference service.

For now every name answers SERVING while the server runs. Probes per
dependency (bedrock-runtime, bedrock, model/micro, model/pro) come later and
will set their own names here; a probe must never run paid inference.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVICE_NAME = "dualnova.inference.v1.InferenceService"
# The empty name is the whole server: what a Kubernetes readiness probe asks for.
SERVER = ""


async def setup(server: grpc.aio.Server) -> health.aio.HealthServicer:
    """Add the health service to the server with the server and Chat marked SERVING."""
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for name in (SERVER, SERVICE_NAME):
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return servicer
