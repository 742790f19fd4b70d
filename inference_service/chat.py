"""The Chat servicer: validate, start a Bedrock stream (or refuse), relay it, map failures.

It writes with context.write() from one coroutine instead of being an async
generator: when the caller cancels or its deadline passes, the CancelledError
lands inside this coroutine at whichever await it is on, so the Bedrock
stream is closed right there rather than whenever a suspended generator is
finalised.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import NoReturn, Protocol

import grpc

from dualnova.chat.v1 import chat_pb2
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from inference_service import validation
from inference_service.bedrock import (
    ASSISTANT,
    USER,
    Batch,
    BedrockRuntime,
    Conversation,
    Event,
    MappedError,
    Started,
    Stopped,
    StreamsExhausted,
    TextDelta,
    UsageReport,
    map_error,
)
from inference_service.chat_telemetry import BedrockCall, ChatTelemetry, call_route
from inference_service.config import Settings

logger = logging.getLogger(__name__)

_ROLES = {chat_pb2.ROLE_USER: USER, chat_pb2.ROLE_ASSISTANT: ASSISTANT}


class CallOutcomes(Protocol):
    """Where each call's verdict on Bedrock goes (health.RuntimeHealth): traffic is evidence."""

    async def call_reached_bedrock(self) -> None: ...

    async def call_failed(self, error: MappedError) -> None: ...


@dataclass
class _CallRecord:
    """What the one log line per call says. The prompt and the answer only with log_content."""

    model: str
    started: float
    route: str = ""
    request_id: str = ""
    status: str = "OK"
    error: str | None = None
    first_token_at: float | None = None
    usage: UsageReport | None = None
    # Filled only when DUALNOVA_LOG_CONTENT is on.
    prompt: list[dict[str, str]] | None = None
    answer: str | None = None

    def ms_since_start(self, moment: float) -> float:
        return round((moment - self.started) * 1000.0, 3)

    def time_to_first_token_ms(self) -> float | None:
        return None if self.first_token_at is None else self.ms_since_start(self.first_token_at)

    def log(self) -> None:
        usage = self.usage
        level = {"OK": logging.INFO, "CANCELLED": logging.INFO, "INTERNAL": logging.ERROR}.get(
            self.status, logging.WARNING
        )
        logger.log(
            level,
            "chat finished",
            extra={
                "request_id": self.request_id or None,
                "model": self.model,
                "route": self.route or None,
                "status": self.status,
                "error": self.error,
                "input_tokens": usage.input_tokens if usage else None,
                "output_tokens": usage.output_tokens if usage else None,
                "total_tokens": usage.total_tokens if usage else None,
                "latency_ms": self.ms_since_start(time.monotonic()),
                "time_to_first_token_ms": self.time_to_first_token_ms(),
                "prompt": self.prompt,
                "answer": self.answer,
            },
        )


