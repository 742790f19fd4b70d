"""Building a grpc.aio server the same way for both services: options, health, reflection, bind.

Each service's server.py says what it serves; how a server is made, which
channel arguments it gets, how health and reflection are added and how a bind
failure is reported are written here once.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dualnova.server.conversation import transport_message_limit
from dualnova.server.decoding import RequestDecoding
from dualnova.server.health_details import SERVICE_NAME as HEALTH_DETAILS_SERVICE
from dualnova.server.health_details import add_health_details
from dualnova.server.health_service import HealthServicer
from dualnova.server.rpc_tracing import ServerTracing
from dualnova.server.settings import ConfigError
from dualnova.server.tls import server_credentials
from dualnova.server.tls_config import ServerTLS

__all__ = ["bind", "common_server_options", "new_server"]

_HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


def common_server_options(
    *,
    reuse_port: bool,
    pending_calls: int,
    max_message_bytes: int | None = None,
    max_connection_age: tuple[float, float] | None = None,
) -> list[tuple[str, int]]:
    """SO_REUSEPORT only for workers sharing a port, and a pending-call queue sized to the load.

    gRPC's default SO_REUSEPORT (on) would let a second server share a taken
    port without a word; only a worker among several (dualnova.server.workers) wants it.

    grpc.aio picks up new calls one at a time from its event loop; until then
    a call waits in the server's pending queue, and past
    grpc.server.max_pending_requests (default 1,000; all past the hard limit,
    default 3,000) gRPC cancels new calls at random. A burst of 1,000 DualChats
    is 2,000 Chats arriving at the inference service within milliseconds, so
    the defaults ended hundreds of routes CANCELLED before any handler ran.
    A waiting call costs only memory; the services refuse what they cannot
    serve themselves (RESOURCE_EXHAUSTED), once the handler has run.

    `max_message_bytes` (the service's *_MAX_MESSAGE_BYTES) sets gRPC's receive and
    send limits to dualnova.server.conversation.transport_message_limit of it: the
    handler refuses what lies between with a message naming the setting.

    `max_connection_age` (seconds, grace seconds; the service's *_MAX_CONNECTION_AGE and
    its _GRACE) makes clients reconnect and rebalance; None or an age of 0: no cap.
    """
    options = [
        ("grpc.so_reuseport", int(reuse_port)),
        ("grpc.server.max_pending_requests", pending_calls),
        ("grpc.server.max_pending_requests_hard_limit", pending_calls),
    ]
    if max_message_bytes is not None:
        transport = transport_message_limit(max_message_bytes)
        options += [
            ("grpc.max_receive_message_length", transport),
            ("grpc.max_send_message_length", transport),
        ]
    if max_connection_age is not None and max_connection_age[0] > 0:
        age_s, grace_s = max_connection_age
        options += [
            ("grpc.max_connection_age_ms", int(age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(grace_s * 1000)),
        ]
    return options


def new_server(
    options: Sequence[tuple[str, int]],
    health: HealthServicer,
    service_names: Sequence[str],
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    reflection_on: bool = True,
) -> grpc.aio.Server:
    """A traced server with grpc.health.v1, dualnova.health.v1 and reflection.

    Only `service_names` are traced (health, its details and reflection are
    not: a span per probe); reflection lists them, both health services and itself.
    `interceptors` run inside the tracing one (so they see the call's span);
    `reflection_on` False leaves reflection out (its calls get UNIMPLEMENTED).
    """
    # RequestDecoding innermost: unparsable bytes are INVALID_ARGUMENT (not UNKNOWN) for
    # a caller the other interceptors let in.
    server = grpc.aio.server(
        options=list(options),
        interceptors=[ServerTracing(service_names), *interceptors, RequestDecoding()],
    )
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    add_health_details(health, server)
    if reflection_on:
        reflection.enable_server_reflection(
            (*service_names, _HEALTH_SERVICE, HEALTH_DETAILS_SERVICE, reflection.SERVICE_NAME),
            server,
        )
    return server


def bind(server: grpc.aio.Server, listen: str, variable: str, tls: ServerTLS | None = None) -> int:
    """Bind `listen` (HOST:PORT, port 0 for any); ConfigError naming `variable` when it cannot.

    With `tls` the port serves TLS (mutual TLS with a client CA) from its files, re-read
    when they change (dualnova.server.tls); a bad file is a ConfigError naming its variable,
    raised before anything is bound. Without it, plaintext.
    """
    credentials = None if tls is None else server_credentials(tls)
    try:
        if credentials is None:
            port = server.add_insecure_port(listen)
        else:
            port = server.add_secure_port(listen, credentials)
    except RuntimeError:
        port = 0
    if port == 0:
        raise ConfigError(
            f"{variable}={listen!r}: cannot listen there (in use, or not an address of this"
            " machine)"
        )
    return port
