"""The benchmark's machinery at its smallest: one call per scenario, no pacing, shape only.

Speed is measured by `make bench`, never asserted here: these tests check that
every scenario reaches the real processes, sends Bedrock the same request as
its baseline, and comes back as a complete row.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from bench.scenarios import SCENARIOS, BenchConfig, Targets, run_benchmark
from bench.stats import format_table, percentile
from dualnova.stack import EmulatorHandle, ServiceHandle

MICRO = "amazon.nova-micro-v1:0"
PRO = "amazon.nova-pro-v1:0"


def test_every_scenario_gives_a_complete_row(
    emulator: EmulatorHandle, inference: ServiceHandle, gateway: ServiceHandle
) -> None:
    emulator.set_pace(0)
    rows = run_benchmark(
        Targets(aws_env=emulator.aws_env(), inference=inference.address, gateway=gateway.address),
        BenchConfig(rounds=1, min_requests=1, ramp_s=0, call_timeout_s=10),
        concurrencies=[1],
        scenarios=list(SCENARIOS),
        deadline=time.monotonic() + 30,
    )

    assert [(row.scenario, row.route) for row in rows] == [
        ("boto3-micro", "micro"),
        ("chat-micro", "micro"),
        ("boto3-pro", "pro"),
        ("chat-pro", "pro"),
        ("boto3-dual", "micro"),
        ("boto3-dual", "pro"),
        ("dualchat", "micro"),
        ("dualchat", "pro"),
    ]
    for row in rows:
        assert (row.concurrency, row.count, row.errors, row.skipped) == (1, 1, 0, False), row
        assert row.ttft_p50_ms is not None and row.ttft_p50_ms > 0, row
        assert row.total_p50_ms is not None and row.total_p50_ms >= row.ttft_p50_ms, row
        if row.scenario.startswith("boto3-"):
            assert row.baseline is None and row.added_ttft_p50_ms is None, row
        else:
            assert row.baseline == SCENARIOS[row.scenario].baseline, row
            assert row.added_ttft_p50_ms is not None, row

    # Each worker's warm-up call plus the recorded one reached the emulator, and
    # every route's Bedrock request is the same whoever made it.
    streams = [entry for entry in emulator.requests() if entry["operation"] == "ConverseStream"]
    assert all(entry["completed"] for entry in streams)
    assert Counter(entry["resolved_model_id"] for entry in streams) == {MICRO: 8, PRO: 8}
    for model in (MICRO, PRO):
        bodies = [entry["body"] for entry in streams if entry["resolved_model_id"] == model]
        assert all(body == bodies[0] for body in bodies), bodies

    table = format_table(rows)
    assert all(name in table for name in SCENARIOS)


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([float(n) for n in range(1, 101)], 90) == pytest.approx(90.1)
