"""What `dualnova chat` shows: both answers as they stream, then tokens and the trace id.

run_chat() is the whole of `dualnova chat` short of argument parsing, so the
demo (dualnova.dev.demo) prints exactly what a person typing the command sees.
Two views of the same stream:
- a terminal gets Micro and Pro side by side, updating live (rich Live);
- a pipe or file gets plain lines tagged by route, written when a route's
  text reaches a newline or the route ends, so the output is the same on
  every run and greps well;
- and, asked for (--json), one JSON object per event (dualnova.cli.ndjson).
Tool calls show as `tool call NAME(id ID) INPUT` lines (the input growing as
its fragments arrive, in the live view), a guardrail that intervened as one
`guardrail intervened: ...` line per route. A grounded call's passages come
first (dualnova.cli.sources_view has the words), a citation is a line of its
route, a route the repl's person stopped is marked "(stopped)". Both people's
views end with one table: per route the stop reason, time to first token,
latency, tokens and the estimated cost, then the total, then the trace id. A call cut
short (the timeout, Ctrl-C) still ends on a whole line, each unfinished route
marked "(cut off: ...)"; a reader that goes away (`| head`) ends the call.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol, TextIO

import grpc
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dualnova.chat.v1 import chat_pb2
from dualnova.cli.grounding_args import GroundingChoice
from dualnova.cli.ndjson import JsonView
from dualnova.cli.peer import describe_not_a_gateway
from dualnova.cli.sources_view import citation_line, cost_cell, passage_line, retrieval_header
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.routes import MEDIA_ROUTES, ROUTES

__all__ = [
    "EXIT_BOTH_FAILED",
    "EXIT_CLOSED_PIPE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "ORDERINGS",
    "ROUTE_COLUMNS",
    "ChatState",
    "ChatRequestOptions",
    "LiveView",
    "PlainView",
    "RouteOptions",
    "RouteState",
    "ToolCall",
    "View",
    "build_request",
    "describe_call_error",
    "guardrail_line",
    "route_table",
    "retrieval_lines",
    "route_table_text",
    "run_chat",
    "stop_reason_name",
]

EXIT_OK = 0  # at least one route answered
EXIT_BOTH_FAILED = 1  # no route answered, or the call failed midway
EXIT_USAGE = 2  # bad arguments, or the gateway refused the request as invalid
EXIT_UNREACHABLE = 3  # no gateway at the target (nothing there, or something else answered)
EXIT_TIMEOUT = 4  # --timeout ended the call before both routes ended
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as a shell reports it)
EXIT_CLOSED_PIPE = 141  # stdout's reader went away (128 + SIGPIPE, as for other tools)

ORDERINGS = {
    "interleaved": gateway_pb2.ORDERING_INTERLEAVED,
    "micro-first": gateway_pb2.ORDERING_MICRO_FIRST,
}
# Column titles: the route names as people read them (Micro, Pro).
TITLES = {route: route.capitalize() for route in ROUTES}
TOKEN_COLUMNS = ("input", "output", "total", "cache read", "cache write")
# The final table: how each route ended and how fast, then its tokens and estimated cost.
COST_COLUMN = "est. cost"
ROUTE_COLUMNS = ("route", "stop", "first token", "latency", *TOKEN_COLUMNS, COST_COLUMN)
# What a route the caller stopped (the repl's stop keys) shows, in its cell and the table.
STOPPED = "stopped"


@dataclass
class ToolCall:
    """One tool call of a route: its block, id, name, and the input's fragments so far."""

    index: int
    tool_use_id: str
    name: str
    input_json: str = ""
    done: bool = False

    def line(self) -> str:
        """`tool call get_weather(id tooluse_...) {"city":"emulated"}`."""
        return f"tool call {self.name}(id {self.tool_use_id}) {self.input_json}".rstrip()


