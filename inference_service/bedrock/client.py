"""The one place that calls Bedrock for inference: a conversation in, typed stream events out.

Its siblings in this package: probes.py makes the unbilled calls health
needs (runtime and control plane) through the same kind of transport,
session.py builds transports from the AWS session, failures.py says what a
failed call means and statuses.py how a caller is told. No other inference
module calls Bedrock (cloudwatch.py calls CloudWatch, with boto3 directly).

A ConverseStream is read on the event loop (transport.py: botocore's
credentials and signer over aiohttp), so a stream costs a socket and a few
objects, not a thread. Each network read is decoded at once (events.py) and
handed to the caller as one batch of Started, TextDelta, UsageReport and
Stopped, in the order the Chat contract promises; a caller that writes slower
than Bedrock sends gets the deltas that piled up in one batch and may merge
them.

BedrockRuntime counts the streams open and refuses one over the cap
(StreamsExhausted) before anything is sent. Closing a stream early (the
caller cancelled, a deadline passed) closes its HTTP connection at once, so
Bedrock stops generating and billing; a stream read to its end gives its
connection back to the pool for the next call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from botocore.utils import percent_encode

from inference_service.bedrock.events import EventStreamDecoder
from inference_service.bedrock.failures import StreamEndedEarly
from inference_service.bedrock.session import (
    build_transport,
    configured_max_attempts,
    open_session,
)
from inference_service.bedrock.transport import AwsTransport, Timeouts, translate_read_error
from inference_service.config import Settings

if TYPE_CHECKING:
    import boto3

logger = logging.getLogger(__name__)

USER = "user"
ASSISTANT = "assistant"


class StreamsExhausted(Exception):
    """max_streams pumps are still running; raised before anything is sent to Bedrock."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} Bedrock streams are running already")
        self.limit = limit


# ---- what goes in -----------------------------------------------------------


@dataclass(frozen=True)
class Conversation:
    """One validated Converse call, independent of the gRPC message that asked for it."""

    model_id: str
    # (role, text) pairs, role "user" or "assistant", oldest first.
    messages: tuple[tuple[str, str], ...]
    system: tuple[str, ...] = ()
    cache_system: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop_sequences: tuple[str, ...] = ()


def converse_request(conversation: Conversation) -> dict[str, Any]:
    """The keyword arguments of bedrock-runtime converse_stream for a conversation."""
    request: dict[str, Any] = {
        "modelId": conversation.model_id,
        "messages": [
            {"role": role, "content": [{"text": text}]} for role, text in conversation.messages
        ],
    }
    if conversation.system:
        system: list[dict[str, Any]] = [{"text": text} for text in conversation.system]
        if conversation.cache_system:
            # A separate block: everything before it is the cached prefix.
            system.append({"cachePoint": {"type": "default"}})
        request["system"] = system
    inference: dict[str, Any] = {}
    if conversation.max_tokens is not None:
        inference["maxTokens"] = conversation.max_tokens
    if conversation.temperature is not None:
        inference["temperature"] = _tidy_float(conversation.temperature)
    if conversation.top_p is not None:
        inference["topP"] = _tidy_float(conversation.top_p)
    if conversation.stop_sequences:
        inference["stopSequences"] = list(conversation.stop_sequences)
    if inference:
        request["inferenceConfig"] = inference
    return request


def _tidy_float(value: float) -> float:
    """0.3 rather than float32's 0.30000001192092896 on the wire."""
    return float(f"{value:.6g}")


# ---- what comes out ----------------------------------------------------------


