"""`dualnova up`: the emulator, the inference service and the gateway on this machine.

The processes are dualnova.dev.stack's (the launcher tests and the demo use), so
what runs here is what was tested. Runs until Ctrl-C, SIGTERM or SIGHUP, then
stops the gateway, the inference service(s) and the emulator, in that order.

- Quiet: each process logs to a file in a run directory (a new temporary one,
  or --log-dir), printed in the banner; `--logs` also follows them here.
- Ports are checked before anything starts: a port another program listens on
  is refused with one line naming it.
- A process that exits is restarted on its own port with backoff
  (dualnova.dev.restarts), and one line says so; the others go on.
- `--replicas N` runs N inference services (each on a port of its own) behind
  the one gateway, which balances over them round robin.
- `--real-bedrock` runs no emulator: the inference service uses this
  environment's AWS credential chain and region, as deployed (paid calls).
- `--knowledge-base ID` is the inference service's DUALNOVA_KNOWLEDGE_BASE_ID
  (grounded chats retrieve from it; its state is the knowledge-base health
  name). Unless given: the environment's variable, else the emulator's
  KBDUALNOVA, or none on real Bedrock (a real knowledge base costs money and
  needs its id); `none` for none.

Exit status: 0 stopped on a signal with every process stopped cleanly; 1 a port
was taken, a process did not start (or could not be restarted), or one did not
stop cleanly; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from dualnova.server.content_rules import KNOWLEDGE_BASE_ID

if TYPE_CHECKING:
    from dualnova.dev.stack import Stack

PROG = "dualnova up"
# The design's default addresses, so `dualnova chat` finds the gateway without flags.
DEFAULT_INFERENCE_PORT = 50051
DEFAULT_GATEWAY_PORT = 50052
DEFAULT_PACE = 1.0
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_POLL_S = 0.5
_SAMPLE_QUESTION = "What is Amazon Bedrock?"
# The inference service's variable (inference_service.config.KNOWLEDGE_BASE; that
# module is not imported here, up starts the service rather than configuring it).
KNOWLEDGE_BASE_VARIABLE = "DUALNOVA_KNOWLEDGE_BASE_ID"
NO_KNOWLEDGE_BASE = "none"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "up",
        help="run emulator, inference service and gateway here until Ctrl-C",
        description="Start the Bedrock emulator, the inference service and the gateway on"
        " 127.0.0.1 and keep them running (a process that exits is restarted) until Ctrl-C"
        " or SIGTERM. Each process logs to a file in a run directory printed at start."
        " Exit status: 0 stopped cleanly, 1 a port taken or a process that did not start"
        " or stop cleanly, 2 bad arguments.",
    )
    parser.add_argument(
        "--pace",
        type=_pace,
        metavar="F",
        help="emulator streaming delays scale: 1 is Bedrock-like, 0.1 ten times faster,"
        f" 0 all at once (default {DEFAULT_PACE:g})",
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
        help="write each process's log to DIR/<name>.log (default: a new temporary run"
        " directory, printed at start)",
    )
    parser.add_argument(
        "--logs",
        action="store_true",
        help="also follow the processes' logs in this terminal, one short line per record",
    )
    parser.add_argument(
        "--real-bedrock",
        action="store_true",
        help="no emulator: the inference service calls Amazon Bedrock with this environment's"
        " AWS credential chain and region (paid inference; see the README)",
    )
    parser.add_argument(
        "--knowledge-base",
        type=_knowledge_base,
        metavar="ID",
        help=f"the Bedrock Knowledge Base grounded chats retrieve from ({KNOWLEDGE_BASE_VARIABLE}"
        f" of the inference service), or {NO_KNOWLEDGE_BASE!r} (default: {KNOWLEDGE_BASE_VARIABLE}"
        " from the environment, else the emulator's KBDUALNOVA; none with --real-bedrock)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        # The development launcher: in a source checkout, never in the container image.
        from dualnova.dev.follow import LogFollower
        from dualnova.dev.restarts import GaveUp, Keeper
        from dualnova.dev.stack import EMULATOR_KNOWLEDGE_BASE, Stack, StackError
    except ImportError:
        print(
            f"{PROG}: the local stack is not installed here (it is left out of the"
            " container image); run it from a source checkout: make up",
            file=sys.stderr,
        )
        return EXIT_FAILED
    refusal = _check_arguments(args)
    if refusal is not None:
        print(f"{PROG}: {refusal}", file=sys.stderr)
        return EXIT_USAGE
    taken = _taken_ports(args)
    if taken is not None:
        print(f"{PROG}: {taken}", file=sys.stderr)
        return EXIT_FAILED
    knowledge_base = chosen_knowledge_base(
        args.knowledge_base, os.environ, None if args.real_bedrock else EMULATOR_KNOWLEDGE_BASE
    )
    try:
        log_dir = _run_directory(args.log_dir)
    except OSError as error:
        print(f"{PROG}: cannot write logs to {error.filename}: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE if args.log_dir is not None else EXIT_FAILED
    stack = Stack(
        pace=DEFAULT_PACE if args.pace is None else args.pace,
        emulator_port=args.emulator_port or None,
        inference_port=args.inference_port or None,
        gateway_port=args.gateway_port or None,
        log_dir=log_dir,
        inference_env={
            **_shutdown_delay("INFERENCE_SHUTDOWN_DELAY"),
            # Empty for none: the service reads it as unset, and no inherited value leaks in.
            KNOWLEDGE_BASE_VARIABLE: knowledge_base or "",
        },
        gateway_env=_shutdown_delay("GATEWAY_SHUTDOWN_DELAY"),
        replicas=args.replicas,
        real_bedrock=args.real_bedrock,
        # Ctrl-C reaches up alone, and up stops each child once (see dualnova.dev.stack).
        isolate=True,
    )
    follower = None
    if args.logs:
        logs = {part.name: part.log_path for part in stack.parts if part.log_path is not None}
        follower = LogFollower(logs, _say)
        follower.start()
    # SIGTERM and SIGHUP (the terminal closed) stop us the way Ctrl-C does: as
    # KeyboardInterrupt, wherever we are. SIGINT too, explicitly: a shell starts
    # background jobs with SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    status = EXIT_OK
    try:
        stack.start()
        _announce(stack, log_dir, knowledge_base, following=follower is not None)
        keeper = Keeper(stack.parts, lambda line: print(f"{PROG}: {line}", file=sys.stderr))
        # From here a signal only sets a flag: raised as KeyboardInterrupt it could land in
        # a finalizer (grpc's channel __del__ swallowed it, and up then hung at stop).
        stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda signum, frame: stopping.set())
        while not stopping.wait(_POLL_S):
            keeper.check()
        _off_the_echoed_interrupt()
    except KeyboardInterrupt:
        _off_the_echoed_interrupt()
    except StackError as error:
        print(f"{PROG}: {error}\n{PROG}: logs in {log_dir}", file=sys.stderr)
        status = EXIT_FAILED
    except GaveUp as error:
        print(f"{PROG}: {error} (logs in {log_dir})", file=sys.stderr)
        status = EXIT_FAILED
    finally:
        # A second Ctrl-C must not leave children behind; stop() kills what will not stop.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        stopped = stack.stop()
        if follower is not None:
            follower.stop()
    if status != EXIT_OK:
        return status  # what failed was said above; its exit status again would be noise
    unclean = {name: code for name, code in stopped.items() if code not in (0, None)}
    if unclean:
        listed = ", ".join(f"{name} exited with {code}" for name, code in unclean.items())
        print(f"{PROG}: not stopped cleanly: {listed} (logs in {log_dir})", file=sys.stderr)
        return EXIT_FAILED
    _say(f"{PROG}: stopped")
    return EXIT_OK


def _check_arguments(args: argparse.Namespace) -> str | None:
    """Why these arguments cannot run together, or None."""
    if args.real_bedrock and (args.pace is not None or args.emulator_port is not None):
        return "--real-bedrock runs no emulator: --pace and --emulator-port do not apply"
    ports = [
        (flag, port)
        for flag, port in (
            ("--emulator-port", args.emulator_port),
            ("--inference-port", args.inference_port),
            ("--gateway-port", args.gateway_port),
        )
        if port
    ]
    for index, (flag, port) in enumerate(ports):
        for other, other_port in ports[index + 1 :]:
            if port == other_port:
                return f"{flag} and {other} are both {port}: each process needs its own port"
    return None


def _taken_ports(args: argparse.Namespace) -> str | None:
    """One line naming every requested port another program listens on, or None."""
    from dualnova.dev.stack import HOST, port_is_free

    requested = [
        (flag, port)
        for flag, port in (
            ("--emulator-port", args.emulator_port),
            ("--inference-port", args.inference_port),
            ("--gateway-port", args.gateway_port),
        )
        if port and not port_is_free(port)
    ]
    if not requested:
        return None
    named = [f"{port} ({flag})" for flag, port in requested]
    listed = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
    taken = "port {} is taken" if len(named) == 1 else "ports {} are taken"
    return (
        f"{taken.format(listed)} on {HOST}: another program listens there (another"
        " `dualnova up`?); stop it, or choose another port (0 picks a free one)"
    )


def _run_directory(chosen: Path | None) -> Path:
    """--log-dir, made if missing, or a new directory of this run's own under the temp dir."""
    if chosen is not None:
        chosen.mkdir(parents=True, exist_ok=True)
        return chosen.resolve()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    return Path(tempfile.mkdtemp(prefix=f"dualnova-up-{stamp}-"))


