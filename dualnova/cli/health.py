"""`dualnova health`: a server's grpc.health.v1 status, for platforms and for people.

Exit status as grpc_health_probe's, so an ECS container health check or a
compose healthcheck can run it unchanged: 0 SERVING, 1 bad arguments,
2 no connection within the timeout, 3 the health RPC failed (unknown name,
no health service, no answer in time), 4 the name is not SERVING.
`--all` also prints every name with its status, since when, and why it is
not SERVING (one dualnova.health.v1 ListDetails call; against a server
without it, grpc.health.v1 List, gRPC A90, and no reasons); the exit status
still answers for --service (the whole server by default).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TextIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dualnova.cli.chat import (
    DEFAULT_GATEWAY,
    GATEWAY_VARIABLE,
    add_connection_arguments,
    bearer_token,
    channel_credentials,
    gateway_target,
    positive_seconds,
)
from dualnova.health.v1 import health_pb2 as details_pb2
from dualnova.health.v1 import health_pb2_grpc as details_pb2_grpc
from dualnova.server.settings import ConfigError

__all__ = [
    "EXIT_CONNECTION_FAILED",
    "EXIT_RPC_FAILED",
    "EXIT_SERVING",
    "EXIT_UNHEALTHY",
    "EXIT_USAGE",
    "add_parser",
    "run",
]

EXIT_SERVING = 0
EXIT_USAGE = 1
EXIT_CONNECTION_FAILED = 2
EXIT_RPC_FAILED = 3
EXIT_UNHEALTHY = 4

DEFAULT_TIMEOUT_S = 2.0
PROG = "dualnova health"

_STATUS_NAMES = {
    value: name for name, value in health_pb2.HealthCheckResponse.ServingStatus.items()
}
# dualnova.health.v1's statuses -> grpc.health.v1's (the same numbers, said explicitly).
_DETAIL_STATUSES = {
    details_pb2.SERVING_STATUS_SERVING: health_pb2.HealthCheckResponse.SERVING,
    details_pb2.SERVING_STATUS_NOT_SERVING: health_pb2.HealthCheckResponse.NOT_SERVING,
}


@dataclass(frozen=True)
class _Row:
    """One name of the --all table: a grpc.health.v1 status, and what ListDetails adds."""

    status: int
    since: str = ""  # UTC, to the second; "" without ListDetails
    reason: str = ""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "health",
        help="check a server's health (exit status as grpc_health_probe)",
        description="Ask a DualNova server (or any gRPC server) for its grpc.health.v1 status."
        " Exit status: 0 SERVING, 1 bad arguments, 2 connection failed, 3 health RPC failed,"
        " 4 not SERVING.",
    )
    parser.add_argument(
        "--addr",
        metavar="HOST:PORT",
        help=f"the server, HOST:PORT or a gRPC target [{GATEWAY_VARIABLE}]"
        f" (default {DEFAULT_GATEWAY}, the gateway)",
    )
    parser.add_argument(
        "--service",
        default="",
        metavar="NAME",
        help='the health name to check, e.g. model/micro (default "": the whole server)',
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="print every health name, its status, since when and why"
        " (dualnova.health.v1 ListDetails; grpc.health.v1 List without reasons)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds to connect, and again for the RPC (default {DEFAULT_TIMEOUT_S:g})",
    )
    add_connection_arguments(parser)
    _usage_errors_exit_1(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        target = gateway_target(args.addr, "--addr")
        credentials = channel_credentials(args)
    except ConfigError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_USAGE
    with (
        grpc.insecure_channel(target)
        if credentials is None
        else grpc.secure_channel(target, credentials)
    ) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=args.timeout)
        except grpc.FutureTimeoutError:
            print(f"{PROG}: cannot connect to {target} within {args.timeout:g} s", file=sys.stderr)
            return EXIT_CONNECTION_FAILED
        stub = health_pb2_grpc.HealthStub(channel)
        # Health is open on DualNova's servers; the token is for a proxy in front that wants one.
        token = bearer_token(args.token)
        metadata = () if token is None else (("authorization", f"Bearer {token}"),)
        try:
            if args.all:
                rows = _details(channel, args.timeout, metadata)
                if rows is None:
                    rows = _listed(stub, args.timeout, metadata)
                return _table(rows, args.service, sys.stdout)
            status = _check(stub, args.service, args.timeout, metadata)
            if status == health_pb2.HealthCheckResponse.SERVING:
                print("status: SERVING", file=sys.stdout)
                return EXIT_SERVING
            return _unhealthy(args.service, status, _reason(channel, args, metadata))
        except grpc.RpcError as error:
            print(f"{PROG}: {_rpc_failure(error, args.service, args.timeout)}", file=sys.stderr)
            return EXIT_RPC_FAILED


def _check(
    stub: health_pb2_grpc.HealthStub,
    name: str,
    timeout: float,
    metadata: tuple[tuple[str, str], ...] = (),
) -> int:
    response = stub.Check(
        health_pb2.HealthCheckRequest(service=name), timeout=timeout, metadata=metadata
    )
    return int(response.status)


def _reason(
    channel: grpc.Channel, args: argparse.Namespace, metadata: tuple[tuple[str, str], ...]
) -> str:
    """Why the checked name is not SERVING, when the server says (best effort: "" otherwise)."""
    try:
        rows = _details(channel, args.timeout, metadata)
    except grpc.RpcError:
        return ""
    row = None if rows is None else rows.get(args.service)
    return "" if row is None else row.reason


def _details(
    channel: grpc.Channel, timeout: float, metadata: tuple[tuple[str, str], ...]
) -> dict[str, _Row] | None:
    """Every name via dualnova.health.v1 ListDetails; None when the server does not serve it."""
    stub = details_pb2_grpc.HealthDetailsServiceStub(channel)
    try:
        response = stub.ListDetails(
            details_pb2.ListDetailsRequest(), timeout=timeout, metadata=metadata
        )
    except grpc.RpcError as error:
        if error.code() is grpc.StatusCode.UNIMPLEMENTED:
            return None  # not a DualNova server, or an older one: List has the statuses
        raise
    return {
        name: _Row(
            _DETAIL_STATUSES.get(entry.status, health_pb2.HealthCheckResponse.UNKNOWN),
            entry.change_time.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")
            if entry.HasField("change_time")
            else "",
            entry.reason,
        )
        for name, entry in response.details.items()
    }


def _listed(
    stub: health_pb2_grpc.HealthStub, timeout: float, metadata: tuple[tuple[str, str], ...]
) -> dict[str, _Row]:
    """Every name via grpc.health.v1 List (A90): statuses only."""
    response = stub.List(health_pb2.HealthListRequest(), timeout=timeout, metadata=metadata)
    return {name: _Row(entry.status) for name, entry in response.statuses.items()}


def _table(rows: Mapping[str, _Row], name: str, out: TextIO) -> int:
    """Print NAME STATUS [SINCE REASON], one name a line; the exit status answers for `name`."""
    detailed = any(row.since for row in rows.values())
    width = max(len(_shown(key)) for key in (*rows, "NAME"))
    status_width = max(len("STATUS"), *(len(_STATUS_NAMES[row.status]) for row in rows.values()))
    header = f"{'NAME':<{width}}  {'STATUS':<{status_width}}"
    print(f"{header}  {'SINCE':<20}  REASON" if detailed else header.rstrip(), file=out)
    for key in sorted(rows):
        row = rows[key]
        line = f"{_shown(key):<{width}}  {_STATUS_NAMES[row.status]:<{status_width}}"
        if detailed:
            line = f"{line}  {row.since:<20}  {row.reason}"
        print(line.rstrip(), file=out)
    if name not in rows:
        print(f"{PROG}: the server lists no health name {name!r}", file=sys.stderr)
        return EXIT_RPC_FAILED
    if rows[name].status != health_pb2.HealthCheckResponse.SERVING:
        return _unhealthy(name, rows[name].status, rows[name].reason)
    return EXIT_SERVING


def _unhealthy(name: str, status: int, reason: str = "") -> int:
    what = "server" if name == "" else repr(name)
    why = f": {reason}" if reason else ""
    print(
        f"{PROG}: {what} unhealthy (responded with {_STATUS_NAMES[status]}){why}", file=sys.stderr
    )
    return EXIT_UNHEALTHY


def _rpc_failure(error: grpc.RpcError, name: str, timeout: float) -> str:
    code = error.code()
    if code is grpc.StatusCode.NOT_FOUND:
        return f"the server does not know the health name {name!r}"
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return "the server does not implement this part of grpc.health.v1"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the health RPC did not complete within {timeout:g} s"
    return f"the health RPC failed: {code.name}: {error.details()}"


def _shown(name: str) -> str:
    return '""' if name == "" else name


def _usage_errors_exit_1(parser: argparse.ArgumentParser) -> None:
    """grpc_health_probe exits 1 for bad arguments; argparse's 2 means 'connection failed' here."""

    def error(message: str) -> NoReturn:
        parser.print_usage(sys.stderr)
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n")

    parser.error = error  # type: ignore[method-assign]
