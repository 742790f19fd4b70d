"""The gateway's grpc.health.v1 service.

The servicer is the one both servers share (dualnova.health_service: List,
Watch streams that end at shutdown). For now the gateway reports only itself,
"" and its service name, SERVING while it runs; the dependency names
(inference, route/micro, route/pro) join here with the upstream health
follower.
"""

from __future__ import annotations

from dualnova.health_service import SERVER, SERVING, HealthServicer

__all__ = ["GATEWAY_SERVICE", "GatewayHealth"]

GATEWAY_SERVICE = "dualnova.gateway.v1.Gateway"


class GatewayHealth:
    """Owns the health servicer and the statuses the gateway reports."""

    def __init__(self) -> None:
        self.servicer = HealthServicer()

    async def start(self) -> None:
        """Report the whole server and the Gateway service as SERVING."""
        for name in (SERVER, GATEWAY_SERVICE):
            await self.servicer.set(name, SERVING)
