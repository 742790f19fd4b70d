"""`python -m gateway`: serve DualChat until SIGTERM or SIGINT.

Flags stand for the environment variables of gateway.config (a flag wins over
its variable); a bad value ends the program with one line and status 2.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from dualnova import logs, telemetry
from dualnova.settings import flag_overrides, refuse_to_start
from gateway import server
from gateway.config import FLAGS, ConfigError, load

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
    env = parse_env(argv)
    try:
        settings = load(env)
    except ConfigError as error:
        return refuse_to_start(PROG, error)
    logs.setup(PROG)
    try:
        otel = telemetry.setup(PROG, env)
    except ConfigError as error:
        return refuse_to_start(PROG, error)
    try:
        asyncio.run(server.serve(settings))
    except ConfigError as error:
        return refuse_to_start(PROG, error)
    finally:
        otel.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
