"""What answered at a target that does not serve DualChat, in words a person can act on.

A server without the Gateway service answers DualChat with UNIMPLEMENTED
("Method not found!"), which says nothing about what was reached. The usual
mistake is `--gateway` pointed at the inference service's port, so that one is
named: it is recognised by its health name or, when reflection is on, by the
services it lists. Both probes are cheap, never run inference, and are only
tried after DualChat already failed.
"""

from __future__ import annotations

from typing import Any, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

__all__ = [
    "DEFAULT_GATEWAY",
    "GATEWAY_SERVICE",
    "INFERENCE_SERVICE",
    "describe_not_a_gateway",
    "served_services",
]

# Where `dualnova chat` looks for the gateway, and where GATEWAY_LISTEN puts it by default.
DEFAULT_GATEWAY = "127.0.0.1:50052"
GATEWAY_SERVICE = "dualnova.gateway.v1.Gateway"
INFERENCE_SERVICE = "dualnova.inference.v1.InferenceService"
PROBE_TIMEOUT_S = 2.0


async def served_services(
    channel: grpc.aio.Channel,
    metadata: tuple[tuple[str, str], ...] = (),
    timeout: float = PROBE_TIMEOUT_S,
) -> set[str]:
    """The service names the server admits to: by reflection, else the inference health name.

    Empty when it offers neither (reflection off and no such health name, or
    no health service at all).
    """
    names = await _reflected_services(channel, metadata, timeout)
    if names:
        return names
    if await _has_health_name(channel, INFERENCE_SERVICE, metadata, timeout):
        return {INFERENCE_SERVICE}
    return set()


async def describe_not_a_gateway(
    channel: grpc.aio.Channel,
    target: str,
    details: str,
    metadata: tuple[tuple[str, str], ...] = (),
) -> str:
    """One line for a target whose DualChat is UNIMPLEMENTED: what it is, and what to do."""
    names = await served_services(channel, metadata)
    if INFERENCE_SERVICE in names:
        return (
            f"{target} is the DualNova inference service ({INFERENCE_SERVICE}), not a gateway;"
            " `dualnova chat` and `dualnova repl` talk to the gateway, which listens on port"
            f" {_port(DEFAULT_GATEWAY)} by default: try --gateway {_gateway_beside(target)}"
            " (or set DUALNOVA_GATEWAY)"
        )
    served = sorted(name for name in names if not name.startswith("grpc."))
    what = f"; it serves {', '.join(served)}" if served else ""
    return (
        f"{target} answered but is not a DualNova gateway: it has no"
        f" {GATEWAY_SERVICE}/DualChat (UNIMPLEMENTED: {details}){what};"
        f" point --gateway (or DUALNOVA_GATEWAY) at the gateway (default {DEFAULT_GATEWAY})"
    )


async def _reflected_services(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], timeout: float
) -> set[str]:
    # The generated stub serves an aio channel too; its typeshed stub names the sync one only.
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(cast(grpc.Channel, channel))
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    call = stub.ServerReflectionInfo(iter([request]), timeout=timeout, metadata=metadata)
    try:
        async for response in call:
            return {service.name for service in response.list_services_response.service}
    except grpc.aio.AioRpcError:
        # Reflection off (UNIMPLEMENTED) or refused: the health probe decides.
        return set()
    return set()


async def _has_health_name(
    channel: grpc.aio.Channel,
    name: str,
    metadata: tuple[tuple[str, str], ...],
    timeout: float,
) -> bool:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        await stub.Check(
            health_pb2.HealthCheckRequest(service=name), timeout=timeout, metadata=metadata
        )
    except grpc.aio.AioRpcError:
        # NOT_FOUND: not that server; UNIMPLEMENTED: no health service at all.
        return False
    return True


def _port(address: str) -> str:
    return address.rsplit(":", 1)[1]


def _gateway_beside(target: str) -> str:
    """The default gateway port on the target's host (HOST:PORT targets), else the default."""
    host, sep, port = target.rpartition(":")
    if sep and host and port.isdigit() and "/" not in host:
        return f"{host}:{_port(DEFAULT_GATEWAY)}"
    return DEFAULT_GATEWAY