@dataclass
class RouteState:
    """Everything one route has sent so far."""

    model_id: str = ""
    # The route's text blocks, a line break between two (what a conversation carries on).
    text: str = ""
    # The answer's blocks in arrival order: (block index, its text) or a tool call.
    parts: list[tuple[int, str] | ToolCall] = field(default_factory=list)
    usage: chat_pb2.Usage | None = None
    stop_reason: str = ""
    stop: chat_pb2.Stop | None = None
    error: gateway_pb2.RouteError | None = None
    guardrail: chat_pb2.GuardrailTrace | None = None
    citations: list[chat_pb2.Citation] = field(default_factory=list)
    # The caller stopped the route (route_stopped); nothing more comes for it.
    stopped: bool = False

    @property
    def ended(self) -> bool:
        return bool(self.stop_reason) or self.error is not None or self.stopped

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [part for part in self.parts if isinstance(part, ToolCall)]

    def add_text(self, delta: chat_pb2.Delta) -> None:
        last = self.parts[-1] if self.parts else None
        if isinstance(last, tuple) and last[0] == delta.content_block_index:
            self.parts[-1] = (last[0], last[1] + delta.text)
        else:
            if self.text and not self.text.endswith("\n"):
                self.text += "\n"  # a new block after a tool call: its own line
            self.parts.append((delta.content_block_index, delta.text))
        self.text += delta.text

    def tool_call(self, index: int) -> ToolCall | None:
        """The tool call in block `index`, if one started there."""
        return next((call for call in self.tool_calls if call.index == index), None)


@dataclass
class ChatState:
    """The DualChat stream folded into per-route state and the summary."""

    routes: dict[str, RouteState] = field(
        default_factory=lambda: {route: RouteState() for route in ROUTES}
    )
    summary: gateway_pb2.Summary | None = None
    # The passages both routes were grounded in (the retrieval event), when grounded.
    retrieval: chat_pb2.Retrieval | None = None
    trace_id: str = ""
    events: int = 0
    # Why the stream ended early ("timeout after 0.5 s", "interrupted"); empty when it did not.
    cut: str = ""
    # The call's own failure as (status code name, one-line explanation), when it failed.
    call_error: tuple[str, str] | None = None

    def apply(self, event: gateway_pb2.DualChatResponse) -> None:
        self.events += 1
        kind = event.WhichOneof("event")
        if kind == "summary":
            self.summary = event.summary
            self.trace_id = event.summary.trace_id or self.trace_id
            return
        if kind == "retrieval":
            self.retrieval = event.retrieval
            return
        route = self.routes.setdefault(event.route, RouteState())
        if kind == "start":
            route.model_id = event.start.model_id
        elif kind == "delta":
            route.add_text(event.delta)
        elif kind == "tool_use_start":
            start = event.tool_use_start
            route.parts.append(ToolCall(start.content_block_index, start.tool_use_id, start.name))
        elif kind == "tool_input_delta":
            call = route.tool_call(event.tool_input_delta.content_block_index)
            if call is not None:
                call.input_json += event.tool_input_delta.input_json
        elif kind == "content_block_stop":
            call = route.tool_call(event.content_block_stop.content_block_index)
            if call is not None:
                call.done = True
        elif kind == "guardrail_trace":
            route.guardrail = event.guardrail_trace
        elif kind == "usage":
            route.usage = event.usage
        elif kind == "stop":
            route.stop_reason = stop_reason_name(event.stop)
            route.stop = event.stop
        elif kind == "error":
            route.error = event.error
        elif kind == "citation":
            route.citations.append(event.citation)
        elif kind == "route_stopped":
            route.stopped = True

    @property
    def answered(self) -> bool:
        """Whether at least one route finished its answer."""
        return any(route.stop_reason for route in self.routes.values())

    def cut_short(self, route: RouteState) -> bool:
        """Whether `route` was still answering when the call was cut (timeout, Ctrl-C)."""
        return bool(self.cut) and self.events > 0 and not route.ended

    def usage_rows(self) -> list[tuple[str, chat_pb2.Usage | None]]:
        """Token table rows: each route (None if it reported none), then total.

        From the summary; for a call cut short before it, from what each route
        reported (the total sums those). Empty when there is nothing to show.
        """
        if self.summary is not None:
            by_route = self.summary.usage_by_route
            rows = [(name, by_route[name] if name in by_route else None) for name in ROUTES]
            return [*rows, ("total", self.summary.total)]
        if not self.cut or not any(route.usage for route in self.routes.values()):
            return []
        rows = [(name, self.routes[name].usage) for name in ROUTES]
        return [*rows, ("total", _sum_usage(usage for _, usage in rows if usage is not None))]

    def cost(self, name: str) -> chat_pb2.Cost | None:
        """The summary's estimated cost of route `name`, or of all ("total"); None without one."""
        if self.summary is None:
            return None
        if name == "total":
            return self.summary.total_cost if self.summary.cost_by_route else None
        by_route = self.summary.cost_by_route
        return by_route[name] if name in by_route else None


