"""What is measured: each scenario, and a run of all of them at each concurrency.

A pair scenario names its baselines, the callers that put the same load on
the emulator themselves: boto3 with a thread per stream, then aiobotocore on
one loop (chat-micro: boto3-micro, aiobotocore-micro; dualchat: boto3-dual,
aiobotocore-dual, Micro and Pro at once per chat). Baselines run first at
each concurrency, so every comparison is between numbers taken minutes apart
on the same processes. Every cell also records what it cost (bench.cost):
CPU of each service's process tree and of this client, and peak memory.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, TypedDict

import grpc

from bedrock_emulator.catalog import find_model
from bench import aio_clients, features, transport_clients
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
from bench.cost import CLIENT, cell_cost
from bench.load import Load, Plan, run_tasks, run_threads
from bench.machine import CpuMeter
from bench.procs import ProcessMeter
from bench.stats import Row, compare, skipped_row, summarize
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.inference.v1 import inference_pb2_grpc
from inference_service.config import Settings

QUESTION = "How do I measure the time to first token of a streaming chat service?"


@dataclass(frozen=True)
class Targets:
    """Where the three processes listen."""

    aws_env: Mapping[str, str]  # EmulatorHandle.aws_env(): the emulator's endpoint and keys
    inference: str  # host:port
    gateway: str  # host:port
    # Process ids whose trees are measured, by service ("inference", "gateway"); none: no cost.
    pids: Mapping[str, int] = field(default_factory=dict)


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
    pace: float = 1.0  # the emulator's pace, for the floor: its scheduled first token

    def model(self, route: str) -> str:
        return {"micro": self.micro_model, "pro": self.pro_model}[route]

    def floor_ms(self, route: str) -> float | None:
        """When the emulator sends the route's first token, at this pace: no caller beats it."""
        spec = find_model(self.model(route))
        return None if spec is None else spec.pacing.first_token_s * self.pace * 1000

    def requests(self, concurrency: int) -> int:
        return max(concurrency * self.rounds, self.min_requests)


Runner = Callable[[Targets, BenchConfig, Plan], Load]


