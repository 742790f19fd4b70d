"""The one place that calls Bedrock for inference: a conversation in, typed stream events out.

Its siblings in this package: converse_request.py builds the request a
Conversation becomes, probes.py makes the unbilled calls health
needs (runtime and control plane) through the same kind of transport,
session.py builds transports from the AWS session, failures.py says what a
failed call means and statuses.py how a caller is told. No other inference
module calls Bedrock (cloudwatch.py calls CloudWatch, with boto3 directly).

A ConverseStream is read on the event loop (transport.py: botocore's
credentials and signer over aiohttp), so a stream costs a socket and a few
objects, not a thread. Each network read is decoded at once (events.py) and
handed to the caller as one batch of Started, TextDelta, Cited, ToolUseStarted,
ToolInputFragment, BlockStopped, GuardrailTraced, UsageReport and Stopped, in
the order the Chat contract promises; a caller that writes slower than
Bedrock sends gets the deltas that piled up in one batch and may merge a
block's text deltas (never tool input fragments, which are relayed as sent).

BedrockRuntime counts the streams open and refuses one over the cap
(StreamsExhausted) before anything is sent. Closing a stream early (the
caller cancelled, a deadline passed) closes its HTTP connection at once, so
Bedrock stops generating and billing; a stream read to its end gives its
connection back to the pool for the next call.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from botocore.utils import percent_encode

from inference_service.bedrock.converse_request import Conversation, converse_request
from inference_service.bedrock.events import EventStreamDecoder
from inference_service.bedrock.failures import StreamEndedEarly
from inference_service.bedrock.session import call_transport, open_session
from inference_service.bedrock.transport import AwsTransport, translate_read_error
from inference_service.config import Settings

if TYPE_CHECKING:
    import boto3


class StreamsExhausted(Exception):
    """max_streams pumps are still running; raised before anything is sent to Bedrock."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} Bedrock streams are running already")
        self.limit = limit


# ---- what comes out ----------------------------------------------------------


@dataclass(frozen=True)
class Started:
    model_id: str
    # Bedrock's x-amzn-RequestId.
    request_id: str


@dataclass(frozen=True)
class TextDelta:
    text: str
    # Bedrock's contentBlockIndex of the text's block.
    index: int = 0


@dataclass(frozen=True)
class Cited:
    """A citation delta (delta.citation) of a text block, as Bedrock sent it."""

    index: int
    title: str
    # The cited text: sourceContent's texts, joined.
    source_text: str
    # Bedrock's location of the cited part, as compact JSON text ("{}" when none).
    location_json: str


@dataclass(frozen=True)
class ToolUseStarted:
    """A tool call's block begins (contentBlockStart with toolUse)."""

    index: int
    tool_use_id: str
    name: str


@dataclass(frozen=True)
class ToolInputFragment:
    """The next characters of a tool call's input JSON, exactly as Bedrock sent them."""

    index: int
    input_json: str


@dataclass(frozen=True)
class BlockStopped:
    index: int


@dataclass(frozen=True)
class GuardrailTraced:
    """metadata.trace.guardrail, as compact JSON text, and whether it says it intervened."""

    trace_json: str
    intervened: bool


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
    # What metadata reports it applied: performanceConfig.latency, serviceTier.type.
    latency: str | None = None
    service_tier: str | None = None


