"""`python -m bench` (`make bench`): start the stack, run the scenarios, print the table.

The emulator, the inference service and the gateway run as real processes on
loopback (dualnova.dev.stack), with the emulator paced like Bedrock by default.
Each concurrency level runs the baselines first (boto3, then aiobotocore) and
then the pair; the first table puts the pair's time to first token next to its
baseline's and the emulator's floor, the second what each cell cost in CPU and
memory. Results go to bench/results/ as JSON with a PNG beside it. Progress
goes to stderr, the tables to stdout. `--quick` (`make bench-quick`) is a
preset that finishes in under a minute, to check the machinery, not to quote.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bedrock_emulator.catalog import find_model
from bench import aio_clients, chart
from bench.cost import format_cost_table
from bench.load import LoadError
from bench.machine import CpuMeter, describe, raise_open_files_limit
from bench.procs import process_tree
from bench.scenarios import (
    DEFAULT_SCENARIOS,
    QUESTION,
    SCENARIOS,
    BenchConfig,
    Targets,
    run_benchmark,
)
from bench.stats import Row, format_table
from dualnova.dev.stack import Stack, StackError
from dualnova.server.settings import ConfigError
from inference_service import config as inference_config

PROG = "bench"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
READY_TIMEOUT_S = 20.0
CONCURRENCY = [1, 10, 50, 200, 500, 1000, 2000]
MAX_SECONDS = 2400.0
# `--quick`: the machinery end to end in under a minute on 2 cores; numbers to check, not quote.
QUICK = {
    "concurrency": [1, 50],
    "rounds": 1,
    "min_requests": 3,
    "pace": 0.5,
    "ramp": 0.5,
    "max_seconds": 45.0,
    # The pair's grounded and tool DualChats beside plain DualChat; their boto3 baselines
    # only on request, to stay under the minute.
    "scenarios": [*DEFAULT_SCENARIOS, "dualchat-grounded", "dualchat-tools"],
}


def _positive_ints(value: str) -> list[int]:
    try:
        numbers = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {value!r}") from None
    if not numbers or any(number < 1 for number in numbers):
        raise argparse.ArgumentTypeError("expected one or more integers >= 1")
    return numbers


def _scenario_names(value: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {', '.join(unknown) or '(none)'}; choose from {', '.join(SCENARIOS)}"
        )
    return names


def _non_negative(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0 <= number < float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number >= 0")
    return number


def _positive(value: str) -> float:
    number = _non_negative(value)
    if number == 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return number


def _flag_value(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else f"{value}"


def _flags(preset: Mapping[str, object]) -> str:
    """A preset written as the flags it stands for, for --help and the README."""
    return " ".join(f"--{name.replace('_', '-')} {_flag_value(v)}" for name, v in preset.items())


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _parser()
    if "--quick" in argv:  # the preset sets defaults; flags given beside it still win
        parser.set_defaults(**QUICK)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.min_requests < 1:
        parser.error("--rounds and --min-requests must be at least 1")
    return args


def _parser() -> argparse.ArgumentParser:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(
        prog=PROG,
        allow_abbrev=False,  # --quick is recognised before parsing, so spell every flag out
        description="Time to first token and CPU through the pair, against boto3 and aiobotocore"
        " calling the emulator.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"preset: {_flags(QUICK)} (make bench-quick; flags given beside it win)",
    )
    parser.add_argument(
        "--pace",
        type=_non_negative,
        default=1.0,
        help="emulator pace: 1.0 is Bedrock-like (Micro's first token after 120 ms), 0 is instant"
        " (default 1.0)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_ints,
        default=CONCURRENCY,
        help=f"comma-separated concurrent calls per cell (default {_flag_value(CONCURRENCY)})",
    )
    parser.add_argument(
        "--scenarios",
        type=_scenario_names,
        default=list(DEFAULT_SCENARIOS),
        help=f"comma-separated, from {', '.join(SCENARIOS)}"
        f" (default {','.join(DEFAULT_SCENARIOS)})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=defaults.rounds,
        help=f"recorded calls per worker, after one warm-up call (default {defaults.rounds})",
    )
    parser.add_argument(
        "--min-requests",
        type=int,
        default=defaults.min_requests,
        help=f"recorded calls per cell at least (default {defaults.min_requests})",
    )
    parser.add_argument(
        "--ramp",
        type=_non_negative,
        default=defaults.ramp_s,
        help=f"seconds over which a cell's workers start (default {defaults.ramp_s:g})",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=defaults.call_timeout_s,
        help=f"seconds any one call may take (default {defaults.call_timeout_s:g})",
    )
    parser.add_argument(
        "--max-seconds",
        type=_positive,
        default=MAX_SECONDS,
        help=f"time budget: no call starts after it, later cells are skipped"
        f" (default {MAX_SECONDS:g})",
    )
    parser.add_argument("--question", default=QUESTION, help="the question every call asks")
    parser.add_argument(
        "--output",
        type=Path,
        help="JSON results file, the PNG beside it (default bench/results/bench-<UTC time>.json)",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        help="where the three processes log (default: a new temporary directory, kept)",
    )
    return parser


def _service_env(concurrencies: Sequence[int]) -> tuple[dict[str, str], dict[str, str]]:
    """Environment for the inference service and the gateway during a benchmark."""
    quiet = {"DUALNOVA_HEALTH_INTERVAL": "3600"}  # no background probes among the samples
    # A DualChat holds two Chat streams; the default cap (512) would refuse calls at 1000.
    max_streams = max(512, 2 * max(concurrencies) + 16)
    inference = {
        **quiet,
        "INFERENCE_MAX_STREAMS": str(max_streams),
        "INFERENCE_SHUTDOWN_DELAY": "0",
    }
    return inference, {**quiet, "GATEWAY_SHUTDOWN_DELAY": "0"}


def _wait_serving(address: str) -> None:
    """Wait until `address` reports SERVING for the whole server; StackError after the timeout."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass  # not up yet: asked again below
            if time.monotonic() > deadline:
                raise StackError(f"{address} did not report SERVING within {READY_TIMEOUT_S:g} s")
            time.sleep(0.1)


