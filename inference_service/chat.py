"""The InferenceService servicer: Chat (validate, ground, start a Bedrock stream or refuse,
relay it, map failures) and Retrieve (one Knowledge Base query, retrieval.py).

A Chat with grounding retrieves first: its retrieval event is the stream's
first, then the answer grounded in the passages (grounding.py puts them in the
last user turn). A Chat with retrieval (passages the gateway retrieved once for
both routes) sends no Retrieve and no retrieval event, only the grounded request.

It writes with context.write() from one coroutine instead of being an async
generator: when the caller cancels or its deadline passes, the CancelledError
lands inside this coroutine at whichever await it is on, so the Bedrock
stream is closed right there rather than whenever a suspended generator is
finalised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import NoReturn, Protocol

import grpc

from dualnova.chat.v1 import chat_pb2
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from dualnova.server.conversation import last_user_text
from dualnova.server.retry_info import exhausted_trailers
from inference_service import validation
from inference_service.bedrock import (
    ASSISTANT,
    USER,
    Batch,
    BedrockRuntime,
    BlockStopped,
    Cited,
    Conversation,
    Event,
    GuardrailTraced,
    KnowledgeBases,
    MappedError,
    Started,
    Stopped,
    StreamsExhausted,
    TextDelta,
    ToolInputFragment,
    ToolUseStarted,
    UsageReport,
    content_json,
    guardrail_json,
    map_error,
    tool_config_json,
)
from inference_service.bedrock.converse_request import LATENCIES, SERVICE_TIERS
from inference_service.chat_telemetry import OTHER_MODEL, ChatCall, ChatTelemetry, call_route
from inference_service.config import MAX_STREAMS, Settings
from inference_service.grounding import grounded, retrieve_query
from inference_service.retrieval import RetrieveFailed, Retriever

logger = logging.getLogger(__name__)

# What RetryInfo advises past the stream cap: a Micro answer takes about a second at
# Bedrock's pace, so by then a slot has likely freed (or a balancer tried elsewhere).
RETRY_AFTER_S = 1.0

_ROLES = {chat_pb2.ROLE_USER: USER, chat_pb2.ROLE_ASSISTANT: ASSISTANT}
Context = grpc.aio.ServicerContext[inference_pb2.ChatRequest, inference_pb2.ChatResponse]
RetrieveContext = grpc.aio.ServicerContext[
    inference_pb2.RetrieveRequest, inference_pb2.RetrieveResponse
]
# Why a grounded call cannot be served by a server built without a Retrieve client.
_NO_RETRIEVER = "this server has no Knowledge Base client (bedrock-agent-runtime)"


class CallOutcomes(Protocol):
    """Where each call's verdict on Bedrock goes (health.RuntimeHealth): traffic is evidence."""

    async def call_reached_bedrock(self) -> None: ...

    async def call_failed(self, error: MappedError) -> None: ...


