"""The three measured callers: boto3 straight to the emulator, Chat, and DualChat.

Every caller times from just before it makes the call, on the caller's own
clock: time to first token is the first text delta, total is the end of the
stream. All three send Bedrock the same request for a route (the question,
the route's model and the gateway's route defaults), so the emulator does the
same work and the difference between rows is what the pair adds.

A failed call becomes a Sample with an error instead of an exception: one
broken stream must not end a run of a thousand.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
import grpc
import urllib3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from dualnova.chat.v1 import chat_pb2
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from dualnova.routes import MICRO, PRO, ROUTES
from gateway.config import MICRO_DEFAULTS, PRO_DEFAULTS, RouteDefaults

# What the gateway adds to a bare question per route; the baseline and Chat send the same.
ROUTE_DEFAULTS: Mapping[str, RouteDefaults] = {MICRO: MICRO_DEFAULTS, PRO: PRO_DEFAULTS}

BOTO3_FAILURES = (BotoCoreError, ClientError, urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True)
class Sample:
    """One route of one call as its caller saw it."""

    route: str
    ttft_ms: float | None  # None: no text delta arrived
    total_ms: float  # to the end of the stream (or to the failure)
    error: str | None = None  # exception or status name; None for a complete answer
    # Deltas received, text and tool input alike: what CPU per 1,000 relayed deltas divides by.
    deltas: int = 0


def ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class StreamTally:
    """One Bedrock stream as its caller counts it, whichever client reads it.

    The baselines and the in-process transport read different event types but
    count the same things: the first delta's time, the deltas, and whether
    the stream reached its stop.
    """

    def __init__(self, route: str, started: float | None = None) -> None:
        self.route = route
        self.started = time.perf_counter() if started is None else started
        self.ttft_ms: float | None = None
        self.deltas = 0
        self.stopped = False

    def delta(self) -> None:
        self.deltas += 1
        if self.ttft_ms is None:
            self.ttft_ms = ms_since(self.started)

    def see(self, event: Mapping[str, Any]) -> None:
        """A botocore-parsed event: boto3's and aiobotocore's streams yield the same dicts."""
        if "contentBlockDelta" in event:
            self.delta()
        elif "messageStop" in event:
            self.stopped = True

    def failed(self, exc: BaseException) -> Sample:
        return Sample(
            self.route, self.ttft_ms, ms_since(self.started), type(exc).__name__, self.deltas
        )

    def ended(self) -> Sample:
        error = None if self.stopped else "no messageStop"
        return Sample(self.route, self.ttft_ms, ms_since(self.started), error, self.deltas)


# ---- baseline: boto3 to the emulator, one thread per stream -------------------


def client_config(*, pool_size: int, timeout_s: float) -> dict[str, Any]:
    """botocore Config arguments both baselines use (boto3's Config, aiobotocore's AioConfig)."""
    return {
        "read_timeout": timeout_s,
        "connect_timeout": min(timeout_s, 10.0),
        "max_pool_connections": pool_size,
        "retries": {"mode": "standard"},
        "tcp_keepalive": True,
        "user_agent_extra": "dualnova-bench",
    }


def bedrock_client(aws_env: Mapping[str, str], *, pool_size: int, timeout_s: float) -> Any:
    """A bedrock-runtime client set up as the inference service sets up its own.

    `aws_env` is EmulatorHandle.aws_env(): endpoint, region and the emulator's
    keys, passed explicitly so a developer's AWS profile never takes part.
    The connection pool is sized to the load so no thread waits for a socket.
    """
    session = boto3.session.Session(
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
        region_name=aws_env["AWS_REGION"],
    )
    config = Config(**client_config(pool_size=pool_size, timeout_s=timeout_s))
    return session.client(
        "bedrock-runtime",
        endpoint_url=aws_env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"],
        config=config,
    )


def converse_kwargs(model_id: str, question: str, route: str) -> dict[str, Any]:
    """converse_stream's arguments: what the inference service sends for this route's Chat."""
    defaults = ROUTE_DEFAULTS[route]
    return {
        "modelId": model_id,
        "messages": [{"role": "user", "content": [{"text": question}]}],
        "inferenceConfig": {"maxTokens": defaults.max_tokens, "temperature": defaults.temperature},
    }


def boto3_stream(
    client: Any, route: str, kwargs: Mapping[str, Any], started: float | None = None
) -> Sample:
    """One converse_stream, read to its end on this thread. `started` defaults to now."""
    tally = StreamTally(route, started)
    try:
        response = client.converse_stream(**kwargs)
        for event in response["stream"]:
            tally.see(event)
    except BOTO3_FAILURES as exc:
        return tally.failed(exc)
    return tally.ended()


def boto3_dual(
    client: Any,
    kwargs_by_route: Mapping[str, Mapping[str, Any]],
    helper: ThreadPoolExecutor,
    started: float | None = None,
) -> list[Sample]:
    """Micro and Pro at once, as the seed app asked them: Micro on a helper thread, Pro here.

    Both routes are timed from the same start (default now), as DualChat's routes are.
    """
    started = time.perf_counter() if started is None else started
    micro = helper.submit(boto3_stream, client, "micro", kwargs_by_route["micro"], started)
    pro = boto3_stream(client, "pro", kwargs_by_route["pro"], started)
    return [micro.result(), pro]


# ---- the pair: grpc.aio, many streams on one channel ---------------------------


def _question(question: str) -> chat_pb2.Message:
    return chat_pb2.Message(role=chat_pb2.ROLE_USER, text=question)


def chat_request(route: str, question: str) -> inference_pb2.ChatRequest:
    """Chat for one route, with the settings the gateway would give that route."""
    defaults = ROUTE_DEFAULTS[route]
    return inference_pb2.ChatRequest(
        model=route,
        messages=[_question(question)],
        inference_config=chat_pb2.InferenceConfig(
            max_tokens=defaults.max_tokens, temperature=defaults.temperature
        ),
    )


def dual_chat_request(question: str) -> gateway_pb2.DualChatRequest:
    """A bare question: the gateway applies its route defaults."""
    return gateway_pb2.DualChatRequest(messages=[_question(question)])


async def chat_stream(
    stub: inference_pb2_grpc.InferenceServiceStub,
    route: str,
    request: inference_pb2.ChatRequest,
    timeout_s: float,
) -> Sample:
    """One Chat on the inference service, read to its end."""
    started = time.perf_counter()
    ttft: float | None = None
    deltas = 0
    stopped = False
    try:
        async for response in stub.Chat(request, timeout=timeout_s):
            kind = response.WhichOneof("event")
            if kind == "delta":
                deltas += 1
                if ttft is None:
                    ttft = ms_since(started)
            elif kind == "stop":
                stopped = True
    except grpc.aio.AioRpcError as error:
        return Sample(route, ttft, ms_since(started), error.code().name, deltas)
    return Sample(route, ttft, ms_since(started), None if stopped else "no stop event", deltas)


async def dual_chat(
    stub: gateway_pb2_grpc.GatewayStub,
    request: gateway_pb2.DualChatRequest,
    timeout_s: float,
) -> list[Sample]:
    """One DualChat, read to its end; a Sample per route, each ending at that route's stop."""
    started = time.perf_counter()
    first: dict[str, float] = {}
    deltas: Counter[str] = Counter()
    ended: dict[str, float] = {}
    route_errors: dict[str, str] = {}
    summary = False
    failure: str | None = None
    try:
        async for response in stub.DualChat(request, timeout=timeout_s):
            kind = response.WhichOneof("event")
            if kind == "delta":
                deltas[response.route] += 1
                if response.route not in first:
                    first[response.route] = ms_since(started)
            elif kind == "tool_input_delta":
                # An event relayed like a text delta (boto3's tally counts both, too).
                deltas[response.route] += 1
            elif kind == "stop":
                ended[response.route] = ms_since(started)
            elif kind == "error":
                route_errors[response.route] = response.error.code or "route error"
            elif kind == "summary":
                summary = True
    except grpc.aio.AioRpcError as rpc_error:
        failure = rpc_error.code().name
    finished = ms_since(started)
    samples = []
    for route in ROUTES:
        error = failure or route_errors.get(route)
        if error is None and route not in ended:
            error = "no stop event"
        if error is None and not summary:
            error = "no summary"
        samples.append(
            Sample(route, first.get(route), ended.get(route, finished), error, deltas[route])
        )
    return samples
