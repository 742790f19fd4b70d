"""bedrock-runtime Converse and ConverseStream: admit a request, then answer it.

Admission runs Bedrock's checks in AWS's order: credentials, a readable body,
a known model (runtime answers ValidationException "The provided model
identifier is invalid." for an unknown id, as Bedrock does), model access,
the request's own constraints; then faults (a `[[fault:...]]` directive
first, then the oldest matching rule); then the prompt cache and the answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web

from bedrock_emulator import catalog, faults
from bedrock_emulator.answers import Answer, cache_key, compose_answer, last_user_text
from bedrock_emulator.auth import authenticate
from bedrock_emulator.catalog import ModelSpec
from bedrock_emulator.connection import pause
from bedrock_emulator.errors import INVALID_MODEL_ID, NO_MODEL_ACCESS, BedrockError, validation
from bedrock_emulator.faults import FaultRule
from bedrock_emulator.replies import error_reply, hung_up, json_reply
from bedrock_emulator.requests_log import LogEntry, logged_body
from bedrock_emulator.state import STATE, EmulatorState
from bedrock_emulator.validation import parse_body, validate_converse

MODEL_TIMEOUT = "Model has timed out in processing the request. Try your request again."


@dataclass(frozen=True)
class Admitted:
    """A request Bedrock would run, with what it will answer and how fast."""

    model: ModelSpec
    answer: Answer
    fault: FaultRule | None
    started: float  # time.monotonic() when the request arrived
    first_token_s: float
    per_delta_s: float

    def fault_kind(self, kind: str) -> FaultRule | None:
        return self.fault if self.fault is not None and self.fault.kind == kind else None

    def latency_ms(self) -> int:
        return round((time.monotonic() - self.started) * 1000)


async def admit(request: web.Request, operation: str) -> tuple[LogEntry, Admitted | BedrockError]:
    """Open the log entry and decide: an answer to give, or the error Bedrock answers."""
    started = time.monotonic()
    state = request.app[STATE]
    model_id = request.match_info["model_id"]
    raw = await request.read()
    entry = state.log.open(operation, model_id, None, request.headers)
    try:
        return entry, _decide(state, request, raw, model_id, operation, entry, started)
    except BedrockError as error:
        return entry, error


def _decide(
    state: EmulatorState,
    request: web.Request,
    raw: bytes,
    model_id: str,
    operation: str,
    entry: LogEntry,
    started: float,
) -> Admitted:
    entry.body = logged_body(raw)
    authenticate(request.headers)
    body = parse_body(raw)
    model = catalog.resolve(model_id)
    if model is None:
        raise validation(INVALID_MODEL_ID)
    entry.resolved_model_id = model.model_id
    if not model.access_granted:
        raise BedrockError("AccessDeniedException", NO_MODEL_ACCESS)
    validate_converse(body, model)

    fault = faults.directive(last_user_text(body), model) or state.faults.take(
        operation, (model_id, model.model_id)
    )
    if fault is not None:
        entry.fault = fault.kind
        error = fault.error(operation)
        if error is not None:
            raise error

    key = cache_key(model.model_id, body)
    hit = state.prompt_cache.hit_or_write(key) if key is not None else False
    per_delta_s = model.pacing.per_delta_s * state.pace
    if fault is not None and fault.kind == "slow":
        per_delta_s = fault.delay_ms / 1000
    return Admitted(
        model=model,
        answer=compose_answer(model.model_id, body, cache_hit=hit, raw_body=raw),
        fault=fault,
        started=started,
        first_token_s=model.pacing.first_token_s * state.pace,
        per_delta_s=per_delta_s,
    )


async def converse(request: web.Request) -> web.StreamResponse:
    """POST /model/{modelId}/converse: the whole answer as one JSON document."""
    entry, outcome = await admit(request, "Converse")
    if isinstance(outcome, BedrockError):
        return error_reply(entry, outcome)
    answer = outcome.answer
    if outcome.fault_kind("hang"):
        if not await pause(request, faults.HANG_LIMIT_S):
            return hung_up(entry)
        return error_reply(entry, BedrockError("ModelTimeoutException", MODEL_TIMEOUT))
    generation_s = outcome.first_token_s + outcome.per_delta_s * max(0, len(answer.pieces) - 1)
    if not await pause(request, generation_s):
        return hung_up(entry)
    entry.response_text = answer.text
    entry.usage = answer.usage()
    entry.stop_reason = answer.stop_reason
    return json_reply(
        entry,
        {
            "output": {"message": {"role": "assistant", "content": answer.content()}},
            "stopReason": answer.stop_reason,
            "usage": answer.usage(),
            "metrics": {"latencyMs": outcome.latency_ms()},
            **answer.reported(),
        },
    )