def stop_reason_name(stop: chat_pb2.Stop) -> str:
    """Why a route stopped, from Stop.reason (end_turn, tool_use, ...); Bedrock's own word
    when this version does not know it."""
    if stop.reason != chat_pb2.STOP_REASON_UNSPECIFIED:
        return chat_pb2.StopReason.Name(stop.reason).removeprefix("STOP_REASON_").lower()
    return stop.stop_reason or "stopped"


def guardrail_line(trace: chat_pb2.GuardrailTrace) -> str:
    """`guardrail intervened: topicPolicy Forbidden (DENY, BLOCKED)`: what Bedrock's trace says
    blocked or masked content, in one line."""
    try:
        found = list(_interventions(json.loads(trace.trace_json), ""))
    except ValueError:
        found = []
    return "guardrail intervened" + (f": {'; '.join(dict.fromkeys(found))}" if found else "")


def _interventions(node: object, policy: str) -> Iterator[str]:
    """Each assessed item whose action did something, as `policy name (type, action)`."""
    if isinstance(node, list):
        for item in node:
            yield from _interventions(item, policy)
    elif isinstance(node, dict):
        action = node.get("action")
        if isinstance(action, str) and action != "NONE" and policy:
            label = node.get("name") or node.get("match") or node.get("type") or ""
            kinds = [str(node["type"])] if "type" in node and node["type"] != label else []
            detail = ", ".join([*kinds, action])
            yield f"{policy} {label} ({detail})".replace("  ", " ")
            return
        for key, value in node.items():
            yield from _interventions(value, key if key.endswith("Policy") else policy)


@dataclass(frozen=True)
class RouteOptions:
    """One route's settings that replace the shared ones (the request's RouteOverride)."""

    system: Sequence[str] = ()
    temperature: float | None = None
    max_tokens: int | None = None
    # chat_pb2.Latency; replaces the shared options for this route.
    latency: chat_pb2.Latency | None = None


@dataclass(frozen=True)
class ChatRequestOptions:
    """What a DualChat carries beyond the question and the generation settings."""

    # Image and document blocks, for the routes whose models take them (Pro).
    attachments: Sequence[chat_pb2.ContentBlock] = ()
    tool_config: chat_pb2.ToolConfig | None = None
    guardrail_config: chat_pb2.GuardrailConfig | None = None
    # chat_pb2.Latency for both routes, unless a route's RouteOptions.latency says otherwise.
    latency: chat_pb2.Latency | None = None
    # One Retrieve for both routes (but those it skips): --ground / --knowledge-base.
    grounding: GroundingChoice | None = None


class View(Protocol):
    def start(self) -> None: ...
    def event(self, event: gateway_pb2.DualChatResponse, state: ChatState) -> None: ...
    def stop(self, state: ChatState) -> None: ...


def build_request(
    question: str,
    *,
    ordering: str = "interleaved",
    system: Sequence[str] = (),
    max_tokens: int | None = None,
    temperature: float | None = None,
    overrides: Mapping[str, RouteOptions] | None = None,
    history: Sequence[chat_pb2.Message] = (),
    extra: ChatRequestOptions | None = None,
) -> gateway_pb2.DualChatRequest:
    """The DualChatRequest for one question after `history` (earlier turns, oldest first).

    system, max_tokens and temperature are shared; `overrides` (by route name)
    replace them for one route, field by field, as the gateway merges them.
    `extra`'s attachments join the question in the media routes' own
    messages (Micro is text only); its tools, guardrail and latency are shared.
    """
    request = gateway_pb2.DualChatRequest(
        messages=[*history, chat_pb2.Message(role=chat_pb2.ROLE_USER, text=question)],
        system=list(system),
        inference_config=_inference_config(max_tokens, temperature),
        ordering=ORDERINGS[ordering],
    )
    for route, options in (overrides or {}).items():
        override = getattr(request, route)  # the RouteOverride field named like the route
        override.system.extend(options.system)
        override.inference_config.CopyFrom(
            _inference_config(options.max_tokens, options.temperature)
        )
        if options.latency is not None:
            override.options.latency = options.latency
    if extra is not None:
        _add_extra(request, extra)
    return request


