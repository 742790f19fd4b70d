"""Percentiles, one result row per scenario, route and concurrency, and the plain-text table."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.clients import Sample


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
    baseline: str | None = None  # the scenario this row is compared with
    added_ttft_p50_ms: float | None = None  # ttft_p50 minus the baseline's, same route and load
    skipped: bool = False  # the run's time budget was spent before this cell started
    error_kinds: dict[str, int] = field(default_factory=dict)


def summarize(
    scenario: str,
    route: str,
    concurrency: int,
    samples: Sequence[Sample],
    *,
    wall_s: float,
    client_cpu_cores: float | None,
    host_cpu_busy: float | None,
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
        error_kinds=dict(errors),
    )


def skipped_row(scenario: str, route: str, concurrency: int) -> Row:
    """A cell the time budget left out: shown in the table so its absence is visible."""
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
        skipped=True,
    )


def compare(row: Row, baseline: Row) -> Row:
    """`row` with its TTFT p50 set against `baseline` (same route, same concurrency)."""
    added = None
    if row.ttft_p50_ms is not None and baseline.ttft_p50_ms is not None:
        added = row.ttft_p50_ms - baseline.ttft_p50_ms
    return dataclasses.replace(row, baseline=baseline.scenario, added_ttft_p50_ms=added)


_COLUMNS = (
    # header, width, alignment
    ("scenario", 12, "<"),
    ("route", 5, "<"),
    ("conc", 5, ">"),
    ("n", 5, ">"),
    ("err", 4, ">"),
    ("ttft p50", 9, ">"),
    ("p90", 8, ">"),
    ("p99", 8, ">"),
    ("total p50", 10, ">"),
    ("p99", 8, ">"),
    ("+ttft p50", 10, ">"),
    ("client cpu", 10, ">"),
    ("host cpu", 8, ">"),
)


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a fixed-width table; times in ms, CPU in cores (client) and percent (host)."""
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
    if row.skipped:
        return [*head, "0", "-", "skipped", "", "", "", "", "", "", ""]
    added = "" if row.baseline is None else _ms(row.added_ttft_p50_ms, signed=True)
    return [
        *head,
        str(row.count),
        str(row.errors),
        _ms(row.ttft_p50_ms),
        _ms(row.ttft_p90_ms),
        _ms(row.ttft_p99_ms),
        _ms(row.total_p50_ms),
        _ms(row.total_p99_ms),
        added,
        "-" if row.client_cpu_cores is None else f"{row.client_cpu_cores:.2f}",
        "-" if row.host_cpu_busy is None else f"{row.host_cpu_busy:.0%}",
    ]


def _line(cells: Sequence[str]) -> str:
    parts = []
    for (_, width, align), cell in zip(_COLUMNS, cells, strict=True):
        parts.append(f"{cell:{align}{width}}")
    return "  ".join(parts).rstrip()


def _ms(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1f}" if signed else f"{value:.1f}"
