"""`python -m inference_service`: read the configuration, build the Bedrock clients, serve.

Anything wrong at start (a bad variable or flag, no AWS region or
credentials, an address that cannot be bound) ends the program with one line
on stderr and exit status 2, before a caller could reach it. With
INFERENCE_WORKERS above 1 this process supervises that many workers sharing
the port (dualnova.server.launch, dualnova.server.workers).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence

from dualnova.server import launch
from dualnova.server.settings import ConfigError
from inference_service import config

PROG = "inference_service"


def main(argv: Sequence[str] | None = None) -> int:
    return launch.run(
        PROG,
        argv,
        flags=config.FLAGS,
        description="Bedrock ConverseStream behind the gRPC InferenceService.Chat RPC, and"
        " Knowledge Base Retrieve behind InferenceService.Retrieve.",
        epilog="Each flag overrides its environment variable. AWS settings (AWS_REGION,"
        " credentials, AWS_ENDPOINT_URL_BEDROCK_RUNTIME, AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME)"
        " come from the standard AWS chain.",
        load=config.load,
        listen_variable=config.LISTEN.variable,
        prepare=_prepare,
    )


def _prepare(settings: config.Settings) -> launch.Serve:
    """The Bedrock clients, built and checked at start (no region or credentials: one line)."""
    # Imported here: a supervisor of workers never loads grpc.
    from inference_service.bedrock import (
        BedrockSetupError,
        build_client,
        build_knowledge_bases,
        build_probes,
        open_session,
    )
    from inference_service.server import serve

    try:
        session = open_session(settings)
        runtime = build_client(settings, session)
        probes = build_probes(settings, session)
        knowledge_bases = build_knowledge_bases(settings, session)
    except BedrockSetupError as exc:
        raise ConfigError(str(exc)) from exc
    return functools.partial(serve, settings, runtime, probes, knowledge_bases=knowledge_bases)


if __name__ == "__main__":
    sys.exit(main())
