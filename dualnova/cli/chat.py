"""`dualnova chat "question"`: both answers live, then a table per route and the trace id.

The question is the argument, or stdin (`-`, or no argument when stdin is not
a terminal), or `--file FILE`. `--json` writes one JSON object per event for
scripts (dualnova.cli.ndjson has the shape). The table shows per route the
stop reason, time to first token, latency, tokens and the estimated cost.

--image and --document attach files for Pro alone (Micro is text only and
gets the question's text; dualnova.cli.attachments); --tools offers tools to
both routes (dualnova.cli.tools_file); --guardrail applies a Bedrock
guardrail to both; --ground or --knowledge-base ID grounds both answers in
one Retrieve's passages (dualnova.cli.grounding_args), shown before the
answers. --latency sets both routes' latency mode; only Nova Pro
offers optimized, so `--latency optimized` shows Micro's refusal as its
error, and `--pro-latency optimized` asks Pro alone.

Exit status:
  0    at least one route answered
  1    neither route answered, or the call failed midway
  2    usage error (bad option, no question), or the gateway refused the request
  3    no gateway at the target: nothing answers there, or something that is not
       a gateway (the inference service, say) does
  4    --timeout ran out before both routes ended (unfinished routes are marked)
  130  interrupted (Ctrl-C)
  141  stdout closed by its reader (`| head`): the call is cancelled, nothing more is written
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from typing import Any

import grpc

from dualnova.chat.v1 import chat_pb2
from dualnova.cli.attachments import AttachmentError, read_attachments
from dualnova.cli.grounding_args import add_grounding_arguments, grounding_choice
from dualnova.cli.peer import DEFAULT_GATEWAY
from dualnova.cli.question import QuestionError, read_question
from dualnova.cli.render import (
    EXIT_CLOSED_PIPE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    ORDERINGS,
    ChatRequestOptions,
    RouteOptions,
    run_chat,
)
from dualnova.cli.tools_file import ToolsFileError, read_tool_config
from dualnova.routes import ROUTES
from dualnova.server.content_rules import MAX_DOCUMENT_BYTES, MAX_IMAGE_BYTES, InvalidRequest
from dualnova.server.conversation import validate_guardrail_config
from dualnova.server.settings import ConfigError, environ, read_optional_str
from dualnova.server.targets import check_target, read_target
from dualnova.server.tls_config import CertFile, read_certificates, read_key_pair

__all__ = [
    "DEFAULT_GATEWAY",
    "GATEWAY_VARIABLE",
    "TOKEN_VARIABLE",
    "add_connection_arguments",
    "add_parser",
    "add_tools_arguments",
    "bearer_token",
    "channel_credentials",
    "gateway_target",
    "positive_seconds",
    "run",
]

GATEWAY_VARIABLE = "DUALNOVA_GATEWAY"
TOKEN_VARIABLE = "DUALNOVA_TOKEN"
# InferenceConfig.max_tokens is an int32; Bedrock enforces each model's own, lower, maximum.
MAX_TOKENS_LIMIT = 2**31 - 1
LATENCIES = {"standard": chat_pb2.LATENCY_STANDARD, "optimized": chat_pb2.LATENCY_OPTIMIZED}
GUARDRAIL_TRACES = {
    "enabled": chat_pb2.GUARDRAIL_TRACE_MODE_ENABLED,
    "enabled_full": chat_pb2.GUARDRAIL_TRACE_MODE_ENABLED_FULL,
    "disabled": chat_pb2.GUARDRAIL_TRACE_MODE_DISABLED,
}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="ask Nova Micro and Nova Pro at once",
        description="Ask one question; Micro's and Pro's answers stream side by side."
        " Exit status: 0 a route answered, 1 neither did, 2 usage error, 3 no gateway at the"
        " target, 4 timeout, 130 Ctrl-C, 141 stdout closed.",
    )
    parser.add_argument(
        "question",
        nargs="?",
        help="what to ask (one user turn); - reads it from stdin, as does leaving it out"
        " when stdin is not a terminal",
    )
    parser.add_argument(
        "--file", metavar="FILE", help="read the question from FILE (any size; - is stdin)"
    )
    parser.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        help=f"the gateway, HOST:PORT or a gRPC target [{GATEWAY_VARIABLE}]"
        f" (default {DEFAULT_GATEWAY})",
    )
    add_connection_arguments(parser)
    add_ordering_argument(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per event on stdout (NDJSON, the summary last), for scripts",
    )
    parser.add_argument(
        "--system",
        action="append",
        default=[],
        metavar="TEXT",
        help="a system prompt for both routes (repeat for several)",
    )
    parser.add_argument(
        "--temperature", type=temperature, metavar="T", help="sampling temperature, 0 to 1"
    )
    parser.add_argument(
        "--max-tokens", type=max_tokens, metavar="N", help="upper bound on each answer"
    )
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="FILE",
        help=f"attach an image (png, jpeg, gif, webp by its first bytes; at most"
        f" {MAX_IMAGE_BYTES / 2**20:g} MB) for"
        " Pro alone: Micro is text only and gets the question's text (repeat for several)",
    )
    parser.add_argument(
        "--document",
        action="append",
        default=[],
        metavar="FILE",
        help="attach a document (pdf, csv, doc, docx, xls, xlsx, html, txt, md by its extension;"
        f" at most {MAX_DOCUMENT_BYTES / 2**20:g} MB) for Pro alone, named after the file"
        " (repeat for several)",
    )
    parser.add_argument(
        "--cite",
        action="store_true",
        help="ask Pro to cite the --document files (Converse citations, shown as"
        " `cites NAME` lines)",
    )
    add_tools_arguments(parser)
    add_grounding_arguments(parser)
    parser.add_argument(
        "--guardrail",
        type=guardrail,
        metavar="ID:VERSION",
        help="apply a Bedrock guardrail to both routes (VERSION a number or DRAFT)",
    )
    parser.add_argument(
        "--guardrail-trace",
        choices=tuple(GUARDRAIL_TRACES),
        help="whether Bedrock returns the guardrail's trace (default enabled with --guardrail:"
        " an intervention is shown as one line per route)",
    )
    parser.add_argument(
        "--latency",
        choices=tuple(LATENCIES),
        help="Bedrock's latency mode for both routes; only Nova Pro offers optimized, so with"
        " optimized Micro answers with Bedrock's refusal as its error: use --pro-latency"
        " optimized to ask Pro alone",
    )
    for route in ROUTES:
        group = parser.add_argument_group(
            f"{route} route", f"replace the shared settings above for {route} alone"
        )
        group.add_argument(
            f"--{route}-system",
            action="append",
            default=[],
            metavar="TEXT",
            help=f"{route}'s system prompt instead of --system (repeat for several)",
        )
        group.add_argument(f"--{route}-temperature", type=temperature, metavar="T")
        group.add_argument(f"--{route}-max-tokens", type=max_tokens, metavar="N")
        group.add_argument(
            f"--{route}-latency",
            choices=tuple(LATENCIES),
            help=f"{route}'s latency mode instead of --latency",
        )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="S",
        help="seconds the whole call may take (default: no limit)",
    )
    parser.set_defaults(run=run)


def add_tools_arguments(parser: argparse.ArgumentParser) -> None:
    """--tools and --tool-choice (chat and repl offer tools the same way)."""
    parser.add_argument(
        "--tools",
        metavar="FILE.json",
        help='offer tools to both routes: a JSON list of {"name", "description",'
        ' "input_schema"}, or Bedrock\'s [{"toolSpec": {...}}]; calls are shown as they stream',
    )
    parser.add_argument(
        "--tool-choice",
        metavar="auto|any|NAME",
        help="with --tools: the model decides (auto, the default), must call a tool (any),"
        " or must call the tool NAME",
    )


def tool_config(args: argparse.Namespace) -> chat_pb2.ToolConfig | None:
    """The tools of --tools (and --tool-choice); ToolsFileError for a bad file or choice."""
    if args.tools is None:
        if args.tool_choice is not None:
            raise ToolsFileError("--tool-choice goes with --tools")
        return None
    return read_tool_config(args.tools, args.tool_choice)


def add_ordering_argument(parser: argparse.ArgumentParser) -> None:
    """--ordering, for the commands that show both routes (chat and repl)."""
    parser.add_argument(
        "--ordering",
        choices=tuple(ORDERINGS),
        default="interleaved",
        help="interleaved: both as they arrive (default); micro-first: Pro's after Micro's",
    )


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """--token, and the TLS flags: how this command proves who it is and whom it trusts."""
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"bearer token for a gateway that wants one [{TOKEN_VARIABLE}, which keeps it out"
        " of the process list]",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="connect with TLS, trusting the system's CAs unless --ca names one",
    )
    parser.add_argument(
        "--ca", metavar="FILE", help="PEM CA bundle the server's certificate is checked against"
    )
    parser.add_argument(
        "--cert", metavar="FILE", help="PEM client certificate to present (mutual TLS)"
    )
    parser.add_argument("--key", metavar="FILE", help="PEM private key of --cert")


def channel_credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """TLS credentials from --tls, --ca, --cert and --key; None for plaintext.

    --ca, --cert or --key imply --tls. ConfigError naming the flag of a bad file.
    """
    if not (args.tls or args.ca or args.cert or args.key):
        return None
    if (args.cert is None) != (args.key is None):
        raise ConfigError("--cert and --key go together (a client certificate and its key)")
    ca = None if args.ca is None else read_certificates(CertFile(args.ca, "--ca"))
    if args.cert is None:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    cert, key = read_key_pair(CertFile(args.cert, "--cert"), CertFile(args.key, "--key"))
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


def bearer_token(option_value: str | None) -> str | None:
    """The token to present: the option if given, else DUALNOVA_TOKEN, else none."""
    if option_value is not None and option_value.strip():
        return option_value.strip()
    return read_optional_str(environ(), TOKEN_VARIABLE)


def gateway_target(option_value: str | None, option: str) -> str:
    """The gateway to call: the option if given, else DUALNOVA_GATEWAY, else the default."""
    if option_value is not None:
        check_target(option_value, option)
        return option_value
    return read_target(environ(), GATEWAY_VARIABLE, DEFAULT_GATEWAY)


def run(args: argparse.Namespace) -> int:
    try:
        question = read_question(args.question, args.file)
    except QuestionError as error:
        print(f"dualnova chat: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Ctrl-C while a pipe was still writing the question: nothing was sent.
        return EXIT_INTERRUPTED
    blank = [flag for flag, texts in _system_options(args) if any(not t.strip() for t in texts)]
    if blank:
        print(f"dualnova chat: {blank[0]} must not be empty", file=sys.stderr)
        return EXIT_USAGE
    try:
        extra = request_options(args)
    except (AttachmentError, ToolsFileError, ConfigError) as error:
        print(f"dualnova chat: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        target = gateway_target(args.gateway, "--gateway")
        credentials = channel_credentials(args)
    except ConfigError as error:
        print(f"dualnova chat: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        status = asyncio.run(
            run_chat(
                target,
                question,
                ordering=args.ordering,
                system=args.system,
                max_tokens=args.max_tokens,
                temperature=args.temperature,
                overrides=route_options(args),
                timeout=args.timeout,
                token=bearer_token(args.token),
                credentials=credentials,
                json_lines=args.json,
                extra=extra,
            )
        )
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stderr's reader went away too (`2>&1 | head`).
        status = EXIT_CLOSED_PIPE
    if status == EXIT_CLOSED_PIPE:
        _discard_stdout()
    return status


def route_options(args: argparse.Namespace) -> dict[str, RouteOptions]:
    """The --micro-* and --pro-* options, for the routes that have any."""
    options = {}
    for route in ROUTES:
        prefix = route.replace("-", "_")
        chosen = RouteOptions(
            system=tuple(getattr(args, f"{prefix}_system")),
            temperature=getattr(args, f"{prefix}_temperature"),
            max_tokens=getattr(args, f"{prefix}_max_tokens"),
            latency=_latency(getattr(args, f"{prefix}_latency")),
        )
        if chosen != RouteOptions():
            options[route] = chosen
    return options


def request_options(args: argparse.Namespace) -> ChatRequestOptions:
    """Attachments, tools, guardrail and latency; each file read and checked before sending."""
    config = None
    if args.guardrail is not None:
        config = args.guardrail
        config.trace = GUARDRAIL_TRACES[args.guardrail_trace or "enabled"]
    elif args.guardrail_trace is not None:
        raise ConfigError("--guardrail-trace goes with --guardrail")
    return ChatRequestOptions(
        attachments=read_attachments(args.image, args.document, cite=args.cite),
        tool_config=tool_config(args),
        guardrail_config=config,
        latency=_latency(args.latency),
        grounding=grounding_choice(args),
    )


def _latency(choice: str | None) -> chat_pb2.Latency | None:
    return None if choice is None else LATENCIES[choice]


def guardrail(value: str) -> chat_pb2.GuardrailConfig:
    """argparse type for ID:VERSION, checked by the services' rule (the id may be an ARN)."""
    identifier, sep, version = value.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected ID:VERSION, got {value!r}")
    config = chat_pb2.GuardrailConfig(identifier=identifier, version=version)
    try:
        validate_guardrail_config(config, "guardrail")
    except InvalidRequest as error:
        part = error.field.removeprefix("guardrail.")
        raise argparse.ArgumentTypeError(f"{part} {error.reason}, got {value!r}") from None
    return config


def _system_options(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    return [("--system", args.system)] + [
        (f"--{route}-system", getattr(args, f"{route.replace('-', '_')}_system"))
        for route in ROUTES
    ]


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush finds no closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def max_tokens(value: str) -> int:
    """argparse type for a token bound: a whole number from 1 to InferenceConfig's int32."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 1 <= number <= MAX_TOKENS_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_TOKENS_LIMIT}, got {number}")
    return number


def temperature(value: str) -> float:
    """argparse type for a sampling temperature: a number from 0 to 1, as Bedrock takes."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {value!r}") from None
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return number


def positive_seconds(value: str) -> float:
    """argparse type for a duration in seconds above 0."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return number
