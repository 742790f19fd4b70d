"""How both services' processes start: flags, settings, workers, serving, one-line refusals.

`python -m inference_service` and `python -m gateway` differ only in what
they build before serving. Everything around it is here, once: flags over
variables, the settings loaded and checked, a supervisor of N workers when
asked (dualnova.server.workers; it never loads grpc, so a service imports its grpc
modules inside its `prepare`), the listen port checked, logs and telemetry
set up, the event loop chosen, and any ConfigError (at start or when the
address cannot be bound) said on one line with exit status 2.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from dualnova.server import event_loop, logs, ports, telemetry, workers
from dualnova.server.settings import ConfigError, Flag, flag_overrides, refuse_to_start

__all__ = ["Serve", "run"]


class _ServerSettings(Protocol):
    @property
    def listen(self) -> str: ...

    @property
    def workers(self) -> int: ...

    @property
    def event_loop(self) -> str: ...


S = TypeVar("S", bound=_ServerSettings)


class Serve(Protocol):
    """What a service's prepare() returns: serving until a signal, then draining."""

    def __call__(
        self, *, reuse_port: bool, on_ready: Callable[[], None] | None
    ) -> Coroutine[Any, Any, None]: ...


def run(
    prog: str,
    argv: Sequence[str] | None,
    *,
    flags: Sequence[Flag],
    description: str,
    epilog: str | None = None,
    load: Callable[[Mapping[str, str]], S],
    listen_variable: str,
    prepare: Callable[[S], Serve],
) -> int:
    """Run the service `prog` and return its exit status (0 after a drain, 2 refused)."""
    role = workers.worker_role(os.environ)
    if role is not None:
        role.follow_supervisor()
    overrides = flag_overrides(
        flags, argv, prog=f"python -m {prog}", description=description, epilog=epilog
    )
    env = {**os.environ, **overrides}
    try:
        settings = load(env)
        if role is None and settings.workers > 1:
            logs.setup(prog)
            return workers.supervise(
                module=prog,
                env=env,
                count=settings.workers,
                listen_variable=listen_variable,
                listen=settings.listen,
            )
        if role is None:
            # gRPC's own bind error is several lines of C-core log; this is one.
            ports.check_free(settings.listen, listen_variable)
    except ConfigError as exc:
        return refuse_to_start(prog, exc)

    worker = None if role is None else role.index
    logs.setup(prog, worker=worker)
    try:
        serve = prepare(settings)
        otel = telemetry.setup(prog, env, worker=worker)
    except ConfigError as exc:
        return refuse_to_start(prog, exc)
    try:
        on_ready = None if role is None else role.announce_ready
        event_loop.run(serve(reuse_port=role is not None, on_ready=on_ready), settings.event_loop)
    except ConfigError as exc:  # the listen address could not be bound
        return refuse_to_start(prog, exc)
    finally:
        otel.shutdown()
    return 0
