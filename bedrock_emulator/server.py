"""Wiring: the aiohttp application with Bedrock's routes and the control API, and serve()."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bedrock_emulator import (
    agent_api,
    async_invoke,
    control_api,
    control_plane,
    runtime,
    streaming,
)
from bedrock_emulator.state import STATE, EmulatorState

logger = logging.getLogger(__name__)

# Seconds that shutdown waits for handlers after cancelling them.
SHUTDOWN_TIMEOUT_S = 1.0
_OPEN = web.AppKey("open_handlers", set)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _track_open(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Remember running handlers so shutdown can end streams that would hang for minutes."""
    task = asyncio.current_task()
    open_handlers = request.app[_OPEN]
    open_handlers.add(task)
    try:
        return await handler(request)
    finally:
        open_handlers.discard(task)


async def _cancel_open(app: web.Application) -> None:
    open_handlers = app[_OPEN]
    for task in list(open_handlers):
        task.cancel()


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(client_max_size=32 * 1024 * 1024, middlewares=[_track_open])
    app[STATE] = state
    app[_OPEN] = set()
    app.on_shutdown.append(_cancel_open)
    app.router.add_post("/model/{model_id:.+}/converse-stream", streaming.converse_stream)
    app.router.add_post("/model/{model_id:.+}/converse", runtime.converse)
    app.router.add_get("/async-invoke", async_invoke.list_async_invokes)
    app.router.add_get("/foundation-models", control_plane.list_foundation_models)
    app.router.add_get("/foundation-models/{model_id:.+}", control_plane.get_foundation_model)
    app.router.add_get("/inference-profiles", control_plane.list_inference_profiles)
    app.router.add_get("/inference-profiles/{profile_id:.+}", control_plane.get_inference_profile)
    # bedrock-agent-runtime and bedrock-agent (knowledge bases) share the port.
    app.router.add_post("/knowledgebases/{knowledge_base_id}/retrieve", agent_api.retrieve)
    app.router.add_get("/knowledgebases/{knowledge_base_id}", agent_api.get_knowledge_base)

    app.router.add_get("/_emulator/health", control_api.health)
    app.router.add_get("/_emulator/requests", control_api.list_requests)
    app.router.add_get("/_emulator/faults", control_api.list_faults)
    app.router.add_post("/_emulator/faults", control_api.add_fault)
    app.router.add_delete("/_emulator/faults", control_api.clear_faults)
    app.router.add_delete("/_emulator/faults/{fault_id}", control_api.remove_fault)
    app.router.add_post("/_emulator/reset", control_api.reset)
    app.router.add_get("/_emulator/pacing", control_api.get_pacing)
    app.router.add_post("/_emulator/pacing", control_api.set_pacing)
    return app


def serve(host: str, port: int, pace: float) -> None:
    """Run until SIGINT or SIGTERM, then stop (exit status 0)."""
    app = build_app(EmulatorState(pace=pace))

    async def announce(_: web.Application) -> None:
        logger.info("bedrock emulator listening", extra={"address": f"http://{host}:{port}"})

    app.on_startup.append(announce)
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