def chosen_knowledge_base(
    flag: str | None, env: Mapping[str, str], default: str | None
) -> str | None:
    """--knowledge-base, else the environment's (as the service would read it), else `default`.

    None is no knowledge base (--knowledge-base none, or no default).
    """
    if flag is not None:
        return None if flag == NO_KNOWLEDGE_BASE else flag
    return env.get(KNOWLEDGE_BASE_VARIABLE, "").strip() or default


def _shutdown_delay(variable: str) -> dict[str, str]:
    """Nobody balances over a laptop: stop at once, unless the environment asks for a delay."""
    return {variable: os.environ.get(variable, "0")}


def _announce(stack: Stack, log_dir: Path, knowledge_base: str | None, *, following: bool) -> None:
    gateway = stack.gateway.address
    if stack.real_bedrock:
        where = f"Amazon Bedrock, {_aws_region()}, the default AWS credential chain"
        bedrock = f"  bedrock            {where}\n"
    else:
        bedrock = f"  bedrock emulator   {stack.emulator.url}\n"
    inference = "".join(f"  {replica.name:<19}{replica.address}\n" for replica in stack.replicas)
    if knowledge_base is None:
        grounding = f"{NO_KNOWLEDGE_BASE} (--knowledge-base ID grounds chats in one)"
    else:
        grounding = f"{knowledge_base} (grounded chats retrieve from it by default)"
    shown = "followed below" if following else "--logs follows them here"
    dualnova = _dualnova_command()
    knowledge_base_health = (
        ""
        if knowledge_base is None
        else f"\n  {dualnova} health --addr {stack.inference.address} --service knowledge-base"
    )
    _say(
        f"DualNova is up (Ctrl-C stops it):\n"
        f"{bedrock}"
        f"{inference}"
        f"  gateway            {gateway}\n"
        f"  knowledge base     {grounding}\n"
        f"  logs               {log_dir} ({shown})\n"
        "Try:\n"
        f'  {dualnova} chat --gateway {gateway} "{_SAMPLE_QUESTION}"\n'
        f"  {dualnova} health --addr {gateway} --all"
        f"{knowledge_base_health}"
    )


