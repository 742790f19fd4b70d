"""The benchmark's machinery at its smallest: one call per scenario, no pacing, shape only.

Speed is measured by `make bench`, never asserted here: these tests check that
every scenario reaches the real processes, sends Bedrock the same request as
its baseline, and comes back as a complete row with its cell's cost. The
`bench` extra (aiobotocore, matplotlib) is optional: without it its scenarios
come back skipped with the reason, and there is no chart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from polling import wait_until

from bench import aio_clients, chart, features
from bench.__main__ import QUICK, parse_args
from bench.cost import CLIENT, cell_cost, format_cost_table
from bench.procs import ProcessMeter, TreeUse, cpu_seconds, memory_kb, process_tree
from bench.scenarios import (
    DEFAULT_SCENARIOS,
    FEATURE_SCENARIOS,
    SCENARIOS,
    BenchConfig,
    Targets,
    run_benchmark,
)
from bench.spread import format_spread, measures, spread
from bench.stats import Row, compare, format_table, percentile, skipped_row, summarize
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

    _check_features(rows)

    # Each worker's warm-up call plus the recorded one reached the emulator, and
    # every route's Bedrock request is the same whoever made it: the plain
    # question, the grounded one or the tool one, each asked alike by the pair
    # and by its boto3 baseline.
    log = emulator.requests()
    streams = [entry for entry in log if entry["operation"] == "ConverseStream"]
    assert all(entry["completed"] for entry in streams)
    per_route = 2 * sum(1 for row in ran if row.route == "micro")
    assert Counter(entry["resolved_model_id"] for entry in streams) == {
        MICRO: per_route,
        PRO: per_route,
    }
    for model in (MICRO, PRO):
        by_kind: dict[str, list[object]] = {}
        for entry in streams:
            if entry["resolved_model_id"] == model:
                by_kind.setdefault(_request_kind(entry["body"]), []).append(entry["body"])
        assert set(by_kind) == {"plain", "grounded", "tools"}, by_kind
        for bodies in by_kind.values():
            assert all(body == bodies[0] for body in bodies), bodies
        # Two grounded scenarios, a warm-up and a recorded call each.
        assert len(by_kind["grounded"]) == len(by_kind["tools"]) == 4

    # One Retrieve per grounded call (not per route), the same request whoever sent it.
    retrieves = [entry for entry in log if entry["operation"] == "Retrieve"]
    assert [entry["model_id"] for entry in retrieves] == [features.KNOWLEDGE_BASE_ID] * 4
    assert all(entry["completed"] for entry in retrieves)
    assert all(entry["body"] == retrieves[0]["body"] for entry in retrieves), retrieves

    table, costs = format_table(rows), format_cost_table(rows)
    assert all(name in table for name in SCENARIOS)
    assert all(row.scenario in costs for row in ran)
    if chart.unavailable() is None:
        drawn = chart.draw(rows, tmp_path / "bench.png", "smoke")
        assert drawn is not None and drawn.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _request_kind(body: dict[str, Any]) -> str:
    """Which question a ConverseStream body asks: grounded ("[S1] ..." blocks), tools, or plain."""
    if "toolConfig" in body:
        return "tools"
    content = body["messages"][-1]["content"]
    if any(block.get("text", "").startswith("[S1] ") for block in content):
        return "grounded"
    return "plain"


def _check_features(rows: list[Row]) -> None:
    """The issue 12 and 13 rows: complete, set beside plain DualChat, tool fragments counted."""
    by_cell = {(row.scenario, row.route): row for row in rows}
    for name in FEATURE_SCENARIOS:
        for route in ("micro", "pro"):
            row = by_cell[(name, route)]
            assert (row.skipped, row.count, row.errors, row.error_kinds) == (False, 1, 0, {}), row
            if name.startswith("dualchat-"):
                assert row.baseline == "dualchat", row
                assert set(row.versus) == {"dualchat", name.replace("dualchat-", "boto3-")}, row
    # Every tool input fragment the emulator streams reaches the caller as its own event
    # (never merged), so a tools cell counts at least its fragments: 2 calls x 2 routes.
    emulated = {"string": "emulated", "integer": 1, "number": 1.5, "boolean": True}
    tool_input = {
        key: emulated[spec["type"]] for key, spec in features.TOOL_SCHEMA["properties"].items()
    }
    fragments = math.ceil(len(json.dumps(tool_input, separators=(",", ":"))) / 7)
    for name in ("boto3-tools", "dualchat-tools"):
        cost = by_cell[(name, "micro")].cost
        assert cost is not None and cost.deltas >= 4 * fragments, (name, cost, fragments)


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
    # Quick runs what issues 12 and 13 added beside plain DualChat; the full sweep leaves them out.
    assert quick.scenarios == [*DEFAULT_SCENARIOS, "dualchat-grounded", "dualchat-tools"]
    assert parse_args([]).scenarios == list(DEFAULT_SCENARIOS)
    assert parse_args([]).concurrency == [1, 10, 50, 200, 500, 1000, 2000]


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([float(n) for n in range(1, 101)], 90) == pytest.approx(90.1)


def _run_rows(added_p50: float, grounded_cpu_s: float) -> list[dict[str, Any]]:
    """A run's rows as the JSON has them: plain DualChat and a grounded one compared with it."""
    plain = cell_cost(
        {"inference": TreeUse(0.2, 0, 0), "gateway": TreeUse(0.2, 0, 0), CLIENT: TreeUse(0, 0, 0)},
        calls=10,
        deltas=1000,
        streams_open=2,
        services=("inference", "gateway"),
    )
    grounded = cell_cost(
        {
            "inference": TreeUse(grounded_cpu_s, 0, 0),
            "gateway": TreeUse(0.1, 0, 0),
            CLIENT: TreeUse(0, 0, 0),
        },
        calls=10,
        deltas=500,
        streams_open=2,
        services=("inference", "gateway"),
    )
    base = summarize(
        "dualchat", "micro", 1, [], wall_s=1, client_cpu_cores=None, host_cpu_busy=None, cost=plain
    )
    row = dataclasses.replace(
        summarize(
            "dualchat-grounded",
            "micro",
            1,
            [],
            wall_s=1,
            client_cpu_cores=None,
            host_cpu_busy=None,
            cost=grounded,
        ),
        ttft_p50_ms=100 + added_p50,
        ttft_p99_ms=110 + added_p50,
    )
    base = dataclasses.replace(base, ttft_p50_ms=100.0, ttft_p99_ms=110.0)
    skipped = skipped_row("dualchat-tools", "micro", 1)
    return [dataclasses.asdict(r) for r in (base, compare(row, base), skipped)]