Event = (
    Started
    | TextDelta
    | Cited
    | ToolUseStarted
    | ToolInputFragment
    | BlockStopped
    | GuardrailTraced
    | UsageReport
    | Stopped
)


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
    """Bedrock's events as ours; holds messageStop until metadata so usage precedes stop.

    A text block's stop is held until the next block begins: an answer of one text
    block streams as it did before blocks were relayed (start, deltas, usage, stop),
    while an answer of several blocks gets every block's stop, in Bedrock's order.
    """

    def __init__(self) -> None:
        self._stop_reason: str | None = None
        self._applied: tuple[str | None, str | None] = (None, None)
        self._blocks: set[int] = set()
        self._tool_blocks: set[int] = set()
        self._held_stop: int | None = None
        # The block the last event belonged to (a held stop is always this block's).
        self._current: int | None = None

    def events(self, decoded: list[tuple[str, dict[str, Any]]]) -> Batch:
        out: list[Event] = []
        for event_type, payload in decoded:
            if event_type == "contentBlockDelta":
                index = payload.get("contentBlockIndex", 0)
                self._block(index, out)
                delta = payload.get("delta") or {}
                text = delta.get("text")
                if text:
                    out.append(TextDelta(text, index))
                elif "toolUse" in delta:
                    fragment = delta["toolUse"].get("input")
                    if fragment:
                        out.append(ToolInputFragment(index, fragment))
                elif "citation" in delta:
                    out.append(_cited(index, delta["citation"]))
            elif event_type == "contentBlockStart":
                index = payload.get("contentBlockIndex", 0)
                self._block(index, out)
                tool_use = payload.get("start", {}).get("toolUse")
                if tool_use is not None:
                    self._tool_blocks.add(index)
                    out.append(
                        ToolUseStarted(
                            index, str(tool_use.get("toolUseId", "")), str(tool_use.get("name", ""))
                        )
                    )
            elif event_type == "contentBlockStop":
                index = payload.get("contentBlockIndex", 0)
                self._block(index, out)
                if index in self._tool_blocks:
                    out.append(BlockStopped(index))
                else:
                    self._held_stop = index
            elif event_type == "messageStop":
                self._stop_reason = payload.get("stopReason", "")
                if self._held_stop is not None and len(self._blocks) > 1:
                    out.append(BlockStopped(self._held_stop))
                self._held_stop = None
            elif event_type == "metadata":
                trace = payload.get("trace", {}).get("guardrail")
                if trace is not None:
                    out.append(_guardrail(trace))
                out.append(_usage(payload))
                self._applied = (
                    payload.get("performanceConfig", {}).get("latency"),
                    payload.get("serviceTier", {}).get("type"),
                )
        return tuple(out)

    def _block(self, index: int, out: list[Event]) -> None:
        """An event of block `index`: a held stop of another block is released first."""
        if index == self._current:
            return  # the common case, each delta of the block being streamed
        self._current = index
        self._blocks.add(index)
        if self._held_stop is not None:
            out.append(BlockStopped(self._held_stop))
            self._held_stop = None

    def stopped(self) -> Stopped:
        if self._stop_reason is None:
            raise StreamEndedEarly("Bedrock's stream ended before messageStop")
        latency, tier = self._applied
        return Stopped(self._stop_reason, latency, tier)


# Assessment actions that mean the guardrail changed the exchange (blocked or masked).
_INTERVENING_ACTIONS = frozenset({"BLOCKED", "ANONYMIZED"})


def _guardrail(trace: Any) -> GuardrailTraced:
    return GuardrailTraced(
        json.dumps(trace, separators=(",", ":"), ensure_ascii=False), _intervened(trace)
    )


def _intervened(value: Any) -> bool:
    """Whether any assessment in the trace has an intervening action."""
    if isinstance(value, dict):
        if value.get("action") in _INTERVENING_ACTIONS:
            return True
        return any(_intervened(item) for item in value.values())
    if isinstance(value, list):
        return any(_intervened(item) for item in value)
    return False


def _cited(index: int, citation: Mapping[str, Any]) -> Cited:
    sources = citation.get("sourceContent") or []
    return Cited(
        index,
        str(citation.get("title", "")),
        "".join(str(source.get("text", "")) for source in sources if isinstance(source, dict)),
        json.dumps(citation.get("location") or {}, separators=(",", ":"), ensure_ascii=False),
    )


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
    transport = call_transport(settings, session, "bedrock-runtime")
    return BedrockRuntime(transport, settings.max_streams)
