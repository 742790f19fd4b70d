"""ConverseStream: the answer as an event stream, paced, with mid-stream faults.

Events in Bedrock's order: messageStart; per content block, a
contentBlockStart (toolUse blocks only: a text block's first delta opens it),
one contentBlockDelta per text piece or input fragment (and a citation
delta after the first text delta when the answer cites a document),
contentBlockStop;
messageStop; metadata (usage, the real elapsed latencyMs, and the guardrail
trace and applied options when there are any). Like Bedrock, each event
payload carries a `p` padding field that clients must ignore. A
mid_stream_error sends its exception message after `after_deltas` deltas; a
hang sends them and then nothing until the caller hangs up (or HANG_LIMIT_S
passes). Every step notices a caller that hung up
and records it in the request log.
"""

from __future__ import annotations

import logging
import string
from typing import Any

from aiohttp import web

from bedrock_emulator import eventstream, faults
from bedrock_emulator.answers import ToolUseBlock
from bedrock_emulator.connection import pause, send
from bedrock_emulator.errors import BedrockError
from bedrock_emulator.replies import error_reply, hung_up
from bedrock_emulator.requests_log import LogEntry
from bedrock_emulator.runtime import Admitted, admit

logger = logging.getLogger(__name__)
_PADDING = string.ascii_letters + string.digits


async def converse_stream(request: web.Request) -> web.StreamResponse:
    """POST /model/{modelId}/converse-stream."""
    entry, outcome = await admit(request, "ConverseStream")
    if isinstance(outcome, BedrockError):
        return error_reply(entry, outcome)
    response = web.StreamResponse(
        status=200,
        headers={"Content-Type": eventstream.CONTENT_TYPE, "x-amzn-RequestId": entry.id},
    )
    try:
        await response.prepare(request)
    except ConnectionResetError:
        return hung_up(entry)
    entry.status = 200
    finished = await _Stream(request, response, entry, outcome).run()
    try:
        if finished:
            await response.write_eof()
    except ConnectionResetError:
        finished = False
    if not finished:
        entry.mark_disconnected()
    logger.info(
        "ConverseStream ended",
        extra={
            "request_id": entry.id,
            "model": entry.model_id,
            "status": 200,
            "error": entry.error or ("disconnected" if entry.disconnected else None),
        },
    )
    return response


class _Stream:
    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        entry: LogEntry,
        admitted: Admitted,
    ) -> None:
        self._request = request
        self._response = response
        self._entry = entry
        self._admitted = admitted
        self._sent = 0
        self._deltas = 0  # contentBlockDelta events sent, across blocks

    async def run(self) -> bool:
        """Send the stream; False if the caller hung up before its end."""
        admitted = self._admitted
        answer = admitted.answer
        interrupt = admitted.fault_kind("mid_stream_error") or admitted.fault_kind("hang")
        if not await self._event("messageStart", {"role": "assistant"}):
            return False
        if not await pause(self._request, admitted.first_token_s):
            return False
        last = len(answer.blocks) - 1
        for index, block in enumerate(answer.blocks):
            if isinstance(block, ToolUseBlock):
                start = {"toolUse": {"toolUseId": block.call.tool_use_id, "name": block.call.name}}
                if not await self._event(
                    "contentBlockStart", {"contentBlockIndex": index, "start": start}
                ):
                    return False
                deltas: list[dict[str, Any]] = [
                    {"toolUse": {"input": fragment}} for fragment in block.call.fragments()
                ]
            else:
                deltas = [{"text": piece} for piece in block.pieces]
            for delta in deltas:
                if interrupt is not None and self._deltas == interrupt.after_deltas:
                    return await self._interrupt(interrupt)
                if self._deltas and not await pause(self._request, admitted.per_delta_s):
                    return False
                if not await self._event(
                    "contentBlockDelta", {"contentBlockIndex": index, "delta": delta}
                ):
                    return False
                self._deltas += 1
                self._entry.response_text += delta.get("text", "")
                if self._deltas == 1 and answer.citation is not None and "text" in delta:
                    cited = {"contentBlockIndex": index, "delta": {"citation": answer.citation}}
                    if not await self._event("contentBlockDelta", cited):
                        return False
            if interrupt is not None and index == last:
                return await self._interrupt(interrupt)
            if not await self._event("contentBlockStop", {"contentBlockIndex": index}):
                return False
        metadata = {
            "usage": answer.usage(),
            "metrics": {"latencyMs": admitted.latency_ms()},
            **answer.reported(),
        }
        for event_type, payload in (
            ("messageStop", {"stopReason": answer.stop_reason}),
            ("metadata", metadata),
        ):
            if not await self._event(event_type, payload):
                return False
        self._entry.usage = answer.usage()
        self._entry.stop_reason = answer.stop_reason
        self._entry.completed = True
        return True

    async def _interrupt(self, fault: faults.FaultRule) -> bool:
        if fault.kind == "mid_stream_error":
            self._entry.error = fault.exception
            text = faults.STREAM_MESSAGES[fault.exception]
            return await send(
                self._request, self._response, eventstream.exception(fault.exception, text)
            )
        # hang: say nothing more; the caller's read timeout or cancellation ends it.
        return await pause(self._request, faults.HANG_LIMIT_S)

    async def _event(self, event_type: str, payload: dict[str, Any]) -> bool:
        self._sent += 1
        padded = {**payload, "p": _PADDING[: 1 + (self._sent * 7) % len(_PADDING)]}
        return await send(self._request, self._response, eventstream.event(event_type, padded))
