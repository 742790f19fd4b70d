"""`python -m inference_service`: read the configuration, build the Bedrock clients, serve.

Anything wrong at start (a bad variable or flag, no AWS region or
credentials, an address that cannot be bound) ends the program with one line
on stderr and exit status 2, before a caller could reach it.

With INFERENCE_WORKERS above 1 this process is the supervisor of that many
workers sharing the port (dualnova.workers); it never loads grpc, so the
modules that do are imported only on the way to serving.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from dualnova import event_loop, logs, ports, telemetry, workers
from dualnova.settings import ConfigError, flag_overrides, refuse_to_start
from inference_service import config

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
    role = workers.worker_role(os.environ)
    if role is not None:
        role.follow_supervisor()
    env = {**os.environ, **_parse_flags(argv)}
    try:
        settings = config.load(env)
        if role is None and settings.workers > 1:
            logs.setup(PROG)
            return workers.supervise(
                module=PROG,
                env=env,
                count=settings.workers,
                listen_variable=config.LISTEN.variable,
                listen=settings.listen,
            )
        if role is None:
            # gRPC's own bind error is several lines of C-core log; this is one.
            ports.check_free(settings.listen, config.LISTEN.variable)
    except ConfigError as exc:
        return refuse_to_start(PROG, exc)
    return _serve(settings, env, role)


def _serve(
    settings: config.Settings, env: Mapping[str, str], role: workers.WorkerRole | None
) -> int:
    """One server process: alone, or one worker of several."""
    from inference_service.bedrock import (
        BedrockSetupError,
        build_client,
        build_probes,
        open_session,
    )
    from inference_service.server import serve

    worker = None if role is None else role.index
    logs.setup(PROG, worker=worker)
    try:
        session = open_session(settings)
        runtime = build_client(settings, session)
        probes = build_probes(settings, session)
        otel = telemetry.setup(PROG, env, worker=worker)
    except (ConfigError, BedrockSetupError) as exc:
        return refuse_to_start(PROG, exc)
    try:
        event_loop.run(
            serve(
                settings,
                runtime,
                probes,
                reuse_port=role is not None,
                on_ready=None if role is None else role.announce_ready,
            ),
            settings.event_loop,
        )
    except ConfigError as exc:  # the listen address could not be bound
        return refuse_to_start(PROG, exc)
    finally:
        otel.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
