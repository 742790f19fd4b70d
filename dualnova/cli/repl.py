"""`dualnova repl`: a conversation with Micro and Pro side by side, turn after turn.

Each question goes to both routes in one DualChat and both answers stream in
`dualnova chat`'s side-by-side view. One of them continues the conversation:
Micro's by default, or whichever `/continue` names (it re-decides the turn
just shown, and the turns after it); `/continue both` lets each route go on
from its own answer. Ctrl-C during an answer cancels that turn's call and the
conversation stays as it was before the question; Ctrl-C at an empty prompt
or Ctrl-D leaves (exit 0), and Ctrl-C on a half-typed line drops the line.

Exit status: 0 when the person leaves, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import grpc
from rich.console import Console

from dualnova.chat.v1 import chat_pb2
from dualnova.cli.chat import (
    add_connection_arguments,
    add_ordering_argument,
    add_tools_arguments,
    bearer_token,
    channel_credentials,
    gateway_target,
    tool_config,
)
from dualnova.cli.grounding_args import (
    GroundingChoice,
    add_grounding_arguments,
    grounding_choice,
)
from dualnova.cli.render import EXIT_OK, EXIT_USAGE, ORDERINGS, LiveView, PlainView, View
from dualnova.cli.repl_transcript import BOTH, CONTINUE_CHOICES, Conversation
from dualnova.cli.repl_turn import STOP_KEYS, TurnFailed, run_turn
from dualnova.cli.tools_file import ToolsFileError
from dualnova.routes import ROUTES
from dualnova.server.settings import ConfigError

PROMPT = "you> "
HELP = """\
Type a question to ask Micro and Pro; both answers stream side by side.
  /continue micro|pro|both  which answer continues the conversation: the last turn's and
                            the next ones' (both: each route goes on from its own answer)
  /system TEXT              the system prompt for the next turns (/system alone clears it)
  /order interleaved|micro-first
                            how the two answers stream
  /clear                    forget the conversation (the settings above stay)
  /save FILE                write the conversation as JSON: every turn with both answers,
                            which one continued, tokens and timings
  /help                     this list
  /quit                     leave (so do Ctrl-D and Ctrl-C at an empty prompt)
While the answers stream, m stops Micro and p stops Pro: the other goes on, and the
stopped route's partial answer never continues the conversation (the other's does).
Ctrl-C while the answers stream cancels that question; the conversation stays as it was."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "repl",
        help="a conversation with Nova Micro and Nova Pro, turn after turn",
        description="Talk to Micro and Pro side by side; choose whose answer continues."
        " /help inside lists the commands.",
    )
    parser.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        help="the gateway, HOST:PORT or a gRPC target [DUALNOVA_GATEWAY] (default 127.0.0.1:50052)",
    )
    add_connection_arguments(parser)
    parser.add_argument(
        "--system", metavar="TEXT", help="a system prompt for both routes (/system changes it)"
    )
    add_ordering_argument(parser)
    parser.add_argument(
        "--continue",
        dest="continue_with",
        choices=CONTINUE_CHOICES,
        default=CONTINUE_CHOICES[0],
        help="whose answer continues the conversation (default micro; /continue changes it)",
    )
    add_tools_arguments(parser)
    add_grounding_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.system is not None and not args.system.strip():
        print("dualnova repl: --system must not be empty", file=sys.stderr)
        return EXIT_USAGE
    try:
        target = gateway_target(args.gateway, "--gateway")
        credentials = channel_credentials(args)
        tools = tool_config(args)
        grounding = grounding_choice(args)
    except (ConfigError, ToolsFileError) as error:
        print(f"dualnova repl: {error}", file=sys.stderr)
        return EXIT_USAGE
    conversation = Conversation(
        system=[] if args.system is None else [args.system],
        ordering=args.ordering,
        continue_with=args.continue_with,
    )
    token = bearer_token(args.token)
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    return Repl(
        target,
        conversation,
        credentials=credentials,
        metadata=metadata,
        tools=tools,
        grounding=grounding,
    ).run()


