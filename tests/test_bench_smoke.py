"""The benchmark's machinery at its smallest: one call per scenario, no pacing, shape only.

Speed is measured by `make bench`, never asserted here: these tests check that
every scenario reaches the real processes, sends Bedrock the same request as
its baseline, and comes back as a complete row with its cell's cost. The
`bench` extra (aiobotocore, matplotlib) is optional: without it its scenarios
come back skipped with the reason, and there is no chart.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from polling import wait_until

from bench import aio_clients, chart
from bench.__main__ import QUICK, parse_args
from bench.cost import CLIENT, cell_cost, format_cost_table
from bench.procs import ProcessMeter, TreeUse, cpu_seconds, memory_kb, process_tree
from bench.scenarios import SCENARIOS, BenchConfig, Targets, run_benchmark
from bench.stats import Row, format_table, percentile
from dualnova.dev.stack import EmulatorHandle, ServiceHandle

MICRO = "amazon.nova-micro-v1:0"
PRO = "amazon.nova-pro-v1:0"


AIO_MISSING = aio_clients.unavailable()


def test_every_scenario_gives_a_complete_row(
    emulator: EmulatorHandle, inference: ServiceHandle, gateway: ServiceHandle, tmp_path: Path
) -> None:
    emulator.set_pace(0)
    assert inference.pid is not None and gateway.pid is not None
    rows = run_benchmark(
        Targets(
            aws_env=emulator.aws_env(),
            inference=inference.address,
            gateway=gateway.address,
            pids={"inference": inference.pid, "gateway": gateway.pid},
        ),
        BenchConfig(rounds=1, min_requests=1, ramp_s=0, call_timeout_s=10, pace=0),
        concurrencies=[1],
        scenarios=list(SCENARIOS),
        deadline=time.monotonic() + 30,
    )

    assert [(row.scenario, row.route) for row in rows] == [
        (name, route) for name, scenario in SCENARIOS.items() for route in scenario.routes
    ]
    ran = [row for row in rows if not row.skipped]
    for row in rows:
        assert row.floor_ms == 0, row  # pace 0: the emulator schedules the first token at once
        if row.scenario.startswith("aiobotocore-") and AIO_MISSING:
            assert (row.skipped, row.skip_reason, row.cost) == (True, AIO_MISSING, None), row
            continue
        assert (row.concurrency, row.count, row.errors, row.skipped) == (1, 1, 0, False), row
        assert row.ttft_p50_ms is not None and row.ttft_p50_ms > 0, row
        assert row.total_p50_ms is not None and row.total_p50_ms >= row.ttft_p50_ms, row
        if row.scenario.startswith("boto3-"):
            assert row.baseline is None and row.added_ttft_p50_ms is None, row
        else:
            assert row.baseline == SCENARIOS[row.scenario].baseline, row
            assert row.added_ttft_p50_ms is not None and row.added_ttft_p99_ms is not None, row
            ran_baselines = set(SCENARIOS[row.scenario].baselines)
            ran_baselines -= {r.scenario for r in rows if r.skipped}
            assert set(row.versus) == ran_baselines, row
        _check_cost(row, SCENARIOS[row.scenario].services)

    # Each worker's warm-up call plus the recorded one reached the emulator, and
    # every route's Bedrock request is the same whoever made it.
    streams = [entry for entry in emulator.requests() if entry["operation"] == "ConverseStream"]
    assert all(entry["completed"] for entry in streams)
    per_route = 2 * sum(1 for row in ran if row.route == "micro")
    assert Counter(entry["resolved_model_id"] for entry in streams) == {
        MICRO: per_route,
        PRO: per_route,
    }
    for model in (MICRO, PRO):
        bodies = [entry["body"] for entry in streams if entry["resolved_model_id"] == model]
        assert all(body == bodies[0] for body in bodies), bodies

    table, costs = format_table(rows), format_cost_table(rows)
    assert all(name in table for name in SCENARIOS)
    assert all(row.scenario in costs for row in ran)
    if chart.unavailable() is None:
        drawn = chart.draw(rows, tmp_path / "bench.png", "smoke")
        assert drawn is not None and drawn.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _check_cost(row: Row, services: tuple[str, ...]) -> None:
    """A warm-up and a recorded call, their deltas counted, CPU and memory read for each part."""
    cost = row.cost
    assert cost is not None, row
    assert (cost.calls, cost.streams_open) == (2, len(SCENARIOS[row.scenario].routes)), row
    assert cost.deltas > 0, row
    assert cost.services == services, row
    expected = {*services, CLIENT, *(["pair"] if services else [])}
    assert set(cost.cpu_ms_per_call) == set(cost.cpu_ms_per_1k_deltas) == expected, row
    assert all(value is not None and value >= 0 for value in cost.cpu_ms_per_call.values()), row
    holder = "pair" if services else CLIENT
    assert cost.rss_kb_per_stream[holder] is not None, row


def test_cost_divides_cpu_by_calls_and_deltas_and_memory_by_open_streams() -> None:
    use = {
        "inference": TreeUse(cpu_s=0.3, idle_rss_kb=1000, peak_rss_kb=1400),
        "gateway": TreeUse(cpu_s=0.1, idle_rss_kb=500, peak_rss_kb=700),
        CLIENT: TreeUse(cpu_s=0.2, idle_rss_kb=100, peak_rss_kb=90),
    }
    pair = cell_cost(use, calls=10, deltas=2000, streams_open=20, services=("inference", "gateway"))
    assert pair.cpu_ms_per_call == pytest.approx(
        {"inference": 30.0, "gateway": 10.0, "pair": 40.0, CLIENT: 20.0}
    )
    assert pair.cpu_ms_per_1k_deltas["pair"] == pytest.approx(200.0)
    assert pair.rss_kb_per_stream == {"pair": 30.0, CLIENT: 0.0}

    baseline = cell_cost(
        {CLIENT: TreeUse(0.5, 100, 300)}, calls=10, deltas=2000, streams_open=20, services=()
    )
    assert baseline.caller_ms_per_call == pytest.approx(50.0)
    assert pair.cpu_ratio(baseline) == pytest.approx(0.8)
    assert baseline.cpu_ratio(baseline) is None  # a baseline has no services to compare


def test_a_service_is_measured_with_its_workers() -> None:
    # A parent that starts a busy child: the tree holds both and their CPU adds up.
    code = (
        "import subprocess, sys, time;"
        "child = subprocess.Popen([sys.executable, '-c', 'while True: pass']);"
        "time.sleep(30)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:

        def with_child() -> list[int] | None:
            tree = process_tree(parent.pid)
            return tree if len(tree) >= 2 else None

        tree = wait_until(with_child, "the busy child to start", timeout=10)
        assert len(tree) == 2 and tree[0] == parent.pid
        meter = ProcessMeter({"service": parent.pid}, alone={CLIENT: os.getpid()}).start()
        time.sleep(0.3)
        use = meter.stop()
        assert use["service"].cpu_s is not None and use["service"].cpu_s > 0
        assert use["service"].peak_rss_kb is not None and use["service"].idle_rss_kb is not None
        assert cpu_seconds(tree) is not None and memory_kb(tree) is not None
    finally:
        for pid in reversed(process_tree(parent.pid)):
            os.kill(pid, 9)
        parent.wait()


def test_quick_preset_sets_defaults_that_flags_still_override() -> None:
    quick = parse_args(["--quick"])
    assert (quick.concurrency, quick.rounds, quick.pace) == (
        QUICK["concurrency"],
        QUICK["rounds"],
        QUICK["pace"],
    )
    assert parse_args(["--quick", "--rounds", "2"]).rounds == 2
    assert parse_args([]).concurrency == [1, 10, 50, 200, 500, 1000, 2000]


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([float(n) for n in range(1, 101)], 90) == pytest.approx(90.1)