def _dualnova_command() -> str:
    """How to run this dualnova from any shell: `dualnova` only if PATH finds this very one.

    A virtual environment that is not activated has its script next to its
    python, not on PATH; without a script (run from source), `python -m`.
    """
    script = Path(sys.executable).parent / "dualnova"
    if not script.is_file():
        return f"{shlex.quote(sys.executable)} -m dualnova.cli.main"
    found = shutil.which("dualnova")
    if found is not None and os.path.samefile(found, script):
        return "dualnova"
    return shlex.quote(str(script))


def _aws_region() -> str:
    """The region the inference service will resolve, for the banner (no network)."""
    import botocore.session
    from botocore.exceptions import BotoCoreError

    try:
        region = botocore.session.Session().get_config_variable("region")
    except BotoCoreError as error:
        return f"region unknown ({error})"
    return f"region {region}" if region else "no region configured"


def _say(line: str) -> None:
    print(line, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _off_the_echoed_interrupt() -> None:
    if sys.stdout.isatty():
        print()  # off the line where the terminal echoed ^C


def _port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {value!r}")
    return int(value)


def _replicas(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise argparse.ArgumentTypeError(f"expected a number of replicas 1-64, got {value!r}")
    return int(value)


def _knowledge_base(value: str) -> str:
    if value == NO_KNOWLEDGE_BASE or KNOWLEDGE_BASE_ID.fullmatch(value) is not None:
        return value
    raise argparse.ArgumentTypeError(
        f"expected a knowledge base id (10 letters or digits) or {NO_KNOWLEDGE_BASE!r},"
        f" got {value!r}"
    )


def _pace(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return number