class Repl:
    """The prompt loop: read a line, run a slash command or ask both routes."""

    def __init__(
        self,
        target: str,
        conversation: Conversation,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: tuple[tuple[str, str], ...] = (),
        stdin: TextIO | None = None,
        console: Console | None = None,
        err: TextIO | None = None,
        tools: chat_pb2.ToolConfig | None = None,
        grounding: GroundingChoice | None = None,
    ) -> None:
        self._target = target
        self._conversation = conversation
        self._credentials = credentials
        self._metadata = metadata
        self._stdin = stdin or sys.stdin
        self._console = console or Console()
        self._err = err or sys.stderr
        self._interactive = self._stdin.isatty()
        # Offered on every turn; a tool call shows in the view as in `dualnova chat`.
        self._tools = tools
        # Each question retrieves its own passages (the query is the question).
        self._grounding = grounding

    def run(self) -> int:
        if self._interactive:
            _enable_line_editing()
            self._say(
                f"Micro and Pro through the gateway at {self._target}."
                " /help lists the commands; Ctrl-D or /quit leaves."
                f" While answers stream, {_stop_keys_help()}."
            )
        # One loop and one channel for the whole conversation: the connection is reused, and
        # the runner turns Ctrl-C during a turn into that turn's cancellation.
        with asyncio.Runner() as runner:
            channel = runner.run(self._open_channel())
            try:
                return self._loop(runner, channel)
            finally:
                runner.run(channel.close())

    async def _open_channel(self) -> grpc.aio.Channel:
        # Created inside the runner's loop, which its calls then belong to.
        if self._credentials is None:
            return grpc.aio.insecure_channel(self._target)
        return grpc.aio.secure_channel(self._target, self._credentials)

    def _loop(self, runner: asyncio.Runner, channel: grpc.aio.Channel) -> int:
        while True:
            try:
                line = self._read_line()
            except KeyboardInterrupt:
                if not self._interactive:
                    return EXIT_OK
                self._console.print()
                if _typed_line():
                    continue  # Ctrl-C on a half-typed line drops the line, as a shell does
                return EXIT_OK
            except EOFError:
                if self._interactive:
                    self._console.print()
                return EXIT_OK
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if not self._command(line):
                    return EXIT_OK
                continue
            self._ask(runner, channel, line)

    def _read_line(self) -> str:
        if self._interactive:
            return input(PROMPT)
        line = self._stdin.readline()
        if not line:
            raise EOFError
        return line

    def _ask(self, runner: asyncio.Runner, channel: grpc.aio.Channel, question: str) -> None:
        conversation = self._conversation
        request = conversation.request(question)
        if self._tools is not None:
            request.tool_config.CopyFrom(self._tools)
        if self._grounding is not None:
            request.grounding.CopyFrom(self._grounding.grounding)
            for route in sorted(self._grounding.skip):
                getattr(request, route).skip_grounding = True
        view: View = (
            LiveView(self._console) if self._console.is_terminal else PlainView(self._console.file)
        )
        turn_call = run_turn(
            channel,
            request,
            view,
            target=self._target,
            ordering=conversation.ordering,
            metadata=self._metadata,
            keys=self._stdin.fileno() if self._interactive else None,
        )
        try:
            with _no_echo(self._stdin if self._interactive else None):
                turn = runner.run(turn_call)
        except KeyboardInterrupt:
            self._say("(cancelled: the conversation is as it was before this question)")
            return
        except TurnFailed as failure:
            self._problem(f"{failure}; the conversation is as it was before this question")
            return
        conversation.add(turn)
        stopped = [_title(name) for name in ROUTES if turn.routes[name].stopped]
        if stopped:
            self._say(f"stopped: {' and '.join(stopped)} (its partial answer is not continued)")
        self._say(_continuation_line(turn.continued_with, conversation.continue_with))

    def _command(self, line: str) -> bool:
        """Run one slash command; False when it is /quit."""
        name, _, argument = line.partition(" ")
        argument = argument.strip()
        conversation = self._conversation
        if name in ("/quit", "/exit"):
            return False
        if name == "/help":
            self._say(HELP)
        elif name == "/continue":
            self._continue(argument)
        elif name == "/system":
            conversation.system = [argument] if argument else []
            self._say("system prompt set" if argument else "system prompt cleared")
        elif name == "/order":
            if argument not in ORDERINGS:
                self._problem(f"/order takes one of {', '.join(ORDERINGS)}")
            else:
                conversation.ordering = argument
                self._say(f"answers stream {argument}")
        elif name == "/clear":
            forgotten = len(conversation.turns)
            conversation.clear()
            self._say(f"conversation cleared ({_turns(forgotten)} forgotten)")
        elif name == "/save":
            self._save(argument)
        else:
            self._problem(f"unknown command {name}; /help lists them")
        return True

    def _continue(self, argument: str) -> None:
        conversation = self._conversation
        if argument not in CONTINUE_CHOICES:
            self._problem(
                f"/continue takes one of {', '.join(CONTINUE_CHOICES)}"
                f" (now: {conversation.continue_with})"
            )
            return
        had_turns = bool(conversation.turns)
        last = conversation.choose(argument)
        if had_turns:
            self._say(_continuation_line(last, argument))
        elif argument == BOTH:
            self._say("each route will continue from its own answer")
        else:
            self._say(f"{_title(argument)}'s answer will continue the conversation")

    def _save(self, argument: str) -> None:
        if not argument:
            self._problem("/save takes a file name")
            return
        path = Path(argument).expanduser()
        try:
            self._conversation.save(path, self._target)
        except OSError as error:
            self._problem(f"cannot save to {path}: {error.strerror or error}")
            return
        self._say(f"saved {_turns(len(self._conversation.turns))} to {path}")

    def _say(self, text: str) -> None:
        self._console.print(text, markup=False, highlight=False, soft_wrap=True)

    def _problem(self, text: str) -> None:
        print(f"dualnova repl: {text}", file=self._err, flush=True)