def _add_extra(request: gateway_pb2.DualChatRequest, extra: ChatRequestOptions) -> None:
    if extra.tool_config is not None:
        request.tool_config.CopyFrom(extra.tool_config)
    if extra.guardrail_config is not None:
        request.guardrail_config.CopyFrom(extra.guardrail_config)
    if extra.latency is not None:
        request.options.latency = extra.latency
    if extra.grounding is not None:
        request.grounding.CopyFrom(extra.grounding.grounding)
        for route in sorted(extra.grounding.skip):
            getattr(request, route).skip_grounding = True
    if extra.attachments:
        for route in sorted(MEDIA_ROUTES):
            override = getattr(request, route)
            if not override.messages:
                override.messages.extend(request.messages)
            override.messages[-1].content.extend(extra.attachments)


def _inference_config(
    max_tokens: int | None, temperature: float | None
) -> chat_pb2.InferenceConfig:
    config = chat_pb2.InferenceConfig()
    if max_tokens is not None:
        config.max_tokens = max_tokens
    if temperature is not None:
        config.temperature = temperature
    return config


async def run_chat(
    target: str,
    question: str,
    *,
    ordering: str = "interleaved",
    system: Sequence[str] = (),
    max_tokens: int | None = None,
    temperature: float | None = None,
    overrides: Mapping[str, RouteOptions] | None = None,
    timeout: float | None = None,
    token: str | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    out: TextIO | Console | None = None,
    err: TextIO | None = None,
    live: bool | None = None,
    json_lines: bool = False,
    extra: ChatRequestOptions | None = None,
) -> int:
    """Ask the gateway at `target`, show both answers on `out`, return the exit status.

    `live` picks the view; by default live exactly when `out` is a terminal;
    `json_lines` writes NDJSON instead (dualnova.cli.ndjson). Problems that
    are not a route's answer (no gateway, a refused request, the timeout) go
    to `err` as one line. `token` goes as `authorization: Bearer <token>`;
    `credentials` (TLS) make the channel a secure one. A closed `out` (its
    reader went away) cancels the call and returns EXIT_CLOSED_PIPE.
    """
    console = out if isinstance(out, Console) else Console(file=out or sys.stdout)
    err = err or sys.stderr
    view = _pick_view(console, live, json_lines)
    request = build_request(
        question,
        ordering=ordering,
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
        overrides=overrides,
        extra=extra,
    )
    state = ChatState()

    channel = (
        grpc.aio.insecure_channel(target)
        if credentials is None
        else grpc.aio.secure_channel(target, credentials)
    )
    async with channel:
        metadata = () if token is None else (("authorization", f"Bearer {token}"),)
        call = gateway_pb2_grpc.GatewayStub(channel).DualChat(
            request, timeout=timeout, metadata=metadata
        )
        try:
            failure = await _follow(call, view, state)
            if failure is None:
                view.stop(state)
                return EXIT_OK if state.answered else EXIT_BOTH_FAILED
            status, message = await describe_call_error(
                failure, channel, target, state.events, timeout=timeout, metadata=metadata
            )
            if failure.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                state.cut = "timeout" if timeout is None else f"timeout after {timeout:g} s"
            state.call_error = (failure.code().name, message)
            view.stop(state)
            print(f"dualnova: {message}", file=err, flush=True)
            return status
        except BrokenPipeError:
            # Nobody reads any more: stop both routes rather than stream into the void.
            call.cancel()
            return EXIT_CLOSED_PIPE


def _pick_view(console: Console, live: bool | None, json_lines: bool) -> View:
    if json_lines:
        return JsonView(console.file)
    use_live = console.is_terminal if live is None else live
    return LiveView(console) if use_live else PlainView(console.file)


