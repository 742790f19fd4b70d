"""How many DualChats run at once, per caller and in total, and the refusal past a limit.

One count per gateway worker (the event loop is the only thread touching it):
GATEWAY_MAX_STREAMS in total, GATEWAY_MAX_STREAMS_PER_CALLER for any one
caller. A call past either is refused at once with RESOURCE_EXHAUSTED and a
google.rpc.RetryInfo in the status details, rather than queued: waiting would
only move the overload into the caller's deadline, while the refusal tells a
client (or a balancer) when to try again.

Who the caller is: the name dualnova.server.auth let the call in under (a
token's, or a client certificate's with mutual TLS), else the host the call came
from (context.peer()), so that without either one address stands for one caller.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import grpc

from dualnova.server.callers import current_caller
from dualnova.server.retry_info import exhausted_trailers
from gateway.config import MAX_STREAMS, MAX_STREAMS_PER_CALLER

__all__ = ["RETRY_AFTER_S", "Admission", "Refused", "caller_of"]

# What RetryInfo advises. A DualChat at Bedrock's pace takes seconds; a second
# lets a burst drain a little without making a client wait for a whole answer.
RETRY_AFTER_S = 1.0


class Refused(Exception):
    """A DualChat past a limit; `str(error)` names the limit and its variable."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        """grpc-status-details-bin: a google.rpc.Status carrying RetryInfo (grpcio-status)."""
        return exhausted_trailers(str(self), self.retry_after_s)


class Admission:
    """Counts running DualChats by caller; admit() holds one place for the call's length."""

    def __init__(
        self, max_streams: int, max_per_caller: int, *, retry_after_s: float = RETRY_AFTER_S
    ) -> None:
        self._max_streams = max_streams
        self._max_per_caller = max_per_caller
        self._retry_after_s = retry_after_s
        self._running = 0
        self._by_caller: dict[str, int] = {}

    @property
    def running(self) -> int:
        return self._running

    def running_for(self, caller: str) -> int:
        return self._by_caller.get(caller, 0)

    def admit(self, caller: str) -> contextlib.AbstractContextManager[None]:
        """A place for `caller`, held until the returned context ends; Refused past a limit.

        Refused here, before the call's block starts, so nothing needs undoing.
        """
        if self._running >= self._max_streams:
            raise Refused(
                f"too many concurrent DualChats on this server (limit {self._max_streams},"
                f" {MAX_STREAMS.variable}); retry later",
                self._retry_after_s,
            )
        held = self._by_caller.get(caller, 0)
        if held >= self._max_per_caller:
            raise Refused(
                f"too many concurrent DualChats from this caller (limit {self._max_per_caller},"
                f" {MAX_STREAMS_PER_CALLER.variable}); retry later",
                self._retry_after_s,
            )
        self._running += 1
        self._by_caller[caller] = held + 1
        return self._held(caller)

    @contextlib.contextmanager
    def _held(self, caller: str) -> Iterator[None]:
        try:
            yield
        finally:
            self._running -= 1
            left = self._by_caller[caller] - 1
            if left:
                self._by_caller[caller] = left
            else:
                del self._by_caller[caller]


def caller_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """Who is calling, for the per-caller count: the token's name, else the peer host.

    Prefixed, so that a token named like an address never shares an address's count.
    """
    name = current_caller()
    if name is not None:
        return f"caller:{name}"
    return f"host:{peer_host(context.peer())}"


def peer_host(peer: str) -> str:
    """The host of a gRPC peer string: "ipv4:127.0.0.1:5000" -> "127.0.0.1", "ipv6:[::1]:5000"
    -> "[::1]"; anything else (unix:, an unknown scheme) as it is."""
    scheme, sep, address = peer.partition(":")
    if sep and scheme in ("ipv4", "ipv6"):
        host, colon, _port = address.rpartition(":")
        if colon:
            return host
    return peer
