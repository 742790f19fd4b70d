"""What `dualnova chat` shows: both answers as they stream, then tokens and the trace id.

run_chat() is the whole of `dualnova chat` short of argument parsing, so the
demo (dualnova.dev.demo) prints exactly what a person typing the command sees.
Two views of the same stream:
- a terminal gets Micro and Pro side by side, updating live (rich Live);
- a pipe or file gets plain lines tagged by route, written when a route's
  text reaches a newline or the route ends, so the output is the same on
  every run and greps well.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol, TextIO

import grpc
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dualnova.chat.v1 import chat_pb2
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.routes import ROUTES

__all__ = [
    "EXIT_BOTH_FAILED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "ORDERINGS",
    "ChatState",
    "build_request",
    "run_chat",
]

EXIT_OK = 0  # at least one route answered
EXIT_BOTH_FAILED = 1  # no route answered, or the call failed midway
EXIT_USAGE = 2  # bad arguments, or the gateway refused the request as invalid
EXIT_UNREACHABLE = 3  # no gateway at the target

ORDERINGS = {
    "interleaved": gateway_pb2.ORDERING_INTERLEAVED,
    "micro-first": gateway_pb2.ORDERING_MICRO_FIRST,
}
# Column titles: the route names as people read them (Micro, Pro).
TITLES = {route: route.capitalize() for route in ROUTES}
TOKEN_COLUMNS = ("route", "input", "output", "total", "cache read", "cache write")


@dataclass
class RouteState:
    """Everything one route has sent so far."""

    model_id: str = ""
    text: str = ""
    usage: chat_pb2.Usage | None = None
    stop_reason: str = ""
    error: gateway_pb2.RouteError | None = None

    @property
    def ended(self) -> bool:
        return bool(self.stop_reason) or self.error is not None


@dataclass
class ChatState:
    """The DualChat stream folded into per-route state and the summary."""

    routes: dict[str, RouteState] = field(
        default_factory=lambda: {route: RouteState() for route in ROUTES}
    )
    summary: gateway_pb2.Summary | None = None
    trace_id: str = ""
    events: int = 0

    def apply(self, event: gateway_pb2.DualChatResponse) -> None:
        self.events += 1
        kind = event.WhichOneof("event")
        if kind == "summary":
            self.summary = event.summary
            self.trace_id = event.summary.trace_id or self.trace_id
            return
        route = self.routes.setdefault(event.route, RouteState())
        if kind == "start":
            route.model_id = event.start.model_id
        elif kind == "delta":
            route.text += event.delta.text
        elif kind == "usage":
            route.usage = event.usage
        elif kind == "stop":
            route.stop_reason = event.stop.stop_reason or "stopped"
        elif kind == "error":
            route.error = event.error

    @property
    def answered(self) -> bool:
        """Whether at least one route finished its answer."""
        return any(route.stop_reason for route in self.routes.values())

    def usage_rows(self) -> list[tuple[str, chat_pb2.Usage | None]]:
        """Token table rows from the summary: each route (None if it reported none), then total."""
        if self.summary is None:
            return []
        by_route = self.summary.usage_by_route
        rows = [(name, by_route[name] if name in by_route else None) for name in ROUTES]
        return [*rows, ("total", self.summary.total)]


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
) -> gateway_pb2.DualChatRequest:
    """The DualChatRequest for one question (both routes share system and max_tokens)."""
    config = chat_pb2.InferenceConfig()
    if max_tokens is not None:
        config.max_tokens = max_tokens
    return gateway_pb2.DualChatRequest(
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, text=question)],
        system=list(system),
        inference_config=config,
        ordering=ORDERINGS[ordering],
    )


async def run_chat(
    target: str,
    question: str,
    *,
    ordering: str = "interleaved",
    system: Sequence[str] = (),
    max_tokens: int | None = None,
    timeout: float | None = None,
    token: str | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    out: TextIO | Console | None = None,
    err: TextIO | None = None,
    live: bool | None = None,
) -> int:
    """Ask the gateway at `target`, show both answers on `out`, return the exit status.

    `live` picks the view; by default live exactly when `out` is a terminal.
    Problems that are not a route's answer (no gateway, a refused request)
    go to `err` as one line. `token` goes as `authorization: Bearer <token>`;
    `credentials` (TLS) make the channel a secure one.
    """
    console = out if isinstance(out, Console) else Console(file=out or sys.stdout)
    err = err or sys.stderr
    use_live = console.is_terminal if live is None else live
    view: View = LiveView(console) if use_live else PlainView(console.file)
    request = build_request(question, ordering=ordering, system=system, max_tokens=max_tokens)
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
        view.start()
        try:
            initial = await call.initial_metadata()
            state.trace_id = dict(initial or ()).get("x-trace-id", "")
            async for event in call:
                state.apply(event)
                view.event(event, state)
        except grpc.aio.AioRpcError as error:
            view.stop(state)
            return _report_call_error(error, target, state, err)
        view.stop(state)
    return EXIT_OK if state.answered else EXIT_BOTH_FAILED


def _report_call_error(
    error: grpc.aio.AioRpcError, target: str, state: ChatState, err: TextIO
) -> int:
    code, details = error.code(), (error.details() or "").strip()
    if code == grpc.StatusCode.UNAVAILABLE and state.events == 0:
        print(
            f"dualnova: cannot reach the gateway at {target} ({details});"
            " is it running? `dualnova up` starts one",
            file=err,
        )
        return EXIT_UNREACHABLE
    if code == grpc.StatusCode.UNAUTHENTICATED:
        # The gateway's words say what to send; they never echo what was sent.
        print(f"dualnova: the gateway at {target} refused the call: {details}", file=err)
        return EXIT_USAGE
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        print(f"dualnova: the gateway refused the request: {details}", file=err)
        return EXIT_USAGE
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        print("dualnova: no complete answer before the timeout (DEADLINE_EXCEEDED)", file=err)
        return EXIT_BOTH_FAILED
    print(f"dualnova: DualChat failed: {code.name}: {details}", file=err)
    return EXIT_BOTH_FAILED


class PlainView:
    """Route-tagged lines: `[micro] text` per finished line, `[pro] error CODE: message`.

    A route's stop shows only when it is not the ordinary end_turn, e.g.
    `[micro] (stopped: max_tokens)`: the answer was cut.
    """

    def __init__(self, file: IO[str]) -> None:
        # IO[str], not TextIO: it is given rich's Console.file, typed as the wider IO[str].
        self._file = file
        self._pending = {route: "" for route in ROUTES}

    def start(self) -> None:
        pass

    def event(self, event: gateway_pb2.DualChatResponse, state: ChatState) -> None:
        kind = event.WhichOneof("event")
        route = event.route
        if kind == "delta":
            *lines, rest = (self._pending.get(route, "") + event.delta.text).split("\n")
            for line in lines:
                self._line(route, line)
            self._pending[route] = rest
        elif kind == "stop":
            self._flush(route)
            if event.stop.stop_reason != "end_turn":
                self._line(route, f"(stopped: {event.stop.stop_reason})")
        elif kind == "error":
            self._flush(route)
            self._line(route, f"error {event.error.code}: {event.error.message}")

    def stop(self, state: ChatState) -> None:
        for route in list(self._pending):
            self._flush(route)
        if state.summary is None:
            return
        self._file.write("\n" + token_table_text(state) + "\n")
        self._file.write(f"trace id: {state.trace_id}\n")
        self._file.flush()

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
        self._live.update(self._answers(state, tail=True))

    def stop(self, state: ChatState) -> None:
        self._live.stop()
        if state.events == 0:
            return
        parts: list[RenderableType] = [self._answers(state, tail=False)]
        if state.summary is not None:
            parts += [token_table(state), Text(f"trace id: {state.trace_id}")]
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
                _route_cell(state.routes[route], self._console, width, height if tail else None)
                for route in ROUTES
            )
        )
        return table


def _route_cell(route: RouteState, console: Console, width: int, height: int | None) -> Text:
    text = Text(route.text)
    status = _status_line(route)
    if height is not None:
        lines = text.wrap(console, width)
        keep = height - (1 if status else 0)
        if len(lines) > keep:
            text = Text("\n").join(lines[-keep:])
    if status:
        text.append("\n" if route.text else "")
        text.append_text(status)
    return text


def _status_line(route: RouteState) -> Text | None:
    if route.error is not None:
        return Text(f"error {route.error.code}: {route.error.message}", style="bold red")
    if route.stop_reason:
        return Text(f"({route.stop_reason})", style="dim")
    return None


def token_table(state: ChatState) -> Table:
    """The token table as a rich Table (terminal view)."""
    table = Table(title="tokens", title_justify="left")
    for index, name in enumerate(TOKEN_COLUMNS):
        table.add_column(name, justify="left" if index == 0 else "right")
    for name, usage in state.usage_rows():
        table.add_row(*_token_cells(name, usage), style="bold" if name == "total" else None)
    return table


def token_table_text(state: ChatState) -> str:
    """The token table as aligned plain text (piped view), one line per row."""
    rows = [TOKEN_COLUMNS, *(_token_cells(name, usage) for name, usage in state.usage_rows())]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TOKEN_COLUMNS))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _token_cells(name: str, usage: chat_pb2.Usage | None) -> tuple[str, ...]:
    if usage is None:
        return (name, "-", "-", "-", "-", "-")
    return (
        name,
        str(usage.input_tokens),
        str(usage.output_tokens),
        str(usage.total_tokens),
        str(usage.cache_read_input_tokens),
        str(usage.cache_write_input_tokens),
    )