def test_spread_takes_median_and_range_of_each_comparison_over_runs() -> None:
    runs = [_run_rows(4.0, 0.3), _run_rows(2.0, 0.2), _run_rows(9.0, 0.5)]
    summary = spread(runs)
    added = "added_ttft_p50 vs dualchat"
    assert summary[(1, "dualchat-grounded", "micro", added)] == (4.0, 2.0, 9.0, 3)
    # CPU per call: (inference + gateway) x 1000 / 10 calls; added over plain's 40 ms.
    assert summary[(1, "dualchat-grounded", "", "cpu_ms_per_call")] == pytest.approx(
        (40.0, 30.0, 60.0, 3)
    )
    assert summary[(1, "dualchat-grounded", "", "added_cpu_ms_per_call vs dualchat")] == (
        pytest.approx((0.0, -10.0, 20.0, 3))
    )
    assert summary[(1, "dualchat-grounded", "", "deltas_per_call")] == (50.0, 50.0, 50.0, 3)
    assert not any(key[1] == "dualchat-tools" for key in summary)  # skipped rows give nothing
    assert "dualchat-grounded" in format_spread(summary)


def test_spread_gives_the_marginal_cost_of_extra_deltas_over_a_pair_baseline() -> None:
    def cell(scenario: str, baseline: str | None, inference_ms: float, deltas: int) -> Row:
        cost = cell_cost(
            {
                "inference": TreeUse(inference_ms / 100, 0, 0),
                "gateway": TreeUse(0.1, 0, 0),
                CLIENT: TreeUse(0, 0, 0),
            },
            calls=10,
            deltas=deltas,
            streams_open=2,
            services=("inference", "gateway"),
        )
        row = summarize(
            scenario, "micro", 50, [], wall_s=1, client_cpu_cores=None, host_cpu_busy=None
        )
        return dataclasses.replace(row, cost=cost, baseline=baseline)

    # 100 -> 300 deltas per call; inference 10 -> 30 ms per call: 100 ms per 1,000 extra.
    rows = [cell("dualchat", None, 10, 1000), cell("dualchat-tools", "dualchat", 30, 3000)]
    found = measures([dataclasses.asdict(row) for row in rows])
    extra = "cpu_ms_per_1k_extra_deltas vs dualchat"
    assert found[(50, "dualchat-tools", "", f"inference_{extra}")] == pytest.approx(100.0)
    assert found[(50, "dualchat-tools", "", f"gateway_{extra}")] == pytest.approx(0.0)
    assert found[(50, "dualchat-tools", "", f"pair_{extra}")] == pytest.approx(100.0)
    # Fewer deltas than the baseline (the grounded answer): no marginal figure.
    fewer = [cell("dualchat", None, 10, 1000), cell("dualchat-grounded", "dualchat", 12, 500)]
    assert not any("extra" in key[3] for key in measures([dataclasses.asdict(r) for r in fewer]))
