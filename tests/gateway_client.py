"""A DualChat caller for tests: one call through the generated stub, collected per route.

Every test that talks to a real gateway uses this, so "what the caller
received" means the same thing in the end-to-end, tracing, metrics and
CloudWatch tests.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import grpc

from dualnova.chat.v1 import chat_pb2
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc


@dataclass
class RouteResult:
    events: list[str] = field(default_factory=list)  # event kinds in arrival order
    start: chat_pb2.Start | None = None
    text: str = ""
    usage: chat_pb2.Usage | None = None
    stop: chat_pb2.Stop | None = None
    error: gateway_pb2.RouteError | None = None


@dataclass
class DualResult:
    order: list[tuple[str, str]]  # (route, event kind) as received, summary last
    routes: dict[str, RouteResult]
    summary: gateway_pb2.Summary
    trace_header: str | None  # the x-trace-id initial metadata
    responses: list[gateway_pb2.DualChatResponse] = field(default_factory=list)  # as received


def user(text: str) -> chat_pb2.Message:
    return chat_pb2.Message(role=chat_pb2.ROLE_USER, text=text)


def ask(question: str) -> gateway_pb2.DualChatRequest:
    """A DualChatRequest of one user message and nothing else."""
    return gateway_pb2.DualChatRequest(messages=[user(question)])


def dual_chat(
    address: str,
    request: gateway_pb2.DualChatRequest,
    *,
    metadata: tuple[tuple[str, str], ...] = (),
    timeout: float = 30,
) -> DualResult:
    """One DualChat; fails unless the stream ends with exactly one summary, last."""
    with grpc.insecure_channel(address) as channel:
        call = gateway_pb2_grpc.GatewayStub(channel).DualChat(
            request, timeout=timeout, metadata=metadata
        )
        order: list[tuple[str, str]] = []
        routes: dict[str, RouteResult] = defaultdict(RouteResult)
        summary = None
        responses = []
        for response in call:
            responses.append(response)
            kind = response.WhichOneof("event")
            order.append((response.route, kind))
            if kind == "summary":
                summary = response.summary
                continue
            route = routes[response.route]
            route.events.append(kind)
            if kind == "delta":
                route.text += response.delta.text
            else:
                setattr(route, kind, getattr(response, kind))
        assert summary is not None, "the stream ended without a summary"
        assert order[-1] == ("", "summary"), "the summary must be the last event"
        header = dict(call.initial_metadata()).get("x-trace-id")
    return DualResult(order, dict(routes), summary, header, responses)


# Route defaults the gateway applies (design: Micro 1024 @ 0.3, Pro 2048 @ 0.5), as
# Bedrock's inferenceConfig: stated here independently of gateway.config on purpose.
ROUTE_DEFAULTS = {
    "micro": {"maxTokens": 1024, "temperature": 0.3},
    "pro": {"maxTokens": 2048, "temperature": 0.5},
}


def route_converse_request(
    route: str, question: str, system: list[str] | None = None, **config: Any
) -> dict[str, Any]:
    """The Converse request a one-question DualChat should make Bedrock see on `route`."""
    request: dict[str, Any] = {
        "messages": [{"role": "user", "content": [{"text": question}]}],
        "inferenceConfig": {**ROUTE_DEFAULTS[route], **config},
    }
    if system:
        request["system"] = [{"text": text} for text in system]
    return request


# ---- many DualChats at once: grpc.aio -------------------------------------------


@dataclass
class RouteSeen:
    """One route of an async DualChat as its caller read it."""

    kinds: list[str] = field(default_factory=list)  # every event's kind, in order
    text: str = ""
    request_id: str = ""
    usage: chat_pb2.Usage | None = None
    error: gateway_pb2.RouteError | None = None


@dataclass
class DualChatSeen:
    """One async DualChat read to its end (load and replica tests run hundreds at once)."""

    question: str
    started: float  # time.monotonic() when the call began
    routes: dict[str, RouteSeen] = field(default_factory=dict)
    summaries: int = 0
    summary_last: bool = False
    status: str = "OK"  # the RPC's own status name


async def read_dual_chat(
    stub: gateway_pb2_grpc.GatewayStub, text: str, timeout: float
) -> DualChatSeen:
    """Ask `text` on a grpc.aio stub and record every event; the RPC's failure as its status."""
    seen = DualChatSeen(text, started=time.monotonic())
    request = gateway_pb2.DualChatRequest(messages=[user(text)])
    kind = None
    try:
        async for event in stub.DualChat(request, timeout=timeout):
            kind = event.WhichOneof("event")
            if kind == "summary":
                seen.summaries += 1
                continue
            route = seen.routes.setdefault(event.route, RouteSeen())
            route.kinds.append(kind)
            if kind == "delta":
                route.text += event.delta.text
            elif kind == "start":
                route.request_id = event.start.request_id
            elif kind == "usage":
                route.usage = event.usage
            elif kind == "error":
                route.error = event.error
    except grpc.aio.AioRpcError as error:
        seen.status = error.code().name
    seen.summary_last = kind == "summary"
    return seen
