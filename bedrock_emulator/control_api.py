"""The emulator's own JSON API under /_emulator: health, request log, faults, pacing, reset.

Not part of Bedrock; no credentials needed. Tests and `dualnova up` drive it
through dualnova.dev.stack.EmulatorHandle.
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from bedrock_emulator.faults import parse_rule
from bedrock_emulator.state import STATE


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def list_requests(request: web.Request) -> web.Response:
    return _json(request.app[STATE].log.to_json())


async def add_fault(request: web.Request) -> web.Response:
    try:
        rule = parse_rule(await _read_json(request))
    except ValueError as error:
        return web.json_response({"message": str(error)}, status=400)
    rule = request.app[STATE].faults.add(rule)
    return web.json_response({"id": rule.id, "rule": rule.to_json()}, status=201)


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].faults.to_json())


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.clear()
    return web.json_response({"status": "cleared"})


async def remove_fault(request: web.Request) -> web.Response:
    if not request.app[STATE].faults.remove(request.match_info["fault_id"]):
        return web.json_response({"message": "no such fault rule"}, status=404)
    return web.json_response({"status": "removed"})


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"status": "reset"})


async def get_pacing(request: web.Request) -> web.Response:
    return web.json_response({"scale": request.app[STATE].pace})


async def set_pacing(request: web.Request) -> web.Response:
    try:
        body = await _read_json(request)
    except ValueError as error:
        return web.json_response({"message": str(error)}, status=400)
    scale = body.get("scale") if isinstance(body, dict) else None
    if (
        isinstance(scale, bool)
        or not isinstance(scale, int | float)
        or not math.isfinite(scale)
        or scale < 0
    ):
        return web.json_response({"message": "scale must be a number >= 0"}, status=400)
    request.app[STATE].pace = float(scale)
    return web.json_response({"scale": float(scale)})


async def _read_json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except json.JSONDecodeError as error:
        raise ValueError(f"body is not JSON: {error}") from None


def _json(payload: Any) -> web.Response:
    return web.Response(
        body=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        content_type="application/json",
    )
