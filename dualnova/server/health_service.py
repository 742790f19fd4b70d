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

StatusBoard keeps each name's state and derives the server's own names ("" and
the service name) from a rule the service supplies, so the rule is code in one
place per service rather than scattered `set` calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2

__all__ = [
    "HealthServicer",
    "LIST_LIMIT",
    "NOT_SERVING",
    "SERVER",
    "SERVING",
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


class HealthServicer(health.aio.HealthServicer):
    """grpc.health.v1.Health with List, and Watch streams that end at shutdown.

    The base class keeps its statuses private, so this class mirrors what it
    was told in `_listed`; both change only through set() and
    enter_graceful_shutdown(), on the event loop.
    """

    def __init__(self) -> None:
        super().__init__()
        self._listed: dict[str, Status] = {SERVER: SERVING}  # the base class's starting state
        self._draining = False
        self._watches: set[asyncio.Task[Any]] = set()
        self._ending_watches = False

    async def set(self, service: str, status: Status) -> None:
        if self._draining:
            return
        self._listed[service] = status
        await super().set(service, status)

    async def enter_graceful_shutdown(self) -> None:
        """Every name NOT_SERVING for good; later set() calls are ignored."""
        if self._draining:
            return
        self._draining = True
        self._listed = dict.fromkeys(self._listed, NOT_SERVING)
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
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in self._listed.items()
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
    """Each name's SERVING or not, published on change; "" and the service name follow a rule.

    `overall` sees the states of the dependency names only. Names added with
    add_extra() are reported but never passed to it, so an optional
    dependency (CloudWatch metrics) cannot take the server out of rotation.
    """

    def __init__(
        self,
        servicer: HealthServicer,
        *,
        service_name: str,
        dependencies: Iterable[str],
        overall: Callable[[Mapping[str, bool]], bool],
    ) -> None:
        self.servicer = servicer
        self.service_name = service_name
        self._overall = overall
        self._states: dict[str, bool] = dict.fromkeys(dependencies, False)
        self._extras: dict[str, bool] = {}
        self._published: set[str] = set()
        self._server_serving: bool | None = None

    def add_extra(self, name: str) -> None:
        """Report `name` too, without it counting toward "".

        It starts NOT_SERVING and appears from publish() or its first set(),
        whichever comes first.
        """
        if name in self._states or name in (SERVER, self.service_name):
            raise ValueError(f"health name {name!r} is already a dependency or the server")
        self._extras.setdefault(name, False)

    def serving(self, name: str) -> bool:
        if name in (SERVER, self.service_name):
            return bool(self._server_serving)
        return self._states.get(name, self._extras.get(name, False))

    async def publish(self) -> None:
        """Publish every name as it stands now (once at start, before clients connect)."""
        for name, serving in (*self._states.items(), *self._extras.items()):
            await self.servicer.set(name, _status(serving))
            self._published.add(name)
        await self._publish_server(force=True)

    async def set(self, name: str, serving: bool, reason: str = "") -> None:
        """Record one name's state; publishes and logs only when something changes."""
        table = self._states if name in self._states else self._extras
        if name not in table:
            raise KeyError(f"unknown health name {name!r}")
        if table[name] == serving and name in self._published:
            return
        if table[name] != serving:
            _log_change(name, serving, reason)
        table[name] = serving
        await self.servicer.set(name, _status(serving))
        self._published.add(name)
        await self._publish_server()

    async def _publish_server(self, force: bool = False) -> None:
        serving = self._overall(dict(self._states))
        if serving == self._server_serving and not force:
            return
        changed = self._server_serving is not None and serving != self._server_serving
        self._server_serving = serving
        if changed:
            _log_change(SERVER, serving, "")
        for name in (SERVER, self.service_name):
            await self.servicer.set(name, _status(serving))


def _status(serving: bool) -> Status:
    return SERVING if serving else NOT_SERVING


def _log_change(name: str, serving: bool, reason: str) -> None:
    status = "SERVING" if serving else "NOT_SERVING"
    logger.log(
        logging.INFO if serving else logging.WARNING,
        f"health {name!r} is now {status}" + (f" ({reason})" if reason and serving else ""),
        extra={"status": status, "error": None if serving else reason or None},
    )