async def _follow(
    call: grpc.aio.UnaryStreamCall[gateway_pb2.DualChatRequest, gateway_pb2.DualChatResponse],
    view: View,
    state: ChatState,
) -> grpc.aio.AioRpcError | None:
    """Show the stream's events as they come; the call's failure, or None when it completed.

    Cancelled (Ctrl-C): the call is cancelled, the view ends on what arrived
    with unfinished routes marked, and the cancellation goes on up.
    """
    view.start()
    try:
        initial = await call.initial_metadata()
        trace_id = dict(initial or ()).get("x-trace-id", "")
        state.trace_id = trace_id if isinstance(trace_id, str) else trace_id.decode()
        async for event in call:
            state.apply(event)
            view.event(event, state)
    except grpc.aio.AioRpcError as error:
        return error
    except asyncio.CancelledError:
        call.cancel()
        state.cut = "interrupted"
        state.call_error = (grpc.StatusCode.CANCELLED.name, "interrupted")
        view.stop(state)
        raise
    return None


async def describe_call_error(
    error: grpc.aio.AioRpcError,
    channel: grpc.aio.Channel,
    target: str,
    events: int,
    *,
    timeout: float | None = None,
    metadata: tuple[tuple[str, str], ...] = (),
) -> tuple[int, str]:
    """The exit status and the one line (without the `dualnova: ` prefix) for a failed DualChat.

    `events` is how many arrived before it failed. What answered at a target
    that is no gateway is asked on `channel` (dualnova.cli.peer). `dualnova
    chat` and each `dualnova repl` turn say the same.
    """
    code, details = error.code(), (error.details() or "").strip()
    if code == grpc.StatusCode.UNAVAILABLE and events == 0:
        return EXIT_UNREACHABLE, (
            f"cannot reach the gateway at {target} ({details}); is it running?"
            " `dualnova up` starts one"
        )
    if code == grpc.StatusCode.UNIMPLEMENTED and events == 0:
        return EXIT_UNREACHABLE, await describe_not_a_gateway(channel, target, details, metadata)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        # The gateway's words say what to send; they never echo what was sent.
        return EXIT_USAGE, f"the gateway at {target} refused the call: {details}"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return EXIT_USAGE, f"the gateway refused the request: {details}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        limit = "" if timeout is None else f" (--timeout {timeout:g})"
        marked = "; unfinished routes are marked cut off" if events else ""
        return EXIT_TIMEOUT, f"no complete answer before the timeout{limit}{marked}"
    return EXIT_BOTH_FAILED, f"DualChat failed: {code.name}: {details}"


class PlainView:
    """Route-tagged lines: `[micro] text` per finished line, `[pro] error CODE: message`.

    A route's stop shows only when it is not the ordinary end_turn, e.g.
    `[micro] (stopped: max_tokens)`: the answer was cut. A tool call is one
    line once its input is complete, `[pro] tool call NAME(id ID) {...}`; its citations a
    `[pro] cites NAME: "..."` line each once its text ends; a
    guardrail that intervened one `[pro] guardrail intervened: ...` line. A route the call's
    end interrupted gets `[pro] (cut off: timeout after 0.5 s)`. Then the
    route table and the trace id.
    """

    def __init__(self, file: IO[str]) -> None:
        # IO[str], not TextIO: it is given rich's Console.file, typed as the wider IO[str].
        self._file = file
        self._pending = {route: "" for route in ROUTES}
        # (route, block index) of the tool calls already written.
        self._shown: set[tuple[str, int]] = set()
        # How many of each route's citations are written.
        self._cited: dict[str, int] = {}

    def start(self) -> None:
        pass

    def event(self, event: gateway_pb2.DualChatResponse, state: ChatState) -> None:
        kind = event.WhichOneof("event")
        route = event.route
        if kind == "retrieval":
            for line in retrieval_lines(event.retrieval):
                self._file.write(f"[sources] {line}\n")
            self._file.flush()
        elif kind == "route_stopped":
            self._flush(route)
            self._unfinished_calls(route, state)
            self._line(route, f"({STOPPED})")
        elif kind == "delta":
            *lines, rest = (self._pending.get(route, "") + event.delta.text).split("\n")
            for line in lines:
                self._line(route, line)
            self._pending[route] = rest
        elif kind == "tool_use_start":
            self._flush(route)
        elif kind == "content_block_stop":
            call = state.routes[route].tool_call(event.content_block_stop.content_block_index)
            if call is not None:
                self._shown.add((route, call.index))
                self._line(route, call.line())
        elif kind == "guardrail_trace":
            if event.guardrail_trace.intervened:
                self._flush(route)
                self._line(route, guardrail_line(event.guardrail_trace))
        elif kind == "stop":
            self._flush(route)
            self._unfinished_calls(route, state)
            name = stop_reason_name(event.stop)
            if name != "end_turn":
                self._line(route, f"(stopped: {name})")
        elif kind == "error":
            self._flush(route)
            self._unfinished_calls(route, state)
            self._line(route, f"error {event.error.code}: {event.error.message}")

    def stop(self, state: ChatState) -> None:
        for route in list(self._pending):
            self._flush(route)
            if route in state.routes:
                self._unfinished_calls(route, state)
            if route in state.routes and state.cut_short(state.routes[route]):
                self._line(route, f"(cut off: {state.cut})")
        if state.usage_rows():
            self._file.write("\n" + route_table_text(state) + "\n")
        if state.usage_rows() or (state.events and state.trace_id):
            self._file.write(f"trace id: {state.trace_id}\n")
        self._file.flush()

    def _unfinished_calls(self, route: str, state: ChatState) -> None:
        """A tool call whose block never stopped still shows, with what input arrived; then the
        route's citations, held until its text is whole so they never split a line of it."""
        for citation in state.routes[route].citations[self._cited.get(route, 0) :]:
            self._line(route, citation_line(citation))
        self._cited[route] = len(state.routes[route].citations)
        for call in state.routes[route].tool_calls:
            if not call.done and (route, call.index) not in self._shown:
                self._shown.add((route, call.index))
                self._line(route, call.line() + " (input unfinished)")

    def _flush(self, route: str) -> None:
        if self._pending.get(route):
            self._line(route, self._pending[route])
        self._pending[route] = ""

    def _line(self, route: str, text: str) -> None:
        self._file.write(f"[{route}] {text}".rstrip() + "\n")
        self._file.flush()