class ChatServicer(inference_pb2_grpc.InferenceServiceServicer):
    """dualnova.inference.v1.InferenceService."""

    def __init__(
        self,
        settings: Settings,
        runtime: BedrockRuntime,
        *,
        outcomes: CallOutcomes | None = None,
        telemetry: ChatTelemetry | None = None,
        knowledge_bases: KnowledgeBases | None = None,
    ) -> None:
        self._settings = settings
        self._runtime = runtime
        self._outcomes = outcomes
        self._telemetry = telemetry or ChatTelemetry()
        self._retriever = None if knowledge_bases is None else Retriever(knowledge_bases)

    async def Retrieve(
        self, request: inference_pb2.RetrieveRequest, context: RetrieveContext
    ) -> inference_pb2.RetrieveResponse:
        try:
            knowledge_base_id = validation.validate_retrieve(request, self._settings)
        except validation.InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if self._retriever is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, _NO_RETRIEVER)
        query = retrieve_query(request.grounding, knowledge_base_id, request.query)
        try:
            retrieval = await self._retriever.retrieve(
                query, call_route(context.invocation_metadata())
            )
        except RetrieveFailed as exc:
            await context.abort(
                exc.mapped.code, exc.mapped.message, trailing_metadata=_trailers(exc.mapped)
            )
        return inference_pb2.RetrieveResponse(retrieval=retrieval)

    async def Chat(self, request: inference_pb2.ChatRequest, context: Context) -> None:
        prompt = None
        if self._settings.log_content:
            prompt = [{"role": _ROLES.get(m.role, "?"), "text": m.text} for m in request.messages]
        call = self._telemetry.call(
            request.model, call_route(context.invocation_metadata()), prompt
        )
        try:
            await self._chat(request, context, call)
        except BaseException:
            call.interrupted()  # a status of ours is kept; anything else is a cancellation
            raise
        finally:
            # A model name that was not accepted is the caller's text: never a metric attribute.
            call.finish(self._settings.resolve_model(call.model) or OTHER_MODEL)

    async def _chat(
        self,
        request: inference_pb2.ChatRequest,
        context: Context,
        call: ChatCall,
    ) -> None:
        try:
            model_id = validation.validate(request, self._settings)
        except validation.InvalidRequest as exc:
            # The message names the field; it never carries prompt text.
            await _abort(context, call, grpc.StatusCode.INVALID_ARGUMENT, str(exc), str(exc))
        call.model = model_id
        conversation = _conversation(request, model_id, self._settings)
        retrieval = None
        if request.HasField("grounding"):
            retrieval = await self._retrieve(request, context, call)
            await context.write(inference_pb2.ChatResponse(retrieval=retrieval))
        elif request.HasField("retrieval"):
            retrieval = request.retrieval
        if retrieval is not None:
            conversation = dataclasses.replace(
                conversation, messages=grounded(conversation.messages, retrieval)
            )
        await self._relay(conversation, context, call)

    async def _retrieve(
        self, request: inference_pb2.ChatRequest, context: Context, call: ChatCall
    ) -> chat_pb2.Retrieval:
        """The grounding's passages (validated already), or the RPC ends with Retrieve's status."""
        if self._retriever is None:
            await _abort(context, call, grpc.StatusCode.FAILED_PRECONDITION, _NO_RETRIEVER)
        knowledge_base_id = validation.knowledge_base_of(request.grounding, self._settings)
        query = retrieve_query(
            request.grounding, knowledge_base_id, last_user_text(request.messages)
        )
        try:
            return await self._retriever.retrieve(query, call.route)
        except RetrieveFailed as exc:
            mapped = exc.mapped
            await _abort(
                context, call, mapped.code, mapped.message, mapped.cause, trailers=_trailers(mapped)
            )

    async def _relay(self, conversation: Conversation, context: Context, call: ChatCall) -> None:
        try:
            stream = self._runtime.stream(conversation)
        except StreamsExhausted as exc:
            # Refused at once, not queued: waiting would only move the overload into the
            # caller's deadline, while RESOURCE_EXHAUSTED lets it (or a balancer) go elsewhere.
            message = (
                f"too many concurrent streams on this server (limit {exc.limit},"
                f" {MAX_STREAMS.variable}); retry later"
            )
            await _abort(
                context,
                call,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                message,
                trailers=exhausted_trailers(message, RETRY_AFTER_S),
            )
        with call.bedrock(stream.request):
            async with contextlib.aclosing(stream) as batches:
                while True:
                    try:
                        batch = await anext(batches)
                    except StopAsyncIteration:
                        return
                    # The one boundary where Bedrock failures become statuses: only the
                    # stream's own errors, never ours in writing or reporting an event.
                    except Exception as exc:
                        await self._failed(exc, call, context)
                    for event in _merge_waiting_deltas(batch, call.first_token_at is None):
                        call.observe(event)
                        if isinstance(event, Started) and self._outcomes is not None:
                            await self._outcomes.call_reached_bedrock()
                        await context.write(_response(event, call))

    async def _failed(self, exc: Exception, call: ChatCall, context: Context) -> NoReturn:
        """A failed Bedrock stream as its mapped status (logged when it is not one we know)."""
        mapped = map_error(exc)
        if mapped.code is grpc.StatusCode.INTERNAL:
            logger.error("unexpected failure of a Bedrock call", exc_info=exc)
        call.failed(mapped)
        if self._outcomes is not None:
            await self._outcomes.call_failed(mapped)
        await _abort(context, call, mapped.code, mapped.message, mapped.cause)


def _trailers(mapped: MappedError) -> tuple[tuple[str, str | bytes], ...]:
    """A throttled Retrieve's RESOURCE_EXHAUSTED carries RetryInfo, as the stream cap's does."""
    if mapped.code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return exhausted_trailers(mapped.message, RETRY_AFTER_S)
    return ()


def _merge_waiting_deltas(batch: Batch, first_pending: bool) -> Batch:
    """Text deltas of one block that arrived together as one: fewer messages for a caller
    that fell behind.

    The call's first delta always goes alone, so the caller's time to first token
    is Bedrock's; text and order are kept, only deltas of the same content block
    index merge, and nothing merges across another event (tool input fragments
    are relayed exactly as Bedrock sent them).
    """
    if len(batch) < 2:
        return batch
    merged: list[Event] = []
    pending: list[str] = []
    pending_index = 0

    def flush() -> None:
        if pending:
            merged.append(TextDelta("".join(pending), pending_index))
            pending.clear()

    for event in batch:
        if isinstance(event, TextDelta):
            if first_pending:
                merged.append(event)
                first_pending = False
                continue
            if pending and event.index != pending_index:
                flush()
            pending_index = event.index
            pending.append(event.text)
            continue
        flush()
        merged.append(event)
    flush()
    return tuple(merged)


