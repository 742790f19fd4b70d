"""bedrock-runtime ListAsyncInvokes: the signed runtime call that costs nothing.

`GET /async-invoke` lists asynchronous invocations; Bedrock bills none of it,
which makes it what a health probe sends to prove the runtime endpoint answers
and accepts the caller's credentials. The emulator runs no async jobs, so the
list is always empty; credentials, faults (operation "ListAsyncInvokes") and
the maxResults constraint are checked as for any other operation.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bedrock_emulator.auth import Caller
from bedrock_emulator.control_plane import answer
from bedrock_emulator.errors import constraint

MAX_RESULTS = 1000


async def list_async_invokes(request: web.Request) -> web.StreamResponse:
    raw = request.query.get("maxResults")

    def describe(caller: Caller) -> Any:
        if raw is not None and not (raw.isdigit() and 1 <= int(raw) <= MAX_RESULTS):
            raise constraint(
                "maxResults", raw, f"Member must have value between 1 and {MAX_RESULTS}"
            )
        return {"asyncInvokeSummaries": []}

    return await answer(request, "ListAsyncInvokes", None, (), describe)