def _pacing_line(pace: float, config: BenchConfig) -> str:
    parts = []
    for route in ("micro", "pro"):
        spec = find_model(config.model(route))
        if spec is not None:
            parts.append(
                f"{spec.name} first token at {spec.pacing.first_token_s * pace * 1000:g} ms"
                f" (the floor), then {spec.pacing.per_delta_s * pace * 1000:g} ms per delta"
            )
    return f"emulator pace {pace:g}" + (f" ({'; '.join(parts)})" if parts else "")


def _header(
    args: argparse.Namespace,
    config: BenchConfig,
    machine: Mapping[str, Any],
    inference_env: Mapping[str, str],
    log_dir: Path,
    started_at: str,
) -> list[str]:
    cpus = machine["cpus"]
    idle = _host_busy_before()
    return [
        f"DualNova benchmark, {started_at}",
        f"machine: {cpus} CPUs ({machine['cpu_model']}), {machine['system']},"
        f" Python {machine['python']}; grpcio {machine['grpcio']}, boto3 {machine['boto3']},"
        f" botocore {machine['botocore']}, aiobotocore {machine['aiobotocore']},"
        f" matplotlib {machine['matplotlib']}",
        f"stack: {_pacing_line(args.pace, config)}; inference service with INFERENCE_MAX_STREAMS="
        f"{inference_env['INFERENCE_MAX_STREAMS']}; gateway; all on loopback; logs in {log_dir}",
        f"load: closed loop per cell, one warm-up call per worker then"
        f" max(concurrency x {config.rounds}, {config.min_requests}) recorded calls,"
        f" starts spread over {config.ramp_s:g} s; call timeout {config.call_timeout_s:g} s,"
        f" run budget {args.max_seconds:g} s",
        f"question: {config.question!r}",
        f"note: this benchmark client (the load generator), the emulator, the inference service"
        f" and the gateway share these {cpus} CPUs. The client's own CPU use (client cpu, in"
        f" cores) comes out of the same budget, so at high concurrency every row, baselines"
        f" included, is slower than it would be with the client on another machine.",
        f"host before the run: {idle} of all CPUs busy over 1 s (other work on the machine"
        f" shows up in every row)",
    ]


def _host_busy_before() -> str:
    """How busy the machine is before anything starts: a noisy neighbour shows here."""
    meter = CpuMeter().start()
    time.sleep(1.0)
    busy = meter.stop().host_busy
    return "unknown" if busy is None else f"{busy:.0%}"


def _legend(names: Sequence[str]) -> list[str]:
    lines = ["scenarios:"]
    lines += [f"  {name:<17} {SCENARIOS[name].about}" for name in SCENARIOS if name in names]
    lines += [
        "ttft: from the call to its first text delta, as the caller sees it (ms); total: to the"
        " end of the stream (DualChat: to that route's stop event). floor: when the emulator"
        " sends the route's first token at this pace; no caller's ttft can be below it.",
        "+ttft p50/p99: this row's ttft minus its first baseline's at the same concurrency and"
        " route (boto3; for dualchat-grounded and dualchat-tools, plain dualchat; the JSON's"
        " `versus` has every baseline's comparison).",
        "cost table, CPU ms: /call per call made (a DualChat, a Chat, a baseline chat of one or"
        " both routes), /1k per 1,000 deltas (text or tool input) the client received, warm-ups"
        " included; inf and"
        " gw are each service's process tree (read in 10 ms ticks: few calls, coarse numbers),"
        " client is this benchmark process.",
        "vs base: the services' CPU per call over the first baseline caller's own (under 1.00x:"
        " the relay costs less than calling Bedrock yourself). KB/stream: rise of resident memory"
        " during the cell over the streams open at once (concurrency x routes), the services'"
        " for pair rows and this process's for baselines (whose cells build their client); a"
        " lower bound after an earlier cell left memory in the allocator.",
        "client cpu: cores this process used during the cell; host cpu: share of all CPUs busy"
        " (every process). p99 of fewer than 100 calls is interpolated among the slowest.",
    ]
    return lines