def _continuation_line(continued_with: str | None, choice: str) -> str:
    """What the person reads after a turn (or a /continue): whose answer the next turn sees."""
    if continued_with is None:
        return "neither route answered: the conversation is as it was before this question"
    if continued_with == BOTH:
        return "each route continues from its own answer"
    other = next(name for name in ROUTES if name != continued_with)
    line = f"{_title(continued_with)}'s answer continues the conversation"
    if choice != continued_with:
        # The chosen answer (or, for both, the other route's) did not come.
        return f"{line} ({_title(other)} had no answer)"
    return f"{line} (/continue {other} to use {_title(other)}'s)"


@contextmanager
def _no_echo(terminal: TextIO | None) -> Iterator[None]:
    """Keys typed while answers stream are not echoed (an echoed ^C would shift the live view),
    and each arrives at once (cbreak), so a stop key needs no Enter; Ctrl-C still signals."""
    if terminal is None:
        yield
        return
    try:
        import termios
    except ImportError:  # not a POSIX terminal: nothing to turn off
        yield
        return
    descriptor = terminal.fileno()
    saved = termios.tcgetattr(descriptor)
    quiet = list(saved)
    quiet[3] &= ~(termios.ECHO | termios.ECHOCTL | termios.ICANON)
    quiet[6] = list(saved[6])
    quiet[6][termios.VMIN] = 1
    quiet[6][termios.VTIME] = 0
    termios.tcsetattr(descriptor, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(descriptor, termios.TCSANOW, saved)


def _stop_keys_help() -> str:
    """`m stops Micro, p stops Pro`."""
    return ", ".join(f"{key} stops {_title(route)}" for key, route in STOP_KEYS.items())


def _typed_line() -> str:
    """What was typed at the prompt when Ctrl-C came (readline keeps it); empty without readline."""
    readline = sys.modules.get("readline")
    return "" if readline is None else str(readline.get_line_buffer())


def _enable_line_editing() -> None:
    """Arrow keys and history at the prompt, where Python has readline."""
    try:
        import readline  # noqa: F401  (importing it is what turns it on for input())
    except ImportError:
        pass


def _turns(count: int) -> str:
    return f"{count} turn" if count == 1 else f"{count} turns"


def _title(route: str) -> str:
    """A route's name as people read it (Micro, Pro), as the view's column titles show it."""
    return route.capitalize()
