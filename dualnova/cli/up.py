"""`dualnova up`: the emulator, the inference service and the gateway on this machine.

`--replicas N` runs N inference services (each on a port of its own) behind the one
gateway, which balances over them round robin.

The processes are dualnova.dev.stack's (the launcher tests and the demo use), so
what runs here is what was tested. Runs until Ctrl-C or SIGTERM, then stops
all three in reverse order; exit 0 when each stopped cleanly.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dualnova.dev.stack import EmulatorHandle, ServiceHandle, Stack

# The design's default addresses, so `dualnova chat` finds the gateway without flags.
DEFAULT_INFERENCE_PORT = 50051
DEFAULT_GATEWAY_PORT = 50052
_POLL_S = 0.5


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "up",
        help="run emulator, inference service and gateway here until Ctrl-C",
        description="Start the Bedrock emulator, the inference service and the gateway on"
        " 127.0.0.1 and keep them running until Ctrl-C or SIGTERM.",
    )
    parser.add_argument(
        "--pace",
        type=_pace,
        default=1.0,
        metavar="F",
        help="emulator streaming delays scale: 1 is Bedrock-like, 0.1 ten times faster,"
        " 0 all at once (default 1)",
    )
    parser.add_argument(
        "--inference-port",
        type=_port,
        default=DEFAULT_INFERENCE_PORT,
        metavar="N",
        help=f"inference service port, 0 for any free one (default {DEFAULT_INFERENCE_PORT})",
    )
    parser.add_argument(
        "--gateway-port",
        type=_port,
        default=DEFAULT_GATEWAY_PORT,
        metavar="N",
        help=f"gateway port, 0 for any free one (default {DEFAULT_GATEWAY_PORT})",
    )
    parser.add_argument(
        "--emulator-port",
        type=_port,
        default=0,
        metavar="N",
        help="Bedrock emulator port (default: any free one)",
    )
    parser.add_argument(
        "--replicas",
        type=_replicas,
        default=1,
        metavar="N",
        help="inference service replicas behind the one gateway, the first on"
        " --inference-port and the others on free ports (default 1)",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        metavar="DIR",
        help="write each process's log to DIR/<name>.log instead of this terminal",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        # The development launcher: in a source checkout, never in the container image.
        from dualnova.dev.stack import Stack, StackError
    except ImportError:
        print(
            "dualnova up: the local stack is not installed here (it is left out of the"
            " container image); run it from a source checkout: make up",
            file=sys.stderr,
        )
        return 1
    if args.log_dir is not None:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        pace=args.pace,
        emulator_port=args.emulator_port or None,
        inference_port=args.inference_port or None,
        gateway_port=args.gateway_port or None,
        log_dir=args.log_dir,
        inference_env=_shutdown_delay("INFERENCE_SHUTDOWN_DELAY"),
        gateway_env=_shutdown_delay("GATEWAY_SHUTDOWN_DELAY"),
        replicas=args.replicas,
    )
    # SIGTERM stops us the way Ctrl-C does: as KeyboardInterrupt, wherever we are. SIGINT
    # too, explicitly: a shell starts background jobs with SIGINT ignored.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    status = 0
    try:
        stack.start()
        _announce(stack)
        status = _watch(stack)
    except KeyboardInterrupt:
        pass
    except StackError as error:
        print(f"dualnova up: {error}", file=sys.stderr)
        status = 1
    finally:
        # A second Ctrl-C must not leave children behind; stop() kills what will not stop.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stopped = stack.stop()
    unclean = {name: code for name, code in stopped.items() if code not in (0, None)}
    if unclean:
        listed = ", ".join(f"{name} exited with {code}" for name, code in unclean.items())
        print(f"dualnova up: not stopped cleanly: {listed}", file=sys.stderr)
        return 1
    if status == 0:
        print("dualnova up: stopped", flush=True)
    return status


def _shutdown_delay(variable: str) -> dict[str, str]:
    """Nobody balances over a laptop: stop at once, unless the environment asks for a delay."""
    return {variable: os.environ.get(variable, "0")}


def _announce(stack: Stack) -> None:
    gateway = stack.gateway.address
    inference = "".join(f"  {replica.name:<19}{replica.address}\n" for replica in stack.replicas)
    print(
        "DualNova is up (Ctrl-C stops it):\n"
        f"  bedrock emulator   {stack.emulator.url}\n"
        f"{inference}"
        f"  gateway            {gateway}\n"
        "Try:\n"
        f'  dualnova chat --gateway {gateway} "What is Amazon Bedrock?"',
        flush=True,
    )


def _watch(stack: Stack) -> int:
    """Wait for a signal (KeyboardInterrupt); 1 if a process exits on its own first."""
    parts: dict[str, EmulatorHandle | ServiceHandle] = {
        "bedrock emulator": stack.emulator,
        **{replica.name: replica for replica in stack.replicas},
        "gateway": stack.gateway,
    }
    while True:
        for name, part in parts.items():
            if not part.running:
                print(f"dualnova up: {name} exited unexpectedly; stopping", file=sys.stderr)
                return 1
        time.sleep(_POLL_S)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {value!r}")
    return int(value)


def _replicas(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise argparse.ArgumentTypeError(f"expected a number of replicas 1-64, got {value!r}")
    return int(value)


def _pace(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return number
