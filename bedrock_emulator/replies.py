"""Building non-streamed responses and stamping the request log with them."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from bedrock_emulator.errors import BedrockError
from bedrock_emulator.requests_log import LogEntry

logger = logging.getLogger(__name__)


def error_reply(entry: LogEntry, error: BedrockError) -> web.Response:
    """The rest-json error Bedrock sends before any result."""
    entry.status = error.status
    entry.error = error.code
    logger.info(
        "%s answered %s",
        entry.operation,
        error.code,
        extra={
            "request_id": entry.id,
            "model": entry.model_id,
            "status": error.status,
            "error": error.code,
        },
    )
    return web.Response(
        status=error.status,
        body=error.body(),
        content_type="application/json",
        headers={**error.headers(), "x-amzn-RequestId": entry.id},
    )


def hung_up(entry: LogEntry) -> web.Response:
    """What a handler returns once its caller is gone: nothing reaches the wire, the log says so."""
    entry.mark_disconnected()
    return web.Response(status=204)


def json_reply(entry: LogEntry, payload: Any) -> web.Response:
    entry.status = 200
    entry.completed = True
    logger.info(
        "%s answered",
        entry.operation,
        extra={"request_id": entry.id, "model": entry.model_id, "status": 200},
    )
    return web.Response(
        status=200,
        body=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        content_type="application/json",
        headers={"x-amzn-RequestId": entry.id},
    )