@dataclass(frozen=True)
class Started:
    model_id: str
    # Bedrock's x-amzn-RequestId.
    request_id: str


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class UsageReport:
    """Token counts from Bedrock's metadata event, as sent; never estimated here."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    # Bedrock's own metrics.latencyMs, for logs.
    bedrock_latency_ms: int | None = None


@dataclass(frozen=True)
class Stopped:
    stop_reason: str


Event = Started | TextDelta | UsageReport | Stopped


# ---- reading one stream -------------------------------------------------------

Batch = tuple[Event, ...]


class BedrockStream:
    """One ConverseStream: iterate for batches of events; aclose() hangs up and frees its slot.

    Iterating raises botocore's exceptions when Bedrock fails (before the
    stream: ClientError with Bedrock's code; in it: EventStreamError, or a
    connection error, or StreamEndedEarly), for failures.classify().
    """

    def __init__(self, runtime: BedrockRuntime, request: Mapping[str, Any]) -> None:
        self._runtime = runtime
        # The ConverseStream request exactly as sent (modelId and the body's fields), so
        # what telemetry reports of it is what Bedrock received.
        self.request = request
        self._model_id = str(request["modelId"])
        self._body = json.dumps({k: v for k, v in request.items() if k != "modelId"}).encode()
        self._batches = self._read()
        self._released = False

    def __aiter__(self) -> BedrockStream:
        return self

    async def __anext__(self) -> Batch:
        return await self._batches.__anext__()

    async def aclose(self) -> None:
        try:
            await self._batches.aclose()
        finally:
            self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._runtime.stream_ended()

    async def _read(self) -> AsyncGenerator[Batch, None]:
        transport = self._runtime.transport
        try:
            response = await transport.send(
                "POST",
                f"/model/{percent_encode(self._model_id)}/converse-stream",
                operation="ConverseStream",
                body=self._body,
                headers=_STREAM_HEADERS,
            )
            complete = False
            try:
                yield (Started(self._model_id, response.headers.get("x-amzn-RequestId", "")),)
                translate = _Translation()
                decoder = EventStreamDecoder()
                while True:
                    try:
                        chunk = await response.content.readany()
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        raise translate_read_error(exc, transport.endpoint.url) from exc
                    if not chunk:
                        break
                    batch = translate.events(decoder.feed(chunk))
                    if batch:
                        yield batch
                    if decoder.error is not None:
                        raise decoder.error
                complete = True
                yield (translate.stopped(),)
            finally:
                if complete:
                    response.release()  # read to the end: the connection serves the next call
                else:
                    response.close()  # hang up: Bedrock sees the connection drop
        finally:
            self._release()


_STREAM_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/vnd.amazon.eventstream",
}


class _Translation:
    """Bedrock's events as ours; holds messageStop until metadata so usage precedes stop."""

    def __init__(self) -> None:
        self._stop_reason: str | None = None

    def events(self, decoded: list[tuple[str, dict[str, Any]]]) -> Batch:
        out: list[Event] = []
        for event_type, payload in decoded:
            if event_type == "contentBlockDelta":
                text = payload.get("delta", {}).get("text")
                if text:
                    out.append(TextDelta(text))
            elif event_type == "messageStop":
                self._stop_reason = payload.get("stopReason", "")
            elif event_type == "metadata":
                out.append(_usage(payload))
        return tuple(out)

    def stopped(self) -> Stopped:
        if self._stop_reason is None:
            raise StreamEndedEarly("Bedrock's stream ended before messageStop")
        return Stopped(self._stop_reason)


def _usage(metadata: Mapping[str, Any]) -> UsageReport:
    usage = metadata.get("usage", {})
    return UsageReport(
        input_tokens=int(usage.get("inputTokens", 0)),
        output_tokens=int(usage.get("outputTokens", 0)),
        total_tokens=int(usage.get("totalTokens", 0)),
        cache_read_input_tokens=int(usage.get("cacheReadInputTokens", 0)),
        cache_write_input_tokens=int(usage.get("cacheWriteInputTokens", 0)),
        bedrock_latency_ms=metadata.get("metrics", {}).get("latencyMs"),
    )


class BedrockRuntime:
    """The bedrock-runtime transport and the count of streams open on it."""

    def __init__(self, transport: AwsTransport, max_streams: int) -> None:
        self.transport = transport
        self.max_streams = max_streams
        self.open_streams = 0

    def stream(self, conversation: Conversation) -> BedrockStream:
        """A stream for the conversation; StreamsExhausted when at the cap.

        Nothing is sent until it is iterated. Use it with contextlib.aclosing
        (or run it to the end): leaving early closes the Bedrock stream.
        """
        if self.open_streams >= self.max_streams:
            raise StreamsExhausted(self.max_streams)
        self.open_streams += 1
        return BedrockStream(self, converse_request(conversation))

    def stream_ended(self) -> None:
        self.open_streams -= 1

    async def aclose(self) -> None:
        """Close the connection pool (and with it any stream still open)."""
        await self.transport.aclose()


def build_client(
    settings: Settings, session: boto3.session.Session | None = None
) -> BedrockRuntime:
    """Build the bedrock-runtime transport once, at start; BedrockSetupError if it cannot work."""
    if session is None:
        session = open_session(settings)
    attempts = settings.bedrock_max_attempts or configured_max_attempts(session)
    transport = build_transport(
        session,
        "bedrock-runtime",
        Timeouts(settings.bedrock_connect_timeout_s, settings.bedrock_read_timeout_s),
        max_attempts=attempts,
        user_agent="dualnova-inference",
    )
    logger.info(
        "bedrock-runtime client ready in %s",
        transport.endpoint.region,
        extra={"address": transport.endpoint.url},
    )
    return BedrockRuntime(transport, settings.max_streams)
