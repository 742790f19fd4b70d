"""What a failed call to the inference service tells the gateway's caller, in words.

gRPC reports a call its channel could not deliver (nothing listening, the
connection lost, no replica SERVING to client-side health checking) with the
same UNAVAILABLE an inference service sends when Bedrock is unavailable, and
its words ("connections to all backends failing; last error: ... Connection
refused") do not say which part is down. Route errors and the health
follower's reasons name the inference service and its address
(INFERENCE_TARGET as configured) instead, keeping gRPC's words after a colon
and the status code as it was. Statuses the inference service sent itself pass
through unchanged: it already says what failed on its side ("Bedrock is
unavailable", "cannot reach Bedrock", ...).
"""

from __future__ import annotations

import grpc

from dualnova.health.v1 import health_pb2 as details_pb2
from dualnova.health.v1 import health_pb2_grpc as details_pb2_grpc

__all__ = ["UNHEALTHY", "channel_failed", "route_failure_message", "unreachable", "upstream_reason"]

# How gRPC core words a failure of the channel itself (grpcio 1.85); none of the
# inference service's own messages starts like these.
_CHANNEL_FAILURES = (
    "failed to connect to all addresses",  # pick_first
    "connections to all backends failing",  # round_robin
    "Socket closed",
    "Stream removed",  # the connection dropped under a running call
    "Connection reset",
    "Broken pipe",
    "recvmsg:",
    "sendmsg:",
    "keepalive watchdog timeout",
    "GOAWAY received",
    "DNS resolution failed",
    "empty address list",
)
# The last error round_robin gives when every replica answered its health check NOT_SERVING.
UNHEALTHY = "backend unhealthy"


def channel_failed(error: grpc.aio.AioRpcError) -> bool:
    """Whether the call failed in the gateway's channel, not in the inference service."""
    return error.code() is grpc.StatusCode.UNAVAILABLE and (error.details() or "").startswith(
        _CHANNEL_FAILURES
    )


def unreachable(target: str, detail: str) -> str:
    return f"the inference service at {target} is unreachable: {detail}"


def route_failure_message(target: str, error: grpc.aio.AioRpcError) -> str:
    """The message of a route's error event for a failed upstream Chat call."""
    detail = error.details() or ""
    if not channel_failed(error):
        return detail
    if detail.endswith(UNHEALTHY):
        return (
            f"the inference service at {target} is not serving (no replica reports SERVING;"
            f" its health names say why): {detail}"
        )
    return unreachable(target, detail)


async def upstream_reason(channel: grpc.aio.Channel, name: str, timeout_s: float) -> str:
    """The inference service's own reason for `name` (dualnova.health.v1), "" when unknown.

    Best effort: an older inference service without ListDetails, or one that
    does not answer within `timeout_s`, leaves the reason to grpc.health.v1's
    status alone.
    """
    stub = details_pb2_grpc.HealthDetailsServiceStub(channel)
    try:
        response = await stub.ListDetails(details_pb2.ListDetailsRequest(), timeout=timeout_s)
    except grpc.aio.AioRpcError:
        return ""
    details = response.details.get(name)
    return "" if details is None else details.reason