# Bedrock's stopReason -> the enum; a value not here is STOP_REASON_UNSPECIFIED, kept as sent.
STOP_REASONS = {
    "end_turn": chat_pb2.STOP_REASON_END_TURN,
    "tool_use": chat_pb2.STOP_REASON_TOOL_USE,
    "max_tokens": chat_pb2.STOP_REASON_MAX_TOKENS,
    "stop_sequence": chat_pb2.STOP_REASON_STOP_SEQUENCE,
    "guardrail_intervened": chat_pb2.STOP_REASON_GUARDRAIL_INTERVENED,
    "content_filtered": chat_pb2.STOP_REASON_CONTENT_FILTERED,
    "model_context_window_exceeded": chat_pb2.STOP_REASON_MODEL_CONTEXT_WINDOW_EXCEEDED,
}
_LATENCY_VALUES = {name: value for value, name in LATENCIES.items()}
_TIER_VALUES = {name: value for value, name in SERVICE_TIERS.items()}


def _response(event: object, call: ChatCall) -> inference_pb2.ChatResponse:
    """Our event as the wire message; Stop's times are the call's own readings."""
    if isinstance(event, TextDelta):
        return inference_pb2.ChatResponse(
            delta=chat_pb2.Delta(text=event.text, content_block_index=event.index)
        )
    if isinstance(event, Cited):
        return inference_pb2.ChatResponse(
            citation=chat_pb2.Citation(
                content_block_index=event.index,
                title=event.title,
                source_text=event.source_text,
                location_json=event.location_json,
            )
        )
    if isinstance(event, ToolInputFragment):
        return inference_pb2.ChatResponse(
            tool_input_delta=chat_pb2.ToolInputDelta(
                content_block_index=event.index, input_json=event.input_json
            )
        )
    if isinstance(event, ToolUseStarted):
        return inference_pb2.ChatResponse(
            tool_use_start=chat_pb2.ToolUseStart(
                content_block_index=event.index, tool_use_id=event.tool_use_id, name=event.name
            )
        )
    if isinstance(event, BlockStopped):
        return inference_pb2.ChatResponse(
            content_block_stop=chat_pb2.ContentBlockStop(content_block_index=event.index)
        )
    if isinstance(event, GuardrailTraced):
        return inference_pb2.ChatResponse(
            guardrail_trace=chat_pb2.GuardrailTrace(
                trace_json=event.trace_json, intervened=event.intervened
            )
        )
    if isinstance(event, Started):
        return inference_pb2.ChatResponse(
            start=chat_pb2.Start(model_id=event.model_id, request_id=event.request_id)
        )
    if isinstance(event, UsageReport):
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
        stop = chat_pb2.Stop(
            stop_reason=event.stop_reason,
            time_to_first_token_ms=call.time_to_first_token_ms() or 0.0,
            latency_ms=call.ms_since_start(time.monotonic()),
            reason=STOP_REASONS.get(event.stop_reason, chat_pb2.STOP_REASON_UNSPECIFIED),
        )
        if event.latency is not None or event.service_tier is not None:
            stop.applied.CopyFrom(
                chat_pb2.Applied(
                    latency=_LATENCY_VALUES.get(event.latency or "", chat_pb2.LATENCY_UNSPECIFIED),
                    service_tier=_TIER_VALUES.get(
                        event.service_tier or "", chat_pb2.SERVICE_TIER_UNSPECIFIED
                    ),
                )
            )
        return inference_pb2.ChatResponse(stop=stop)
    raise TypeError(f"unknown Bedrock event {type(event).__name__}")


def _conversation(
    request: inference_pb2.ChatRequest, model_id: str, settings: Settings
) -> Conversation:
    """A validated request in the Bedrock client's terms, with the server's defaults filled in."""
    config = request.inference_config
    max_tokens = config.max_tokens if config.HasField("max_tokens") else None
    options = request.options
    return Conversation(
        model_id=model_id,
        messages=tuple((_ROLES[m.role], content_json(m)) for m in request.messages),
        system=tuple(request.system),
        cache_system=request.cache_system,
        max_tokens=settings.default_max_tokens if max_tokens is None else max_tokens,
        temperature=config.temperature if config.HasField("temperature") else None,
        top_p=config.top_p if config.HasField("top_p") else None,
        stop_sequences=tuple(config.stop_sequences),
        tool_config=(
            tool_config_json(request.tool_config) if request.HasField("tool_config") else None
        ),
        guardrail_config=(
            guardrail_json(request.guardrail_config)
            if request.HasField("guardrail_config")
            else None
        ),
        latency=LATENCIES.get(options.latency),
        service_tier=SERVICE_TIERS.get(options.service_tier),
        request_metadata=dict(options.request_metadata) or None,
        top_k=options.top_k if options.HasField("top_k") else None,
    )


async def _abort(
    context: Context,
    call: ChatCall,
    code: grpc.StatusCode,
    message: str,
    error: str | None = None,
    *,
    trailers: tuple[tuple[str, str | bytes], ...] = (),
) -> NoReturn:
    """End the RPC with a status (after any events already written); always raises."""
    call.refused(code.name, error)
    await context.abort(code, message, trailing_metadata=trailers)
    raise AssertionError("context.abort returned")  # it raises; this tells type checkers
