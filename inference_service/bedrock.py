"""The one place that calls Bedrock for inference: a conversation in, typed stream events out.

Its sibling bedrock_probes.py makes the unbilled calls health needs (runtime
and control plane) from the same AWS session; no other module imports boto3.

boto3 is blocking, so each ConverseStream runs on a daemon thread of its own
(a "pump"). The thread iterates botocore's EventStream and hands each event to
the event loop with call_soon_threadsafe; the async side yields them as
Started, TextDelta, UsageReport and Stopped, in the order the Chat contract
promises. BedrockRuntime counts the pumps alive and refuses a stream over the
cap (StreamsExhausted): a pump holds its place until its thread really ends,
not merely until its caller leaves, so the cap bounds threads and sockets.

When the consumer stops early (the caller cancelled, a deadline passed), the
stream is shut down so the HTTP connection to Bedrock drops and Bedrock stops
generating (and billing): the event loop shuts the socket for reading, which
wakes a thread blocked on a read at once, and the thread then closes the
response. A thread still inside converse_stream (connecting, or waiting for
the response headers) cannot be woken: it ends when botocore's timeouts fire,
and being a daemon it never holds the process at exit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.eventstream import EventStream
from botocore.exceptions import BotoCoreError

from inference_service.config import Settings

logger = logging.getLogger(__name__)

USER = "user"
ASSISTANT = "assistant"


class BedrockSetupError(Exception):
    """The Bedrock client cannot be built (no region, no credentials); the message says which."""


class StreamEndedEarly(Exception):
    """Bedrock's event stream ended without messageStop: the answer is incomplete."""


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


# ---- the bridge from a blocking EventStream to asyncio ------------------------


class _StreamHandle:
    """Shared by the event loop and one pump thread: lets the loop stop the thread's stream."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stream: EventStream | None = None
        self.closed = False

    def attach(self, stream: EventStream) -> bool:
        """Record the stream; False when the consumer already left (the caller closes it)."""
        with self._lock:
            if self.closed:
                return False
            self._stream = stream
            return True

    def close(self) -> None:
        """Called from the event loop; never blocks.

        Shutting the socket for reading wakes the pump thread if it is blocked
        on a read; closing the response (which would wait for that read to
        finish) is left to the thread itself.
        """
        with self._lock:
            self.closed = True
            stream = self._stream
        if stream is None:
            return
        raw = getattr(stream, "_raw_stream", None)  # botocore keeps urllib3's response here
        shutdown = getattr(raw, "shutdown", None)  # urllib3 >= 2.3
        if shutdown is None:
            return  # the thread still stops at its next event
        try:
            shutdown()
        except (ValueError, RuntimeError, OSError):
            # Already released or closed: nothing is blocked on it.
            pass


@dataclass
class _Pump:
    """Runs on its own thread: one converse_stream call, events pushed to the loop."""

    client: Any
    request: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[object]
    handle: _StreamHandle = field(default_factory=_StreamHandle)

    def run(self) -> None:
        if self.handle.closed:  # the consumer left before this thread got going: no paid call
            return
        stream: EventStream | None = None
        try:
            response = self.client.converse_stream(**self.request)
            stream = response["stream"]
            if not self.handle.attach(stream):
                return
            request_id = response.get("ResponseMetadata", {}).get("RequestId", "")
            self._put(Started(model_id=self.request["modelId"], request_id=request_id))
            for item in self._translate(stream):
                if self.handle.closed:
                    return
                self._put(item)
        except Exception as exc:  # not swallowed: handed to the consumer, which maps it
            if not self.handle.closed:
                self._put(_Failure(exc))
        finally:
            if stream is not None:
                stream.close()
            self._put(_END)

    def _translate(self, stream: EventStream) -> Iterator[Event]:
        """Bedrock events as ours; holds messageStop until metadata so usage precedes stop."""
        stop_reason: str | None = None
        for event in stream:
            if "contentBlockDelta" in event:
                text = event["contentBlockDelta"].get("delta", {}).get("text")
                if text:
                    yield TextDelta(text)
            elif "messageStop" in event:
                stop_reason = event["messageStop"].get("stopReason", "")
            elif "metadata" in event:
                yield _usage(event["metadata"])
        if self.handle.closed:
            return
        if stop_reason is None:
            raise StreamEndedEarly("Bedrock's stream ended before messageStop")
        yield Stopped(stop_reason)

    def _put(self, item: object) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:
            # The loop is closed (server shut down): nobody is listening any more.
            self.handle.closed = True


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


@dataclass(frozen=True)
class _Failure:
    error: BaseException


_END = object()


class StreamEvents:
    """The event loop's side of one pump; aclose() (or leaving early) hangs up on Bedrock."""

    def __init__(self, pump: _Pump) -> None:
        self._pump = pump
        self._done = False

    def __aiter__(self) -> StreamEvents:
        return self

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        item = await self._pump.queue.get()
        if item is _END:
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.error
        return item  # type: ignore[return-value]

    async def aclose(self) -> None:
        self._done = True
        self._pump.handle.close()


