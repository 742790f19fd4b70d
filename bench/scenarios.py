"""What is measured: each scenario, and a run of all of them at each concurrency.

A pair scenario names its baseline, the boto3 scenario that puts the same
load on the emulator (chat-micro: boto3-micro; dualchat: boto3-dual, Micro
and Pro at once per chat). Baselines run first at each concurrency, so every
comparison is between numbers taken minutes apart on the same processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc

from bench.clients import (
    ROUTES,
    Sample,
    bedrock_client,
    boto3_dual,
    boto3_stream,
    chat_request,
    chat_stream,
    converse_kwargs,
    dual_chat,
    dual_chat_request,
)
from bench.load import Plan, run_tasks, run_threads
from bench.machine import CpuMeter
from bench.stats import Row, compare, skipped_row, summarize
from dualnova.gateway.v1 import gateway_pb2_grpc
from dualnova.inference.v1 import inference_pb2_grpc
from inference_service.config import Settings

QUESTION = "How do I measure the time to first token of a streaming chat service?"


@dataclass(frozen=True)
class Targets:
    """Where the three processes listen."""

    aws_env: Mapping[str, str]  # EmulatorHandle.aws_env(): the emulator's endpoint and keys
    inference: str  # host:port
    gateway: str  # host:port


@dataclass(frozen=True)
class BenchConfig:
    question: str = QUESTION
    # The ids the inference service resolves "micro" and "pro" to; the baseline calls the same.
    micro_model: str = Settings.micro_model
    pro_model: str = Settings.pro_model
    rounds: int = 2  # recorded calls per worker (at least)
    min_requests: int = 10  # recorded calls per cell (at least), for low concurrency
    ramp_s: float = 1.0  # workers' starts are spread over this
    call_timeout_s: float = 60.0

    def model(self, route: str) -> str:
        return {"micro": self.micro_model, "pro": self.pro_model}[route]

    def requests(self, concurrency: int) -> int:
        return max(concurrency * self.rounds, self.min_requests)


Runner = Callable[[Targets, BenchConfig, Plan], list[Sample]]


@dataclass(frozen=True)
class Scenario:
    name: str
    routes: tuple[str, ...]
    run: Runner
    about: str
    baseline: str | None = None


def _boto3_single(route: str) -> Runner:
    def run(targets: Targets, config: BenchConfig, plan: Plan) -> list[Sample]:
        client = bedrock_client(
            targets.aws_env, pool_size=plan.concurrency, timeout_s=config.call_timeout_s
        )
        kwargs = converse_kwargs(config.model(route), config.question, route)
        try:
            return run_threads(lambda: [boto3_stream(client, route, kwargs)], plan)
        finally:
            client.close()

    return run


def _boto3_dual(targets: Targets, config: BenchConfig, plan: Plan) -> list[Sample]:
    client = bedrock_client(
        targets.aws_env, pool_size=2 * plan.concurrency, timeout_s=config.call_timeout_s
    )
    kwargs = {
        route: converse_kwargs(config.model(route), config.question, route) for route in ROUTES
    }
    helper = ThreadPoolExecutor(max_workers=plan.concurrency, thread_name_prefix="bench-micro")
    try:
        return run_threads(lambda: boto3_dual(client, kwargs, helper), plan)
    finally:
        helper.shutdown(wait=False, cancel_futures=True)
        client.close()


async def _ready_channel(address: str, timeout_s: float) -> grpc.aio.Channel:
    channel = grpc.aio.insecure_channel(address)
    try:
        await asyncio.wait_for(channel.channel_ready(), timeout_s)
    except BaseException:
        await channel.close()
        raise
    return channel


def _chat(route: str) -> Runner:
    def run(targets: Targets, config: BenchConfig, plan: Plan) -> list[Sample]:
        return asyncio.run(_chat_cell(targets.inference, route, config, plan))

    return run


async def _chat_cell(address: str, route: str, config: BenchConfig, plan: Plan) -> list[Sample]:
    request = chat_request(route, config.question)
    channel = await _ready_channel(address, config.call_timeout_s)
    stub = inference_pb2_grpc.InferenceServiceStub(channel)

    async def call() -> list[Sample]:
        return [await chat_stream(stub, route, request, config.call_timeout_s)]

    try:
        return await run_tasks(call, plan)
    finally:
        await channel.close()


def _dualchat(targets: Targets, config: BenchConfig, plan: Plan) -> list[Sample]:
    return asyncio.run(_dualchat_cell(targets.gateway, config, plan))


async def _dualchat_cell(address: str, config: BenchConfig, plan: Plan) -> list[Sample]:
    request = dual_chat_request(config.question)
    channel = await _ready_channel(address, config.call_timeout_s)
    stub = gateway_pb2_grpc.GatewayStub(channel)
    try:
        return await run_tasks(lambda: dual_chat(stub, request, config.call_timeout_s), plan)
    finally:
        await channel.close()


# In run order: a baseline comes before the scenarios compared with it.
SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "boto3-micro",
            ("micro",),
            _boto3_single("micro"),
            "boto3 converse_stream straight to the emulator, Nova Micro; a thread per stream",
        ),
        Scenario(
            "chat-micro",
            ("micro",),
            _chat("micro"),
            "inference service Chat(micro), grpc.aio, all streams on one channel",
            baseline="boto3-micro",
        ),
        Scenario(
            "boto3-pro",
            ("pro",),
            _boto3_single("pro"),
            "boto3 converse_stream straight to the emulator, Nova Pro; a thread per stream",
        ),
        Scenario(
            "chat-pro",
            ("pro",),
            _chat("pro"),
            "inference service Chat(pro), grpc.aio, all streams on one channel",
            baseline="boto3-pro",
        ),
        Scenario(
            "boto3-dual",
            ROUTES,
            _boto3_dual,
            "boto3 Micro and Pro at once per chat (two threads), as the seed app called them",
        ),
        Scenario(
            "dualchat",
            ROUTES,
            _dualchat,
            "gateway DualChat (gateway -> inference -> emulator), grpc.aio, one channel",
            baseline="boto3-dual",
        ),
    )
}
DEFAULT_SCENARIOS = ("boto3-micro", "chat-micro", "boto3-dual", "dualchat")


def run_benchmark(
    targets: Targets,
    config: BenchConfig,
    *,
    concurrencies: Sequence[int],
    scenarios: Sequence[str] = DEFAULT_SCENARIOS,
    deadline: float,
    progress: Callable[[str], None] | None = None,
) -> list[Row]:
    """Every scenario at every concurrency, in SCENARIOS order; the table's rows.

    No call starts after `deadline` (time.monotonic()); cells it leaves out
    come back as skipped rows.
    """
    ordered = [name for name in SCENARIOS if name in scenarios]
    rows: list[Row] = []
    for concurrency in concurrencies:
        taken: dict[tuple[str, str], Row] = {}
        for name in ordered:
            scenario = SCENARIOS[name]
            for row in _run_cell(scenario, concurrency, targets, config, deadline, progress):
                baseline = taken.get((scenario.baseline or "", row.route))
                if baseline is not None and not row.skipped and not baseline.skipped:
                    row = compare(row, baseline)
                taken[(name, row.route)] = row
                rows.append(row)
    return rows


def _run_cell(
    scenario: Scenario,
    concurrency: int,
    targets: Targets,
    config: BenchConfig,
    deadline: float,
    progress: Callable[[str], None] | None,
) -> list[Row]:
    if time.monotonic() >= deadline:
        return [skipped_row(scenario.name, route, concurrency) for route in scenario.routes]
    plan = Plan(
        concurrency=concurrency,
        requests=config.requests(concurrency),
        ramp_s=config.ramp_s,
        deadline=deadline,
        call_timeout_s=config.call_timeout_s,
    )
    meter = CpuMeter().start()
    started = time.monotonic()
    samples = scenario.run(targets, config, plan)
    wall_s = time.monotonic() - started
    cpu = meter.stop()
    rows = [
        summarize(
            scenario.name,
            route,
            concurrency,
            samples,
            wall_s=wall_s,
            client_cpu_cores=cpu.client_cores,
            host_cpu_busy=cpu.host_busy,
        )
        for route in scenario.routes
    ]
    if progress is not None:
        for row in rows:
            progress(
                f"{scenario.name:<12} {row.route:<5} conc {concurrency:>4}: {row.count} calls,"
                f" {row.errors} errors, ttft p50 {_ms(row.ttft_p50_ms)}, {wall_s:.1f} s"
            )
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
