"""The gateway's grpc.health.v1 names, derived from the inference service's own health.

- `inference`: the inference service is reachable and reports "" SERVING.
- `route/micro`, `route/pro`: `inference`, and the inference service reports
  that route's model (model/micro, model/pro) SERVING.
- "" and dualnova.gateway.v1.Gateway: at least one route is SERVING, because
  DualChat still answers (with an error event for the other route).

The states come from upstream.HealthFollower's Watch streams; nothing here
calls the inference service. The servicer is the one both servers share
(dualnova.server.health_service: List, Watch streams that end at shutdown,
each name's reason for dualnova.health.v1). A name's reason is the upstream
one it follows: the inference service unreachable (gRPC's words), or what it
reports and why (its own reason). Nothing is decided, or logged, before the
inference service's "" has answered or failed once; then each name's first
state is logged with its cause, like every change after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dualnova.server.health_service import SERVER, HealthServicer, StatusBoard
from gateway.routes import ROUTES

__all__ = [
    "GATEWAY_SERVICE",
    "INFERENCE",
    "ROUTE_NAMES",
    "UPSTREAM_NAMES",
    "GatewayHealth",
    "a_route_is_serving",
]

GATEWAY_SERVICE = "dualnova.gateway.v1.Gateway"
INFERENCE = "inference"
# Route -> the gateway's health name for it.
ROUTE_NAMES: Mapping[str, str] = {route: f"route/{route}" for route in ROUTES}
# Route -> the inference service's name for the model behind it (routes are its model aliases).
_UPSTREAM_MODELS: Mapping[str, str] = {route: f"model/{route}" for route in ROUTES}
# What the gateway follows on the inference service.
UPSTREAM_NAMES = (SERVER, *_UPSTREAM_MODELS.values())


def a_route_is_serving(states: Mapping[str, bool]) -> bool:
    """The gateway's rule: DualChat is useful while at least one route can answer."""
    return any(states[name] for name in ROUTE_NAMES.values())


@dataclass(frozen=True)
class _Heard:
    """The last thing the follower said of one upstream name."""

    serving: bool
    reason: str


class GatewayHealth:
    """Owns the health servicer and turns the upstream's statuses into the gateway's names."""

    def __init__(self) -> None:
        self.servicer = HealthServicer()
        self.board = StatusBoard(
            self.servicer,
            service_name=GATEWAY_SERVICE,
            dependencies=(INFERENCE, *ROUTE_NAMES.values()),
            overall=a_route_is_serving,
            initial_reason="the inference service has not answered its health Watch yet",
        )
        self._upstream: dict[str, _Heard] = {}

    async def start(self) -> None:
        """Publish every name: NOT_SERVING until the inference service says otherwise."""
        await self.board.publish()

    async def follow(self, name: str, serving: bool, reason: str) -> None:
        """upstream.HealthListener: a followed inference name's first state, or a change."""
        self._upstream[name] = _Heard(serving, reason)
        server = self._upstream.get(SERVER)
        if server is None:
            return  # whether the inference service can be used at all is not known yet
        await self.board.set(INFERENCE, server.serving, server.reason)
        for route, route_name in ROUTE_NAMES.items():
            model = self._upstream.get(_UPSTREAM_MODELS[route])
            if not server.serving:
                await self.board.set(route_name, False, server.reason)
            elif model is not None:
                await self.board.set(route_name, model.serving, model.reason)
