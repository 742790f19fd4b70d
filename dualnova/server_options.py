"""gRPC server channel arguments both services set, each with its reason."""

from __future__ import annotations

__all__ = ["common_server_options"]


def common_server_options(*, reuse_port: bool, pending_calls: int) -> list[tuple[str, int]]:
    """SO_REUSEPORT only for workers sharing a port, and a pending-call queue sized to the load.

    gRPC's default SO_REUSEPORT (on) would let a second server share a taken
    port without a word; only a worker among several (dualnova.workers) wants it.

    grpc.aio picks up new calls one at a time from its event loop; until then
    a call waits in the server's pending queue, and past
    grpc.server.max_pending_requests (default 1,000; all past the hard limit,
    default 3,000) gRPC cancels new calls at random. A burst of 1,000 DualChats
    is 2,000 Chats arriving at the inference service within milliseconds, so
    the defaults ended hundreds of routes CANCELLED before any handler ran.
    A waiting call costs only memory; the services refuse what they cannot
    serve themselves (RESOURCE_EXHAUSTED), once the handler has run.
    """
    return [
        ("grpc.so_reuseport", int(reuse_port)),
        ("grpc.server.max_pending_requests", pending_calls),
        ("grpc.server.max_pending_requests_hard_limit", pending_calls),
    ]
