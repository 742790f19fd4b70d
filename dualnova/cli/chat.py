"""`dualnova chat "question"`: both answers live, then a token table and the trace id.

Exit status: 0 when at least one route answered, 1 when neither did, 2 for a
usage error, 3 when no gateway answers at the target.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import grpc

from dualnova.cli.render import EXIT_USAGE, ORDERINGS, run_chat
from dualnova.server.settings import ConfigError, environ, read_optional_str
from dualnova.server.targets import check_target, read_target
from dualnova.server.tls_config import CertFile, read_certificates, read_key_pair

GATEWAY_VARIABLE = "DUALNOVA_GATEWAY"
DEFAULT_GATEWAY = "127.0.0.1:50052"
TOKEN_VARIABLE = "DUALNOVA_TOKEN"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="ask Nova Micro and Nova Pro at once",
        description="Ask one question; Micro's and Pro's answers stream side by side.",
    )
    parser.add_argument("question", help="what to ask (one user turn)")
    parser.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        help=f"the gateway, HOST:PORT or a gRPC target [{GATEWAY_VARIABLE}]"
        f" (default {DEFAULT_GATEWAY})",
    )
    add_connection_arguments(parser)
    parser.add_argument(
        "--ordering",
        choices=tuple(ORDERINGS),
        default="interleaved",
        help="interleaved: both as they arrive (default); micro-first: Pro's after Micro's",
    )
    parser.add_argument(
        "--system",
        action="append",
        default=[],
        metavar="TEXT",
        help="a system prompt for both routes (repeat for several)",
    )
    parser.add_argument(
        "--max-tokens", type=_positive_int, metavar="N", help="upper bound on each answer"
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="S",
        help="seconds the whole call may take (default: no limit)",
    )
    parser.set_defaults(run=run)


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
    if not args.question.strip():
        print("dualnova chat: the question must not be empty", file=sys.stderr)
        return EXIT_USAGE
    if any(not text.strip() for text in args.system):
        print("dualnova chat: --system must not be empty", file=sys.stderr)
        return EXIT_USAGE
    try:
        target = gateway_target(args.gateway, "--gateway")
        credentials = channel_credentials(args)
    except ConfigError as error:
        print(f"dualnova chat: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(
            run_chat(
                target,
                args.question,
                ordering=args.ordering,
                system=args.system,
                max_tokens=args.max_tokens,
                timeout=args.timeout,
                token=bearer_token(args.token),
                credentials=credentials,
            )
        )
    except KeyboardInterrupt:
        return 130


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
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