class LiveView:
    """Micro and Pro side by side, updating as deltas arrive; the full answers stay at the end."""

    def __init__(self, console: Console) -> None:
        self._console = console
        # Transient: while streaming, each column shows the tail that fits the
        # screen; once done, the complete answers are printed for scrollback.
        self._live = Live(console=console, refresh_per_second=15, transient=True)

    def start(self) -> None:
        self._live.update(self._answers(ChatState(), tail=True))
        self._live.start()

    def event(self, event: gateway_pb2.DualChatResponse, state: ChatState) -> None:
        self._live.update(Group(*_sources(state), self._answers(state, tail=True)))

    def stop(self, state: ChatState) -> None:
        self._live.stop()
        if state.events == 0:
            return
        parts: list[RenderableType] = [*_sources(state), self._answers(state, tail=False)]
        if state.usage_rows():
            parts.append(route_table(state))
        if state.trace_id:
            parts.append(Text(f"trace id: {state.trace_id}"))
        self._console.print(Group(*parts))

    def _answers(self, state: ChatState, *, tail: bool) -> Table:
        table = Table(expand=True, show_lines=False)
        for route in ROUTES:
            model = state.routes[route].model_id
            header = TITLES[route] + (f"  [dim]{model}[/dim]" if model else "")
            table.add_column(header, ratio=1, overflow="fold")
        # Borders, header and padding take 7 columns and 5 lines.
        width = max(10, (self._console.width - 7) // 2)
        height = max(3, self._console.size.height - 6)
        table.add_row(
            *(
                _route_cell(state, route, self._console, width, height if tail else None)
                for route in ROUTES
            )
        )
        return table


def retrieval_lines(retrieval: chat_pb2.Retrieval) -> list[str]:
    """The retrieval event as the views show it: a header, then a line per passage."""
    return [retrieval_header(retrieval), *(passage_line(p) for p in retrieval.passages)]


def _sources(state: ChatState) -> list[RenderableType]:
    """The passages above the answers in the live view (nothing when not grounded)."""
    if state.retrieval is None:
        return []
    return [Text("\n".join(retrieval_lines(state.retrieval)), style="green")]


def _route_cell(
    state: ChatState, name: str, console: Console, width: int, height: int | None
) -> Text:
    route = state.routes[name]
    text = _answer_text(route)
    status = _status_line(state, route)
    if height is not None:
        lines = text.wrap(console, width)
        keep = height - (1 if status else 0)
        if len(lines) > keep:
            text = Text("\n").join(lines[-keep:])
    if status:
        text.append("\n" if text.plain else "")
        text.append_text(status)
    return text


def _answer_text(route: RouteState) -> Text:
    """The route's blocks in order: its text, each tool call on a line of its own."""
    text = Text()
    for part in route.parts:
        if isinstance(part, ToolCall):
            _own_line(text, part.line(), "cyan")
        else:
            text.append(part[1])
    if route.guardrail is not None and route.guardrail.intervened:
        _own_line(text, guardrail_line(route.guardrail), "magenta")
    for citation in route.citations:
        _own_line(text, citation_line(citation), "blue")
    text.rstrip()
    return text


def _own_line(text: Text, line: str, style: str) -> None:
    if text.plain and not text.plain.endswith("\n"):
        text.append("\n")
    text.append(line + "\n", style=style)


def _status_line(state: ChatState, route: RouteState) -> Text | None:
    if route.error is not None:
        return Text(f"error {route.error.code}: {route.error.message}", style="bold red")
    if route.stop_reason:
        return Text(f"({route.stop_reason})", style="dim")
    if route.stopped:
        return Text(f"({STOPPED})", style="bold yellow")
    if state.cut_short(route):
        return Text(f"(cut off: {state.cut})", style="bold yellow")
    return None


def route_table(state: ChatState) -> Table:
    """The final table as a rich Table (terminal view): how each route ended, then tokens."""
    table = Table(title="routes", title_justify="left")
    for index, name in enumerate(ROUTE_COLUMNS):
        table.add_column(name, justify="left" if index < 2 else "right")
    for row in _route_rows(state):
        table.add_row(*row, style="bold" if row[0] == "total" else None)
    return table


def route_table_text(state: ChatState) -> str:
    """The final table as aligned plain text (piped view), one line per row.

    Columns are at least two spaces apart, and no cell holds two spaces, so
    `re.split(r"\\s{2,}", line)` takes a row apart (the total row leaves
    its stop and timing cells empty).
    """
    rows = [ROUTE_COLUMNS, *_route_rows(state)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(ROUTE_COLUMNS))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:2], widths[:2], strict=True)] + [
            cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# The names these had when the table held tokens only.
token_table = route_table
token_table_text = route_table_text


def _route_rows(state: ChatState) -> list[tuple[str, ...]]:
    rows = []
    for name, usage in state.usage_rows():
        if name == "total":
            rows.append((name, "", "", "", *_token_cells(usage), cost_cell(state.cost(name))))
            continue
        route = state.routes[name]
        stop = route.stop
        rows.append(
            (
                name,
                _stop_cell(state, route),
                _milliseconds(stop.time_to_first_token_ms if stop else None),
                _milliseconds(stop.latency_ms if stop else None),
                *_token_cells(usage),
                cost_cell(state.cost(name)),
            )
        )
    return rows


def _stop_cell(state: ChatState, route: RouteState) -> str:
    if route.error is not None:
        return f"error {route.error.code}"
    if route.stop_reason:
        return route.stop_reason
    if route.stopped:
        return STOPPED
    return "cut off" if state.cut_short(route) else "-"


def _milliseconds(value: float | None) -> str:
    # 0 is what Stop says when there was no text: no first token to time.
    return "-" if not value else f"{value:.0f} ms"


def _token_cells(usage: chat_pb2.Usage | None) -> tuple[str, ...]:
    if usage is None:
        return ("-",) * len(TOKEN_COLUMNS)
    return (
        str(usage.input_tokens),
        str(usage.output_tokens),
        str(usage.total_tokens),
        str(usage.cache_read_input_tokens),
        str(usage.cache_write_input_tokens),
    )


def _sum_usage(usages: Iterable[chat_pb2.Usage]) -> chat_pb2.Usage:
    total = chat_pb2.Usage()
    for usage in usages:
        total.input_tokens += usage.input_tokens
        total.output_tokens += usage.output_tokens
        total.total_tokens += usage.total_tokens
        total.cache_read_input_tokens += usage.cache_read_input_tokens
        total.cache_write_input_tokens += usage.cache_write_input_tokens
    return total