def _write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write beside the target and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    os.replace(partial, path)


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    raise_open_files_limit()  # 2,000 DualChats hold thousands of sockets; the children inherit it
    inference_env, gateway_env = _service_env(args.concurrency)
    try:
        settings = inference_config.load({**os.environ, **inference_env})
    except ConfigError as error:
        print(f"{PROG}: configuration error: {error}", file=sys.stderr)
        return 2
    config = BenchConfig(
        question=args.question,
        micro_model=settings.micro_model,
        pro_model=settings.pro_model,
        rounds=args.rounds,
        min_requests=args.min_requests,
        ramp_s=args.ramp,
        call_timeout_s=args.timeout,
        pace=args.pace,
    )
    now = datetime.now(UTC)
    started_at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    output = args.output or RESULTS_DIR / f"bench-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="dualnova-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    machine = describe()
    header = _header(args, config, machine, inference_env, log_dir, started_at)
    print("\n".join(header), flush=True)

    stack = Stack(
        pace=args.pace, log_dir=log_dir, inference_env=inference_env, gateway_env=gateway_env
    )
    try:
        _progress("starting emulator, inference service and gateway")
        stack.start()
        _wait_serving(stack.inference.address)
        _wait_serving(stack.gateway.address)
        pids = _service_pids(stack)
        print(_processes_line(pids), flush=True)
        targets = Targets(
            aws_env=stack.emulator.aws_env(),
            inference=stack.inference.address,
            gateway=stack.gateway.address,
            pids=pids,
        )
        rows = run_benchmark(
            targets,
            config,
            concurrencies=args.concurrency,
            scenarios=args.scenarios,
            deadline=time.monotonic() + args.max_seconds,
            progress=_progress,
        )
    except (StackError, LoadError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no results written", file=sys.stderr)
        return 130
    finally:
        _progress("stopping the stack")
        stack.stop()

    tables = ["", format_table(rows), "", format_cost_table(rows), "", *_legend(args.scenarios)]
    print("\n".join(tables))
    _write_json(output, _document(args, config, machine, header, rows, started_at))
    print(f"\nresults: {output}")
    print(f"chart: {_chart(rows, output, started_at, machine, args.pace)}")
    return 1 if any(row.errors for row in rows) else 0


def _service_pids(stack: Stack) -> dict[str, int]:
    """The services' process ids: each one's tree (workers included) is measured per cell."""
    pids = {"inference": stack.inference.pid, "gateway": stack.gateway.pid}
    return {name: pid for name, pid in pids.items() if pid is not None}


def _processes_line(pids: Mapping[str, int]) -> str:
    counts = ", ".join(
        f"{name} pid {pid} ({len(process_tree(pid))} processes)" for name, pid in pids.items()
    )
    return f"measured: {counts}; CPU and memory summed over each one's process tree"


def _chart(
    rows: Sequence[Row], output: Path, started_at: str, machine: Mapping[str, Any], pace: float
) -> str:
    """Draw the PNG beside the JSON; the line that says where it is, or why there is none."""
    reason = chart.unavailable()
    if reason is not None:
        return f"none: {reason}"
    title = (
        f"DualNova benchmark {started_at}: {machine['cpus']} CPUs, emulator pace {pace:g},"
        f" client on the same machine"
    )
    drawn = chart.draw(rows, output.with_suffix(".png"), title)
    return str(drawn) if drawn is not None else "none: no DualChat cell ran"


def _document(
    args: argparse.Namespace,
    config: BenchConfig,
    machine: Mapping[str, Any],
    header: Sequence[str],
    rows: Sequence[Row],
    started_at: str,
) -> dict[str, Any]:
    return {
        "started_at": started_at,
        "machine": dict(machine),
        "settings": {
            "pace": args.pace,
            "concurrency": args.concurrency,
            "scenarios": args.scenarios,
            "max_seconds": args.max_seconds,
            **dataclasses.asdict(config),
        },
        "header": list(header),
        # Which botocore each caller ran with: boto3 and aiobotocore pin their own.
        "baselines": {
            "boto3": {"boto3": machine["boto3"], "botocore": machine["botocore"]},
            "aiobotocore": aio_clients.versions()
            if aio_clients.unavailable() is None
            else {"skipped": aio_clients.unavailable()},
        },
        "rows": [dataclasses.asdict(row) for row in rows],
    }


if __name__ == "__main__":
    sys.exit(main())