class BedrockRuntime:
    """A built bedrock-runtime client and the pump threads that stream from it."""

    def __init__(self, client: Any, max_streams: int) -> None:
        self._client = client
        self.max_streams = max_streams
        # Pumps whose threads have not ended; the threads remove themselves.
        self._lock = threading.Lock()
        self._running: set[_StreamHandle] = set()

    def stream(self, conversation: Conversation) -> StreamEvents:
        """Start the call now and return its events; StreamsExhausted when at the cap.

        Iterating raises botocore's exception when Bedrock fails. Use it with
        contextlib.aclosing (or run it to the end): leaving early closes the
        Bedrock stream.
        """
        pump = _Pump(
            self._client,
            converse_request(conversation),
            asyncio.get_running_loop(),
            asyncio.Queue(),
        )
        with self._lock:
            if len(self._running) >= self.max_streams:
                raise StreamsExhausted(self.max_streams)
            self._running.add(pump.handle)
        thread = threading.Thread(
            target=self._pump_then_release, args=(pump,), name="bedrock-stream", daemon=True
        )
        try:
            thread.start()
        except BaseException:
            self._release(pump.handle)
            raise
        return StreamEvents(pump)

    def _pump_then_release(self, pump: _Pump) -> None:
        try:
            pump.run()
        finally:
            self._release(pump.handle)

    def _release(self, handle: _StreamHandle) -> None:
        with self._lock:
            self._running.discard(handle)

    def close(self) -> None:
        """Close every open stream; never waits for the threads (daemons, see the module doc)."""
        with self._lock:
            running = list(self._running)
        for handle in running:
            handle.close()


def open_session(settings: Settings) -> boto3.session.Session:
    """The AWS session every Bedrock client is built from; BedrockSetupError if it cannot work.

    Region and credentials are checked here so a misconfigured service stops at
    start with one line, instead of failing on its first request.
    """
    try:
        session = boto3.session.Session(region_name=settings.aws_region)
        if not session.region_name:
            raise BedrockSetupError(
                "no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION,"
                " or a region in the AWS profile)"
            )
        credentials = session.get_credentials()
    except BotoCoreError as exc:
        raise BedrockSetupError(f"cannot load the AWS configuration: {exc}") from exc
    if credentials is None:
        raise BedrockSetupError(
            "no AWS credentials found in the default chain (environment, AWS_PROFILE,"
            " SSO, web identity, container or instance role)"
        )
    return session


def build_client(
    settings: Settings, session: boto3.session.Session | None = None
) -> BedrockRuntime:
    """Build the bedrock-runtime client once, at start; BedrockSetupError if it cannot work."""
    if session is None:
        session = open_session(settings)
    retries: dict[str, Any] = {"mode": "standard"}
    if settings.bedrock_max_attempts is not None:
        retries["total_max_attempts"] = settings.bedrock_max_attempts
    config = Config(
        read_timeout=settings.bedrock_read_timeout_s,
        connect_timeout=settings.bedrock_connect_timeout_s,
        max_pool_connections=settings.max_streams,
        retries=retries,
        tcp_keepalive=True,
        user_agent_extra="dualnova-inference",
    )
    try:
        client = session.client("bedrock-runtime", config=config)
    except BotoCoreError as exc:
        raise BedrockSetupError(f"cannot build the bedrock-runtime client: {exc}") from exc
    logger.info(
        "bedrock-runtime client ready in %s",
        session.region_name,
        extra={"address": client.meta.endpoint_url},
    )
    return BedrockRuntime(client, settings.max_streams)
