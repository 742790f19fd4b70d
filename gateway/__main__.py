"""`python -m gateway`: serve DualChat until SIGTERM or SIGINT.

Flags stand for the environment variables of gateway.config (a flag wins over
its variable); a bad value ends the program with one line and status 2.

With GATEWAY_WORKERS above 1 this process is the supervisor of that many
workers sharing the port (dualnova.workers); it never loads grpc, so the
server module is imported only on the way to serving.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from dualnova import event_loop, logs, ports, telemetry, workers
from dualnova.settings import flag_overrides, refuse_to_start
from gateway.config import FLAGS, LISTEN, ConfigError, Settings, load

PROG = "gateway"


def parse_env(argv: Sequence[str] | None = None) -> dict[str, str]:
    """The environment with every given flag written over its variable."""
    overrides = flag_overrides(
        FLAGS,
        argv,
        prog=f"python -m {PROG}",
        description="DualNova gateway: DualChat over Nova Micro and Nova Pro.",
    )
    return {**os.environ, **overrides}


def main(argv: Sequence[str] | None = None) -> int:
    role = workers.worker_role(os.environ)
    if role is not None:
        role.follow_supervisor()
    env = parse_env(argv)
    try:
        settings = load(env)
        if role is None and settings.workers > 1:
            logs.setup(PROG)
            return workers.supervise(
                module=PROG,
                env=env,
                count=settings.workers,
                listen_variable=LISTEN.variable,
                listen=settings.listen,
            )
        if role is None:
            # gRPC's own bind error is several lines of C-core log; this is one.
            ports.check_free(settings.listen, LISTEN.variable)
    except ConfigError as error:
        return refuse_to_start(PROG, error)
    return _serve(settings, env, role)


def _serve(settings: Settings, env: Mapping[str, str], role: workers.WorkerRole | None) -> int:
    """One server process: alone, or one worker of several."""
    from gateway import server

    worker = None if role is None else role.index
    logs.setup(PROG, worker=worker)
    try:
        otel = telemetry.setup(PROG, env, worker=worker)
    except ConfigError as error:
        return refuse_to_start(PROG, error)
    try:
        event_loop.run(
            server.serve(
                settings,
                reuse_port=role is not None,
                on_ready=None if role is None else role.announce_ready,
            ),
            settings.event_loop,
        )
    except ConfigError as error:
        return refuse_to_start(PROG, error)
    finally:
        otel.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