def _versions(*packages: str) -> Callable[[], dict[str, str]]:
    def found() -> dict[str, str]:
        versions = {}
        for package in packages:
            try:
                versions[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                versions[package] = "not installed"
        return versions

    return found


@dataclass(frozen=True)
class Scenario:
    name: str
    routes: tuple[str, ...]
    run: Runner
    about: str
    baselines: tuple[str, ...] = ()  # compared with these, the first in the table's +ttft columns
    services: tuple[str, ...] = ()  # the services its calls pass through (their CPU is its cost)
    libraries: Callable[[], dict[str, str]] = _versions("boto3", "botocore")
    unavailable: Callable[[], str | None] = lambda: None  # why it cannot run here

    @property
    def baseline(self) -> str | None:
        return self.baselines[0] if self.baselines else None


def _boto3_single(route: str) -> Runner:
    def run(targets: Targets, config: BenchConfig, plan: Plan) -> Load:
        client = bedrock_client(
            targets.aws_env, pool_size=plan.concurrency, timeout_s=config.call_timeout_s
        )
        kwargs = converse_kwargs(config.model(route), config.question, route)
        try:
            return run_threads(lambda: [boto3_stream(client, route, kwargs)], plan)
        finally:
            client.close()

    return run


def _boto3_dual(targets: Targets, config: BenchConfig, plan: Plan) -> Load:
    kwargs = {
        route: converse_kwargs(config.model(route), config.question, route) for route in ROUTES
    }
    return _boto3_both_routes(targets, config, plan, kwargs)


def _boto3_tools(targets: Targets, config: BenchConfig, plan: Plan) -> Load:
    question = features.tool_question(config.question)
    kwargs = {
        route: features.tool_kwargs(converse_kwargs(config.model(route), question, route))
        for route in ROUTES
    }
    return _boto3_both_routes(targets, config, plan, kwargs)


def _boto3_both_routes(
    targets: Targets, config: BenchConfig, plan: Plan, kwargs: dict[str, dict[str, Any]]
) -> Load:
    """Micro's and Pro's converse_stream at once per chat, each `kwargs[route]`, on threads."""
    client = bedrock_client(
        targets.aws_env, pool_size=2 * plan.concurrency, timeout_s=config.call_timeout_s
    )
    helper = ThreadPoolExecutor(max_workers=plan.concurrency, thread_name_prefix="bench-micro")
    try:
        return run_threads(lambda: boto3_dual(client, kwargs, helper), plan)
    finally:
        helper.shutdown(wait=False, cancel_futures=True)
        client.close()


def _boto3_grounded(targets: Targets, config: BenchConfig, plan: Plan) -> Load:
    runtime = bedrock_client(
        targets.aws_env, pool_size=2 * plan.concurrency, timeout_s=config.call_timeout_s
    )
    agent = features.agent_client(
        targets.aws_env, pool_size=plan.concurrency, timeout_s=config.call_timeout_s
    )
    kwargs = {
        route: converse_kwargs(config.model(route), config.question, route) for route in ROUTES
    }
    helper = ThreadPoolExecutor(max_workers=plan.concurrency, thread_name_prefix="bench-micro")
    try:
        return run_threads(
            lambda: features.boto3_grounded_dual(agent, runtime, config.question, kwargs, helper),
            plan,
        )
    finally:
        helper.shutdown(wait=False, cancel_futures=True)
        agent.close()
        runtime.close()


def _aio_single(route: str) -> Runner:
    def run(targets: Targets, config: BenchConfig, plan: Plan) -> Load:
        kwargs = converse_kwargs(config.model(route), config.question, route)

        async def cell() -> Load:
            async with aio_clients.aio_bedrock_client(
                targets.aws_env, pool_size=plan.concurrency, timeout_s=config.call_timeout_s
            ) as client:

                async def call() -> list[Sample]:
                    return [await aio_clients.aio_stream(client, route, kwargs)]

                return await run_tasks(call, plan)

        return asyncio.run(cell())

    return run


def _aio_dual(targets: Targets, config: BenchConfig, plan: Plan) -> Load:
    kwargs = {
        route: converse_kwargs(config.model(route), config.question, route) for route in ROUTES
    }

    async def cell() -> Load:
        async with aio_clients.aio_bedrock_client(
            targets.aws_env, pool_size=2 * plan.concurrency, timeout_s=config.call_timeout_s
        ) as client:
            return await run_tasks(lambda: aio_clients.aio_dual(client, kwargs), plan)

    return asyncio.run(cell())


def _transport_single(route: str) -> Runner:
    def run(targets: Targets, config: BenchConfig, plan: Plan) -> Load:
        call = transport_clients.conversation(config.model(route), config.question, route)

        async def cell() -> Load:
            runtime = transport_clients.bedrock_runtime(
                targets.aws_env, streams=2 * plan.concurrency, timeout_s=config.call_timeout_s
            )
            try:
                return await run_tasks(
                    lambda: _one(transport_clients.transport_stream(runtime, route, call)), plan
                )
            finally:
                await runtime.aclose()

        return asyncio.run(cell())

    return run


async def _one(sample: Awaitable[Sample]) -> list[Sample]:
    return [await sample]


async def _ready_channel(address: str, timeout_s: float) -> grpc.aio.Channel:
    channel = grpc.aio.insecure_channel(address)
    try:
        await asyncio.wait_for(channel.channel_ready(), timeout_s)
    except BaseException:
        await channel.close()
        raise
    return channel


def _chat(route: str) -> Runner:
    def run(targets: Targets, config: BenchConfig, plan: Plan) -> Load:
        return asyncio.run(_chat_cell(targets.inference, route, config, plan))

    return run


async def _chat_cell(address: str, route: str, config: BenchConfig, plan: Plan) -> Load:
    request = chat_request(route, config.question)
    channel = await _ready_channel(address, config.call_timeout_s)
    stub = inference_pb2_grpc.InferenceServiceStub(channel)

    async def call() -> list[Sample]:
        return [await chat_stream(stub, route, request, config.call_timeout_s)]

    try:
        return await run_tasks(call, plan)
    finally:
        await channel.close()


def _dualchat(build: Callable[[str], gateway_pb2.DualChatRequest]) -> Runner:
    """DualChat with the request `build` makes of the configured question."""

    def run(targets: Targets, config: BenchConfig, plan: Plan) -> Load:
        return asyncio.run(_dualchat_cell(targets.gateway, build(config.question), config, plan))

    return run


async def _dualchat_cell(
    address: str, request: gateway_pb2.DualChatRequest, config: BenchConfig, plan: Plan
) -> Load:
    channel = await _ready_channel(address, config.call_timeout_s)
    stub = gateway_pb2_grpc.GatewayStub(channel)
    try:
        return await run_tasks(lambda: dual_chat(stub, request, config.call_timeout_s), plan)
    finally:
        await channel.close()


class _Needs(TypedDict):
    libraries: Callable[[], dict[str, str]]
    unavailable: Callable[[], str | None]


_AIO: _Needs = {
    "libraries": _versions("aiobotocore", "botocore"),
    "unavailable": aio_clients.unavailable,
}
_GRPC = _versions("grpcio")

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
            "aiobotocore-micro",
            ("micro",),
            _aio_single("micro"),
            "aiobotocore converse_stream straight to the emulator, Nova Micro; one asyncio loop",
            baselines=("boto3-micro",),
            **_AIO,
        ),
        Scenario(
            "transport-micro",
            ("micro",),
            _transport_single("micro"),
            "the inference service's Bedrock client (aiohttp + botocore's signer) in this"
            " process, Nova Micro; one asyncio loop, no gRPC",
            baselines=("boto3-micro", "aiobotocore-micro"),
        ),
        Scenario(
            "chat-micro",
            ("micro",),
            _chat("micro"),
            "inference service Chat(micro), grpc.aio, all streams on one channel",
            baselines=("boto3-micro", "aiobotocore-micro"),
            services=("inference",),
            libraries=_GRPC,
        ),
        Scenario(
            "boto3-pro",
            ("pro",),
            _boto3_single("pro"),
            "boto3 converse_stream straight to the emulator, Nova Pro; a thread per stream",
        ),
        Scenario(
            "aiobotocore-pro",
            ("pro",),
            _aio_single("pro"),
            "aiobotocore converse_stream straight to the emulator, Nova Pro; one asyncio loop",
            baselines=("boto3-pro",),
            **_AIO,
        ),
        Scenario(
            "transport-pro",
            ("pro",),
            _transport_single("pro"),
            "the inference service's Bedrock client in this process, Nova Pro; one asyncio loop",
            baselines=("boto3-pro", "aiobotocore-pro"),
        ),
        Scenario(
            "chat-pro",
            ("pro",),
            _chat("pro"),
            "inference service Chat(pro), grpc.aio, all streams on one channel",
            baselines=("boto3-pro", "aiobotocore-pro"),
            services=("inference",),
            libraries=_GRPC,
        ),
        Scenario(
            "boto3-dual",
            ROUTES,
            _boto3_dual,
            "boto3 Micro and Pro at once per chat (two threads), as the seed app called them",
        ),
        Scenario(
            "aiobotocore-dual",
            ROUTES,
            _aio_dual,
            "aiobotocore Micro and Pro at once per chat, every stream on one asyncio loop",
            baselines=("boto3-dual",),
            **_AIO,
        ),
        Scenario(
            "dualchat",
            ROUTES,
            _dualchat(dual_chat_request),
            "gateway DualChat (gateway -> inference -> emulator), grpc.aio, one channel",
            baselines=("boto3-dual", "aiobotocore-dual"),
            services=("inference", "gateway"),
            libraries=_GRPC,
        ),
        # Issues 12 and 13: compared first with plain dualchat (what the feature adds),
        # then with boto3 doing the same work itself.
        Scenario(
            "boto3-grounded",
            ROUTES,
            _boto3_grounded,
            f"boto3 bedrock-agent-runtime Retrieve ({features.KNOWLEDGE_BASE_ID}), then Micro and"
            " Pro at once with the passages (two threads)",
        ),
        Scenario(
            "dualchat-grounded",
            ROUTES,
            _dualchat(features.grounded_dual_chat_request),
            f"DualChat grounded in {features.KNOWLEDGE_BASE_ID}: one Retrieve through the"
            " inference service, then both routes with the passages",
            baselines=("dualchat", "boto3-grounded"),
            services=("inference", "gateway"),
            libraries=_GRPC,
        ),
        Scenario(
            "boto3-tools",
            ROUTES,
            _boto3_tools,
            f"boto3 Micro and Pro at once offering {features.TOOL_NAME}, which both call"
            " (95 tool input fragments per route)",
        ),
        Scenario(
            "dualchat-tools",
            ROUTES,
            _dualchat(features.tool_dual_chat_request),
            f"DualChat offering {features.TOOL_NAME}: both routes call it, their input"
            " fragments relayed",
            baselines=("dualchat", "boto3-tools"),
            services=("inference", "gateway"),
            libraries=_GRPC,
        ),
    )
}
DEFAULT_SCENARIOS = (
    "boto3-micro",
    "aiobotocore-micro",
    "transport-micro",
    "chat-micro",
    "boto3-dual",
    "aiobotocore-dual",
    "dualchat",
)
# What issues 12 and 13 added, each beside plain DualChat: in --quick, and at low
# concurrency on request; the full sweep leaves them out to keep its 40-minute budget.
FEATURE_SCENARIOS = ("boto3-grounded", "dualchat-grounded", "boto3-tools", "dualchat-tools")


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

    No call starts after `deadline` (time.monotonic()); cells it leaves out,
    and scenarios this machine cannot run, come back as skipped rows.
    """
    ordered = [name for name in SCENARIOS if name in scenarios]
    rows: list[Row] = []
    for concurrency in concurrencies:
        taken: dict[tuple[str, str], Row] = {}
        for name in ordered:
            scenario = SCENARIOS[name]
            for row in _run_cell(scenario, concurrency, targets, config, deadline, progress):
                for baseline_name in scenario.baselines:
                    baseline = taken.get((baseline_name, row.route))
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
    reason = scenario.unavailable()
    if reason is None and time.monotonic() >= deadline:
        reason = "time budget"
    if reason is not None:
        return [
            skipped_row(scenario.name, route, concurrency, reason, config.floor_ms(route))
            for route in scenario.routes
        ]
    plan = Plan(
        concurrency=concurrency,
        requests=config.requests(concurrency),
        ramp_s=config.ramp_s,
        deadline=deadline,
        call_timeout_s=config.call_timeout_s,
    )
    measured = {name: pid for name, pid in targets.pids.items() if name in scenario.services}
    processes = ProcessMeter(measured, alone={CLIENT: os.getpid()}).start()
    meter = CpuMeter().start()
    started = time.monotonic()
    load = scenario.run(targets, config, plan)
    wall_s = time.monotonic() - started
    cpu = meter.stop()
    cost = cell_cost(
        processes.stop(),
        calls=load.calls,
        deltas=load.deltas,
        streams_open=concurrency * len(scenario.routes),
        services=scenario.services,
    )
    libraries = scenario.libraries()
    rows = [
        summarize(
            scenario.name,
            route,
            concurrency,
            load.samples,
            wall_s=wall_s,
            client_cpu_cores=cpu.client_cores,
            host_cpu_busy=cpu.host_busy,
            floor_ms=config.floor_ms(route),
            libraries=libraries,
            cost=cost,
        )
        for route in scenario.routes
    ]
    if progress is not None:
        for row in rows:
            progress(
                f"{scenario.name:<17} {row.route:<5} conc {concurrency:>4}: {row.count} calls,"
                f" {row.errors} errors, ttft p50 {_ms(row.ttft_p50_ms)}, {wall_s:.1f} s"
            )
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
