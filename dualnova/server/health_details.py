"""dualnova.health.v1.HealthDetailsService: why each health name has its status.

grpc.health.v1 answers SERVING or NOT_SERVING with no room for a reason, so
both servers serve this beside it, read from the same HealthServicer: the
same names, the same statuses, plus the reason (the last probe's error, the
dependencies that are down) and when the status last changed. It is treated
as grpc.health.v1 is: open to every caller (the bearer-token check guards the
services' own methods only) and not traced.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from dualnova.health.v1 import health_pb2 as details_pb2
from dualnova.health.v1 import health_pb2_grpc as details_pb2_grpc
from dualnova.server.health_service import (
    LIST_LIMIT,
    NOT_SERVING,
    SERVING,
    HealthServicer,
    NameState,
)

__all__ = ["SERVICE_NAME", "HealthDetailsServicer", "add_health_details", "details_message"]

SERVICE_NAME = details_pb2.DESCRIPTOR.services_by_name["HealthDetailsService"].full_name
# grpc.health.v1 status -> ours (the same numbers, said explicitly).
_STATUSES = {
    SERVING: details_pb2.SERVING_STATUS_SERVING,
    NOT_SERVING: details_pb2.SERVING_STATUS_NOT_SERVING,
}


def details_message(state: NameState) -> details_pb2.HealthDetails:
    """One name's state as the RPC sends it."""
    change_time = Timestamp()
    change_time.FromNanoseconds(int(state.changed_at * 1e9))
    return details_pb2.HealthDetails(
        status=_STATUSES.get(state.status, details_pb2.SERVING_STATUS_UNSPECIFIED),
        reason=state.reason,
        change_time=change_time,
    )


class HealthDetailsServicer(details_pb2_grpc.HealthDetailsServiceServicer):
    """ListDetails over a HealthServicer's published state."""

    def __init__(self, health: HealthServicer) -> None:
        self._health = health

    async def ListDetails(  # noqa: N802 - the RPC's name
        self,
        request: details_pb2.ListDetailsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> details_pb2.ListDetailsResponse:
        states = self._health.details()
        if len(states) > LIST_LIMIT:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"more than {LIST_LIMIT} health names; Check them one by one",
            )
        return details_pb2.ListDetailsResponse(
            details={name: details_message(state) for name, state in states.items()}
        )


def add_health_details(health: HealthServicer, server: grpc.aio.Server) -> None:
    """Serve ListDetails for `health`'s names on `server`."""
    details_pb2_grpc.add_HealthDetailsServiceServicer_to_server(
        HealthDetailsServicer(health), server
    )
