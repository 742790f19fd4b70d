"""Percentiles, one result row per scenario, route and concurrency, and the latency table.

What a cell cost (CPU, memory) is per cell, not per route: bench.cost holds it
and its own table; a Row carries its cell's cost so the JSON has both together.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.clients import Sample
from bench.cost import CellCost


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), interpolated between the two nearest ranks; None if empty.

    Linear interpolation (numpy's default) so p99 of a few dozen samples is a
    blend of the two slowest, not simply the maximum.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Row:
    """One line of the table: a scenario's samples of one route at one concurrency."""

    scenario: str
    route: str
    concurrency: int
    count: int  # samples recorded (warm-up calls excluded), errors included
    errors: int
    ttft_p50_ms: float | None  # percentiles over the samples without error
    ttft_p90_ms: float | None
    ttft_p99_ms: float | None
    total_p50_ms: float | None
    total_p99_ms: float | None
    wall_s: float  # the cell's duration, warm-up and ramp included
    client_cpu_cores: float | None  # CPU the benchmark process itself used, in cores
    host_cpu_busy: float | None  # share of all of the machine's CPUs busy, 0-1
    floor_ms: float | None = None  # the emulator's scheduled first token for this route and pace
    baseline: str | None = None  # the first scenario this row is compared with
    added_ttft_p50_ms: float | None = None  # ttft_p50 minus the baseline's, same route and load
    added_ttft_p99_ms: float | None = None  # ttft_p99 minus the baseline's
    # Every baseline compared with, by name: added ttft p50/p99 (ms) and the CPU ratio.
    versus: dict[str, dict[str, float | None]] = field(default_factory=dict)
    skipped: bool = False  # not run: see skip_reason
    skip_reason: str | None = None  # "time budget", or what the scenario lacks on this machine
    error_kinds: dict[str, int] = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=dict)  # the caller's client libraries
    cost: CellCost | None = None  # the whole cell's CPU and memory (shared by its routes)


def summarize(
    scenario: str,
    route: str,
    concurrency: int,
    samples: Sequence[Sample],
    *,
    wall_s: float,
    client_cpu_cores: float | None,
    host_cpu_busy: float | None,
    floor_ms: float | None = None,
    libraries: dict[str, str] | None = None,
    cost: CellCost | None = None,
) -> Row:
    """The row of `route`'s samples; failed samples count as errors and stay out of percentiles."""
    ttft: list[float] = []
    total: list[float] = []
    errors: Counter[str] = Counter()
    count = 0
    for sample in samples:
        if sample.route != route:
            continue
        count += 1
        if sample.error is not None or sample.ttft_ms is None:
            errors[sample.error or "no text delta"] += 1
        else:
            ttft.append(sample.ttft_ms)
            total.append(sample.total_ms)
    return Row(
        scenario=scenario,
        route=route,
        concurrency=concurrency,
        count=count,
        errors=sum(errors.values()),
        ttft_p50_ms=percentile(ttft, 50),
        ttft_p90_ms=percentile(ttft, 90),
        ttft_p99_ms=percentile(ttft, 99),
        total_p50_ms=percentile(total, 50),
        total_p99_ms=percentile(total, 99),
        wall_s=wall_s,
        client_cpu_cores=client_cpu_cores,
        host_cpu_busy=host_cpu_busy,
        floor_ms=floor_ms,
        error_kinds=dict(errors),
        libraries=dict(libraries or {}),
        cost=cost,
    )


def skipped_row(
    scenario: str,
    route: str,
    concurrency: int,
    reason: str = "time budget",
    floor_ms: float | None = None,
) -> Row:
    """A cell not run (time budget spent, a library missing): shown so its absence is visible."""
    return Row(
        scenario=scenario,
        route=route,
        concurrency=concurrency,
        count=0,
        errors=0,
        ttft_p50_ms=None,
        ttft_p90_ms=None,
        ttft_p99_ms=None,
        total_p50_ms=None,
        total_p99_ms=None,
        wall_s=0.0,
        client_cpu_cores=None,
        host_cpu_busy=None,
        floor_ms=floor_ms,
        skipped=True,
        skip_reason=reason,
    )


