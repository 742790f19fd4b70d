"""`python -m inference_service`: read the configuration, build the Bedrock clients, serve.

Anything wrong at start (a bad variable or flag, no AWS region or
credentials, an address that cannot be bound) ends the program with one line
on stderr and exit status 2, before a caller could reach it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from dualnova import logs, telemetry
from dualnova.settings import ConfigError, flag_overrides, refuse_to_start
from inference_service import config
from inference_service.bedrock import BedrockSetupError, build_client, open_session
from inference_service.bedrock_probes import build_probes
from inference_service.server import ListenError, serve

PROG = "inference_service"


def _parse_flags(argv: Sequence[str] | None) -> dict[str, str]:
    """Flags as the variables they stand for; only flags given on the command line."""
    return flag_overrides(
        config.FLAGS,
        argv,
        prog=f"python -m {PROG}",
        description="Bedrock ConverseStream behind the gRPC InferenceService.Chat RPC.",
        epilog="Each flag overrides its environment variable. AWS settings (AWS_REGION,"
        " credentials, AWS_ENDPOINT_URL_BEDROCK_RUNTIME) come from the standard AWS chain.",
    )


def main(argv: Sequence[str] | None = None) -> int:
    overrides = _parse_flags(argv)
    logs.setup(PROG)
    try:
        settings = config.load({**os.environ, **overrides})
        session = open_session(settings)
        runtime = build_client(settings, session)
        probes = build_probes(settings, session)
        otel = telemetry.setup(PROG)
    except (ConfigError, BedrockSetupError) as exc:
        return refuse_to_start(PROG, exc)
    try:
        asyncio.run(serve(settings, runtime, probes))
    except ListenError as exc:
        return refuse_to_start(PROG, exc)
    finally:
        otel.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
