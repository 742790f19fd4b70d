"""`python -m gateway`: serve DualChat until SIGTERM or SIGINT.

Flags stand for the environment variables of gateway.config (a flag wins over
its variable); a bad value ends the program with one line and status 2. With
GATEWAY_WORKERS above 1 this process supervises that many workers sharing the
port (dualnova.server.launch, dualnova.server.workers).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence

from dualnova.server import launch
from gateway.config import FLAGS, LISTEN, Settings, load

PROG = "gateway"


def main(argv: Sequence[str] | None = None) -> int:
    return launch.run(
        PROG,
        argv,
        flags=FLAGS,
        description="DualNova gateway: DualChat over Nova Micro and Nova Pro.",
        load=load,
        listen_variable=LISTEN.variable,
        prepare=_prepare,
    )


def _prepare(settings: Settings) -> launch.Serve:
    # Imported here: a supervisor of workers never loads grpc.
    from gateway import server

    return functools.partial(server.serve, settings)


if __name__ == "__main__":
    sys.exit(main())