def _minus(value: float | None, other: float | None) -> float | None:
    return None if value is None or other is None else value - other


def compare(row: Row, baseline: Row) -> Row:
    """`row` set against `baseline` (same route, same concurrency).

    The first baseline compared with fills the table's +ttft columns; every
    one goes into `versus`, with the CPU ratio: the services' CPU per call over
    the baseline caller's own (below 1: the relay costs less than calling
    Bedrock yourself).
    """
    ratio = None
    if row.cost is not None and baseline.cost is not None:
        ratio = row.cost.cpu_ratio(baseline.cost)
    versus = {
        **row.versus,
        baseline.scenario: {
            "added_ttft_p50_ms": _minus(row.ttft_p50_ms, baseline.ttft_p50_ms),
            "added_ttft_p99_ms": _minus(row.ttft_p99_ms, baseline.ttft_p99_ms),
            "cpu_ratio": ratio,
        },
    }
    if row.baseline is not None:
        return dataclasses.replace(row, versus=versus)
    return dataclasses.replace(
        row,
        baseline=baseline.scenario,
        added_ttft_p50_ms=versus[baseline.scenario]["added_ttft_p50_ms"],
        added_ttft_p99_ms=versus[baseline.scenario]["added_ttft_p99_ms"],
        versus=versus,
    )


SCENARIO_WIDTH = 17  # "aiobotocore-micro"
_COLUMNS = (
    # header, width, alignment
    ("scenario", SCENARIO_WIDTH, "<"),
    ("route", 5, "<"),
    ("conc", 5, ">"),
    ("n", 5, ">"),
    ("err", 4, ">"),
    ("floor", 6, ">"),
    ("ttft p50", 9, ">"),
    ("p90", 8, ">"),
    ("p99", 8, ">"),
    ("total p50", 10, ">"),
    ("p99", 8, ">"),
    ("+ttft p50", 10, ">"),
    ("+ttft p99", 10, ">"),
)


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a fixed-width table of times in ms; CPU and memory are bench.cost's table."""
    lines = [_line([header for header, _, _ in _COLUMNS])]
    lines.append("-" * len(lines[0]))
    previous = None
    for row in rows:
        if previous is not None and row.concurrency != previous:
            lines.append("")
        previous = row.concurrency
        lines.append(_line(_cells(row)))
    return "\n".join(lines)


def _cells(row: Row) -> list[str]:
    head = [row.scenario, row.route, str(row.concurrency)]
    floor = _ms(row.floor_ms)
    if row.skipped:
        return [*head, "0", "-", floor, f"skipped ({row.skip_reason})"]
    compared = row.baseline is not None
    return [
        *head,
        str(row.count),
        str(row.errors),
        floor,
        _ms(row.ttft_p50_ms),
        _ms(row.ttft_p90_ms),
        _ms(row.ttft_p99_ms),
        _ms(row.total_p50_ms),
        _ms(row.total_p99_ms),
        _ms(row.added_ttft_p50_ms, signed=True) if compared else "",
        _ms(row.added_ttft_p99_ms, signed=True) if compared else "",
    ]


def _line(cells: Sequence[str]) -> str:
    """Cells padded to their columns; a shorter list's last cell runs on uncut (a skip reason)."""
    columns = _COLUMNS[: len(cells) - 1]
    parts = [
        f"{cell:{align}{width}}" for (_, width, align), cell in zip(columns, cells, strict=False)
    ]
    parts.append(cells[-1] if len(cells) < len(_COLUMNS) else f"{cells[-1]:>{_COLUMNS[-1][1]}}")
    return "  ".join(parts).rstrip()


def _ms(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1f}" if signed else f"{value:.1f}"
