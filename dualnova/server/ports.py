"""Is a listen address free? Asked of the OS before gRPC binds it, with one clear answer.

gRPC turns SO_REUSEPORT on by default, so a second server on a taken port
would silently share it with the first. The services turn it off (or, for
workers, on only among their own processes) and check here first, so a taken
port stops the program at start with one line naming the variable, instead of
gRPC's own multi-line bind error.

No grpc here: a worker supervisor uses this before it starts any worker.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field
from typing import Any

from dualnova.server.settings import ConfigError

__all__ = ["Reservation", "check_free", "reserve"]


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _candidates(address: str, variable: str) -> list[tuple[int, tuple[Any, ...]]]:
    """(family, sockaddr) of every address the host resolves to, as gRPC would bind them."""
    host, port = _split(address)
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(f"{variable}={address!r}: cannot resolve the host ({exc})") from None
    return list(dict.fromkeys((family, sockaddr) for family, _, _, _, sockaddr in infos))


def _socket(family: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    # SO_REUSEADDR as gRPC sets it: connections in TIME_WAIT do not make a port "taken",
    # a listening socket still does.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        # gRPC binds [::] dual-stack, so it collides with an IPv4 listener too.
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    return sock


def _bind_all(address: str, variable: str, *, reuse_port: bool) -> list[socket.socket]:
    """Bind every resolved address; ConfigError when one is in use or none can be bound."""
    bound: list[socket.socket] = []
    unavailable: OSError | None = None
    port = _split(address)[1]
    try:
        for family, sockaddr in _candidates(address, variable):
            sock = _socket(family, reuse_port=reuse_port)
            try:
                # Port 0: every address gets the port the first one was given.
                sock.bind((sockaddr[0], port, *sockaddr[2:]))
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise ConfigError(
                        f"{variable}={address!r}: port {port} is in use (another server"
                        " listens there)"
                    ) from None
                unavailable = exc
                continue
            bound.append(sock)
            port = sock.getsockname()[1]
    except BaseException:
        for sock in bound:
            sock.close()
        raise
    if not bound:
        raise ConfigError(
            f"{variable}={address!r}: cannot listen there (not an address of this machine:"
            f" {unavailable.strerror if unavailable else 'no address'})"
        )
    return bound


def check_free(address: str, variable: str) -> None:
    """ConfigError naming `variable` unless a server could listen on `address` now.

    The probe binds without SO_REUSEPORT, so any listener holds the port
    against it, whether or not that listener allows sharing.
    """
    for sock in _bind_all(address, variable, reuse_port=False):
        sock.close()


@dataclass
class Reservation:
    """A port held for a group of worker processes: bound with SO_REUSEPORT, never listening.

    It keeps a port 0 resolved to one real port until every worker has bound
    it, and holds the port against programs that bind without SO_REUSEADDR.
    Once the workers listen, nothing that does not set SO_REUSEPORT can take
    it. It does not listen itself, so the kernel never hands it a connection
    (grpc's multiprocessing example holds its port the same way).
    """

    address: str
    port: int
    _sockets: list[socket.socket] = field(default_factory=list, repr=False)

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()


def reserve(address: str, variable: str) -> Reservation:
    """Check that `address` is free, then hold it for workers; port 0 becomes a real port."""
    probes = _bind_all(address, variable, reuse_port=False)
    port = probes[0].getsockname()[1]
    for sock in probes:
        sock.close()
    host = address.rpartition(":")[0]
    concrete = f"{host}:{port}"
    # Another program could take the port between the probe and this bind; then this
    # bind fails the same way, unless that program shares the port on purpose.
    held = _bind_all(concrete, variable, reuse_port=True)
    return Reservation(concrete, port, held)
