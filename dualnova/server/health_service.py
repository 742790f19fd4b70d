"""The grpc.health.v1 service both DualNova servers run, and the table of names behind it.

HealthServicer is grpcio-health-checking's asyncio servicer with two additions:
- List (gRPC proposal A90). The health.proto compiled into grpcio-health-checking
  1.85.1 already declares the RPC, so the generated stub, the method handler and
  the descriptor that reflection serves all include it; only the servicer answers
  UNIMPLEMENTED. Implementing it on a subclass therefore needs no second copy of
  health.proto in the descriptor pool (which would clash on grpc.health.v1).
- Watch streams that end when the server drains. A Watch never finishes on its
  own, so without this grpc's server.stop(grace) would wait out the whole grace
  period for every follower (the gateway always has one). They end with OK after
  NOT_SERVING was sent; the health spec tells clients to retry with backoff.

The servicer also keeps, for dualnova.health.v1 (dualnova.server.health_details),
each name's reason when it is not SERVING and when its status last changed:
grpc.health.v1's messages have no room for either.

StatusBoard keeps each name's state and derives the server's own names ("" and
the service name) from a rule the service supplies, so the rule is code in one
place per service rather than scattered `set` calls. It logs every transition
once, with its cause, the first state of each name included.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2

__all__ = [
    "HealthServicer",
    "LIST_LIMIT",
    "NOT_SERVING",
    "SERVER",
    "SERVING",
    "SHUTTING_DOWN",
    "NameState",
    "StatusBoard",
]

logger = logging.getLogger(__name__)

# A HealthCheckResponse.ServingStatus value: protobuf enum values are ints.
Status: TypeAlias = int
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# The empty name is the whole server: what a Kubernetes readiness probe asks for.
SERVER = ""
# A90: a server may refuse List with RESOURCE_EXHAUSTED past a limit of its choosing.
LIST_LIMIT = 100
# The reason every name gives once the server drains.
SHUTTING_DOWN = "the server is shutting down"


@dataclass(frozen=True)
class NameState:
    """One name as last published: its status, why, and when the status last changed."""

    status: Status
    # Why the name is not SERVING, in words; always "" while SERVING.
    reason: str
    # time.time() of the last status change (or of the first publication).
    changed_at: float


class HealthServicer(health.aio.HealthServicer):
    """grpc.health.v1.Health with List, and Watch streams that end at shutdown.

    The base class keeps its statuses private, so this class mirrors what it
    was told in `_listed`, with the reason and the time of the last change
    that dualnova.health.v1 reports; all of it changes only through set()
    and enter_graceful_shutdown(), on the event loop.
    """

    def __init__(self) -> None:
        super().__init__()
        # The base class's starting state.
        self._listed: dict[str, NameState] = {SERVER: NameState(SERVING, "", time.time())}
        self._draining = False
        self._watches: set[asyncio.Task[Any]] = set()
        self._ending_watches = False

    async def set(self, service: str, status: Status, reason: str = "") -> None:
        """Publish a status; `reason` (kept only when not SERVING) says why.

        A new reason for an unchanged status is recorded without telling
        Watch streams anything (their message has no room for it).
        """
        if self._draining:
            return
        reason = "" if status == SERVING else reason
        before = self._listed.get(service)
        if before is not None and before.status == status:
            if before.reason != reason:
                self._listed[service] = NameState(status, reason, before.changed_at)
            return
        self._listed[service] = NameState(status, reason, time.time())
        await super().set(service, status)

    def details(self) -> Mapping[str, NameState]:
        """Every name as published now (a copy)."""
        return dict(self._listed)

    async def enter_graceful_shutdown(self) -> None:
        """Every name NOT_SERVING for good; later set() calls are ignored."""
        if self._draining:
            return
        self._draining = True
        now = time.time()
        changed = [name for name, state in self._listed.items() if state.status != NOT_SERVING]
        self._listed = {
            name: NameState(
                NOT_SERVING,
                SHUTTING_DOWN,
                now if name in changed else state.changed_at,
            )
            for name, state in self._listed.items()
        }
        if changed:
            logger.warning(
                f"health {', '.join(map(repr, sorted(changed)))} now NOT_SERVING: {SHUTTING_DOWN}",
                extra={"status": "NOT_SERVING", "error": SHUTTING_DOWN},
            )
        await super().enter_graceful_shutdown()

    async def List(  # noqa: N802 - the RPC's name
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthListResponse:
        if len(self._listed) > LIST_LIMIT:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"more than {LIST_LIMIT} health names; Check them one by one",
            )
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=state.status)
                for name, state in self._listed.items()
            }
        )

    async def Watch(  # noqa: N802 - the RPC's name
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._watches.add(task)
        try:
            await super().Watch(request, context)
        except asyncio.CancelledError:
            if not self._ending_watches:
                raise  # the caller went away or the server is being torn down
            task.uncancel()  # ours: finish the RPC with OK instead
        finally:
            self._watches.discard(task)

    def end_watches(self) -> None:
        """Finish every open Watch stream with OK (each has already seen NOT_SERVING)."""
        self._ending_watches = True
        for task in list(self._watches):
            task.cancel()


class StatusBoard:
    """Each name's SERVING or not, published and logged on change; "" and the service name
    follow a rule.

    A name's state is unknown until its owner first sets it (it is published
    NOT_SERVING with `initial_reason` meanwhile), and that first set() counts
    as a change: it is logged with its cause, so a server that starts
    unhealthy says why at once. "" and the service name are first logged when
    every dependency is known. `overall` sees the states of the dependency
    names only. Names added with add_extra() are reported but never passed to
    it, so an optional dependency (CloudWatch metrics) cannot take the server
    out of rotation.
    """

    def __init__(
        self,
        servicer: HealthServicer,
        *,
        service_name: str,
        dependencies: Iterable[str],
        overall: Callable[[Mapping[str, bool]], bool],
        initial_reason: str = "not checked yet",
    ) -> None:
        self.servicer = servicer
        self.service_name = service_name
        self._overall = overall
        self._initial_reason = initial_reason
        # None: nothing learned yet. Reasons are kept for both states (logs say why a
        # name turned SERVING too); the servicer keeps them only for NOT_SERVING.
        self._states: dict[str, bool | None] = dict.fromkeys(dependencies)
        self._extras: dict[str, bool | None] = {}
        self._reasons: dict[str, str] = {}
        # None until every dependency is known: the first decision is logged as a change.
        self._server_serving: bool | None = None

    def add_extra(self, name: str) -> None:
        """Report `name` too, without it counting toward "".

        It starts NOT_SERVING and appears from publish() or its first set(),
        whichever comes first.
        """
        if name in self._states or name in (SERVER, self.service_name):
            raise ValueError(f"health name {name!r} is already a dependency or the server")
        self._extras.setdefault(name, None)

    def serving(self, name: str) -> bool:
        if name in (SERVER, self.service_name):
            return bool(self._server_serving)
        return bool(self._states.get(name, self._extras.get(name)))

    def known(self, name: str) -> bool:
        """Whether `name` has been set since the start (before that it is NOT_SERVING)."""
        return self._table(name)[name] is not None

    async def publish(self) -> None:
        """Publish every name as it stands now (once at start, before clients connect)."""
        for name, serving in (*self._states.items(), *self._extras.items()):
            await self.servicer.set(name, _status(bool(serving)), self._why(name))
        await self._publish_server()

    async def set(self, name: str, serving: bool, reason: str = "") -> None:
        """Record one name's state and why; publishes and logs only when the state changes.

        The first set() of a name is a change. A new reason for the same state
        replaces the one the details RPC reports, without a log line. Cheap
        when nothing changes (a Chat call reports the runtime SERVING each time).
        """
        table = self._table(name)
        before = table[name]
        if before == serving and self._reasons.get(name) == reason:
            return
        self._reasons[name] = reason
        if before != serving:
            _log_change(name, serving, reason)
        table[name] = serving
        await self.servicer.set(name, _status(serving), reason)
        await self._publish_server()

    async def assume(self, name: str, serving: bool, reason: str) -> None:
        """set(), but only while nothing is known about `name` (a first answer with no news)."""
        if not self.known(name):
            await self.set(name, serving, reason)

    def _table(self, name: str) -> dict[str, bool | None]:
        table = self._states if name in self._states else self._extras
        if name not in table:
            raise KeyError(f"unknown health name {name!r}")
        return table

    def _why(self, name: str) -> str:
        return self._reasons.get(name, self._initial_reason)

    async def _publish_server(self) -> None:
        """Publish "" and the service name; log when they change (first: once all are known)."""
        known = all(state is not None for state in self._states.values())
        serving = known and self._overall({n: bool(s) for n, s in self._states.items()})
        reason = "" if serving else self._down_reason()
        if known and serving != self._server_serving:
            _log_change(SERVER, serving, reason or self._up_reason())
            self._server_serving = serving
        for name in (SERVER, self.service_name):
            await self.servicer.set(name, _status(serving), reason)

    def _down_reason(self) -> str:
        """The dependencies that are not SERVING, grouped by reason: why "" is NOT_SERVING."""
        down: dict[str, list[str]] = {}
        for name, state in self._states.items():
            if not state:
                down.setdefault(self._why(name), []).append(name)
        if not down:  # the rule wants more than "every dependency SERVING" (never, today)
            return "the server's rule is not met"
        return "; ".join(
            f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} NOT_SERVING"
            + (f": {reason}" if reason else "")
            for reason, names in down.items()
        )

    def _up_reason(self) -> str:
        up = [name for name, state in self._states.items() if state]
        return f"{', '.join(up)} {'is' if len(up) == 1 else 'are'} SERVING"


def _status(serving: bool) -> Status:
    return SERVING if serving else NOT_SERVING


def _log_change(name: str, serving: bool, reason: str) -> None:
    """One line per transition, with its cause in the message and (when down) in `error`."""
    status = "SERVING" if serving else "NOT_SERVING"
    logger.log(
        logging.INFO if serving else logging.WARNING,
        f"health {name!r} is now {status}" + (f": {reason}" if reason else ""),
        extra={"status": status, "error": None if serving else reason or None},
    )