class ChatServicer(inference_pb2_grpc.InferenceServiceServicer):
    """dualnova.inference.v1.InferenceService."""

    def __init__(
        self,
        settings: Settings,
        runtime: BedrockRuntime,
        *,
        outcomes: CallOutcomes | None = None,
        telemetry: ChatTelemetry | None = None,
    ) -> None:
        self._settings = settings
        self._runtime = runtime
        self._outcomes = outcomes
        self._telemetry = telemetry or ChatTelemetry()

    async def Chat(
        self, request: inference_pb2.ChatRequest, context: grpc.aio.ServicerContext
    ) -> None:
        record = _CallRecord(
            model=request.model,
            started=time.monotonic(),
            route=call_route(context.invocation_metadata()),
        )
        if self._settings.log_content:
            record.prompt = [
                {"role": _ROLES.get(m.role, "?"), "text": m.text} for m in request.messages
            ]
            record.answer = ""
        try:
            await self._chat(request, context, record)
        except BaseException:
            if record.status == "OK":  # not one of ours: the RPC was cancelled or torn down
                record.status = "CANCELLED"
            raise
        finally:
            record.log()
            # A model name that was not accepted is the caller's text: never a metric attribute.
            model = self._settings.resolve_model(record.model) or "_OTHER"
            self._telemetry.count_request(model, record.route, record.status)

    async def _chat(
        self,
        request: inference_pb2.ChatRequest,
        context: grpc.aio.ServicerContext,
        record: _CallRecord,
    ) -> None:
        try:
            model_id = validation.validate(request, self._settings)
        except validation.InvalidRequest as exc:
            record.error = str(exc)  # names the field; never carries prompt text
            await _abort(context, record, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        record.model = model_id
        await self._relay(_conversation(request, model_id, self._settings), context, record)

    async def _relay(
        self, conversation: Conversation, context: grpc.aio.ServicerContext, record: _CallRecord
    ) -> None:
        try:
            stream = self._runtime.stream(conversation)
        except StreamsExhausted as exc:
            # Refused at once, not queued: waiting would only move the overload into the
            # caller's deadline, while RESOURCE_EXHAUSTED lets it (or a balancer) go elsewhere.
            await _abort(
                context,
                record,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many concurrent streams on this server (limit {exc.limit}); retry later",
            )
        with self._telemetry.bedrock_call(conversation, record.route) as call:
            async with contextlib.aclosing(stream) as batches:
                while True:
                    try:
                        batch = await anext(batches)
                    except StopAsyncIteration:
                        return
                    # The one boundary where Bedrock failures become statuses: only the
                    # stream's own errors, never ours in writing or reporting an event.
                    except Exception as exc:
                        await self._failed(exc, call, context, record)
                    for event in _merge_waiting_deltas(batch, record.first_token_at is None):
                        call.observe(event)
                        if isinstance(event, Started) and self._outcomes is not None:
                            await self._outcomes.call_reached_bedrock()
                        await context.write(_response(event, record))

    async def _failed(
        self,
        exc: Exception,
        call: BedrockCall,
        context: grpc.aio.ServicerContext,
        record: _CallRecord,
    ) -> NoReturn:
        """A failed Bedrock stream as its mapped status (logged when it is not one we know)."""
        mapped = map_error(exc)
        if mapped.code is grpc.StatusCode.INTERNAL:
            logger.error("unexpected failure of a Bedrock call", exc_info=exc)
        record.error = mapped.cause
        call.failed(mapped.cause)
        if self._outcomes is not None:
            await self._outcomes.call_failed(mapped)
        await _abort(context, record, mapped.code, mapped.message)


def _merge_waiting_deltas(batch: Batch, first_pending: bool) -> Batch:
    """Deltas that arrived together as one: fewer messages for a caller that fell behind.

    The call's first delta always goes alone, so the caller's time to first token
    is Bedrock's; text and order are kept, and nothing merges across another event.
    """
    if len(batch) < 2:
        return batch
    merged: list[Event] = []
    pending: list[str] = []
    for event in batch:
        if isinstance(event, TextDelta):
            if first_pending:
                merged.append(event)
                first_pending = False
            else:
                pending.append(event.text)
            continue
        if pending:
            merged.append(TextDelta("".join(pending)))
            pending = []
        merged.append(event)
    if pending:
        merged.append(TextDelta("".join(pending)))
    return tuple(merged)


def _response(event: object, record: _CallRecord) -> inference_pb2.ChatResponse:
    """Our event as the wire message; updates the call record on the way."""
    now = time.monotonic()
    if isinstance(event, TextDelta):
        if record.first_token_at is None:
            record.first_token_at = now
        if record.answer is not None:
            record.answer += event.text
        return inference_pb2.ChatResponse(delta=chat_pb2.Delta(text=event.text))
    if isinstance(event, Started):
        record.request_id = event.request_id
        return inference_pb2.ChatResponse(
            start=chat_pb2.Start(model_id=event.model_id, request_id=event.request_id)
        )
    if isinstance(event, UsageReport):
        record.usage = event
        return inference_pb2.ChatResponse(
            usage=chat_pb2.Usage(
                input_tokens=event.input_tokens,
                output_tokens=event.output_tokens,
                total_tokens=event.total_tokens,
                cache_read_input_tokens=event.cache_read_input_tokens,
                cache_write_input_tokens=event.cache_write_input_tokens,
            )
        )
    if isinstance(event, Stopped):
        return inference_pb2.ChatResponse(
            stop=chat_pb2.Stop(
                stop_reason=event.stop_reason,
                time_to_first_token_ms=record.time_to_first_token_ms() or 0.0,
                latency_ms=record.ms_since_start(now),
            )
        )
    raise TypeError(f"unknown Bedrock event {type(event).__name__}")


def _conversation(
    request: inference_pb2.ChatRequest, model_id: str, settings: Settings
) -> Conversation:
    """A validated request in bedrock.py's terms, with the server's defaults filled in."""
    config = request.inference_config
    max_tokens = config.max_tokens if config.HasField("max_tokens") else None
    return Conversation(
        model_id=model_id,
        messages=tuple((_ROLES[m.role], m.text) for m in request.messages),
        system=tuple(request.system),
        cache_system=request.cache_system,
        max_tokens=settings.default_max_tokens if max_tokens is None else max_tokens,
        temperature=config.temperature if config.HasField("temperature") else None,
        top_p=config.top_p if config.HasField("top_p") else None,
        stop_sequences=tuple(config.stop_sequences),
    )


async def _abort(
    context: grpc.aio.ServicerContext,
    record: _CallRecord,
    code: grpc.StatusCode,
    message: str,
) -> NoReturn:
    """End the RPC with a status (after any events already written); always raises."""
    record.status = code.name
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # it raises; this tells type checkers
