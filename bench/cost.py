"""What a cell cost: CPU per call and per 1,000 relayed deltas, and memory per open stream.

The bar the pair is held to is a relay that costs less CPU than calling
Bedrock yourself, so the services' CPU (summed over each one's process tree)
is set beside the baseline caller's own: the benchmark process's CPU in the
boto3 and aiobotocore cells. CPU is taken over the whole cell, warm-ups and
ramp included, so it is divided by every call made and every delta received,
not by the recorded ones alone.

Memory is the rise of resident memory during the cell (the processes' peaks
minus what they held just before) over the streams open at once. Memory an
earlier cell left in the allocator counts as already held, so a later cell's
figure is a lower bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.procs import TreeUse

if TYPE_CHECKING:
    from bench.stats import Row

SERVICES = ("inference", "gateway")
CLIENT = "client"


@dataclass(frozen=True)
class CellCost:
    """One cell's CPU and memory; every per-call figure is CPU milliseconds."""

    calls: int  # every call made in the cell, warm-ups included
    deltas: int  # text deltas the client received over those calls (both routes)
    streams_open: int  # concurrency x routes per call: Bedrock streams in flight at once
    services: tuple[str, ...]  # the services the calls passed through ("pair" sums these)
    cpu_s: dict[str, float | None] = field(default_factory=dict)  # over the cell, by process
    cpu_ms_per_call: dict[str, float | None] = field(default_factory=dict)  # + "pair"
    cpu_ms_per_1k_deltas: dict[str, float | None] = field(default_factory=dict)  # + "pair"
    rss_kb_per_stream: dict[str, float | None] = field(default_factory=dict)  # "pair", "client"

    @property
    def caller_ms_per_call(self) -> float | None:
        """What serving a call cost: the services' CPU, or the caller's own if there are none."""
        return self.cpu_ms_per_call.get("pair" if self.services else CLIENT)

    def cpu_ratio(self, baseline: CellCost) -> float | None:
        """This cell's services' CPU per call over `baseline`'s caller's CPU per call."""
        mine, theirs = self.cpu_ms_per_call.get("pair"), baseline.caller_ms_per_call
        if mine is None or not theirs or not self.services:
            return None
        return mine / theirs


def _per(value: float | None, count: int, scale: float) -> float | None:
    return None if value is None or count <= 0 else value * scale / count


def _sum(values: Sequence[float | None]) -> float | None:
    """The sum, or None if any part is unknown: a partial sum would pass for the whole."""
    if not values or None in values:
        return None
    return sum(value for value in values if value is not None)


def cell_cost(
    use: Mapping[str, TreeUse],
    *,
    calls: int,
    deltas: int,
    streams_open: int,
    services: Sequence[str],
) -> CellCost:
    """The cell's cost from ProcessMeter readings; services not in `services` are left out."""
    names = [*[name for name in SERVICES if name in services and name in use], CLIENT]
    cpu = {name: use[name].cpu_s if name in use else None for name in names}
    if services:
        cpu["pair"] = _sum([cpu[name] for name in names if name != CLIENT])
    added = {
        "pair": _sum([use[name].added_rss_kb for name in names if name != CLIENT])
        if services
        else None,
        CLIENT: use[CLIENT].added_rss_kb if CLIENT in use else None,
    }
    return CellCost(
        calls=calls,
        deltas=deltas,
        streams_open=streams_open,
        services=tuple(names[:-1]),
        cpu_s=cpu,
        cpu_ms_per_call={name: _per(value, calls, 1000) for name, value in cpu.items()},
        cpu_ms_per_1k_deltas={name: _per(value, deltas, 1e6) for name, value in cpu.items()},
        rss_kb_per_stream={name: _per(value, streams_open, 1) for name, value in added.items()},
    )


# ---- the cost table: one line per cell ----------------------------------------

_COLUMNS = (
    # header, width
    ("scenario", 17),
    ("conc", 5),
    ("calls", 6),
    ("deltas", 7),
    ("inf/call", 8),
    ("gw/call", 7),
    ("client/call", 11),
    ("inf/1k", 7),
    ("gw/1k", 6),
    ("client/1k", 9),
    ("vs base", 7),
    ("KB/stream", 9),
    ("client cpu", 10),
    ("host cpu", 8),
)


def format_cost_table(rows: Sequence[Row]) -> str:
    """A line per cell that ran: CPU ms per call and per 1,000 deltas, memory, CPU busy."""
    lines = [_line([header for header, _ in _COLUMNS])]
    lines.append("-" * len(lines[0]))
    seen: set[tuple[str, int]] = set()
    previous = None
    for row in rows:
        if row.skipped or row.cost is None or (row.scenario, row.concurrency) in seen:
            continue
        seen.add((row.scenario, row.concurrency))
        if previous is not None and row.concurrency != previous:
            lines.append("")
        previous = row.concurrency
        lines.append(_line(_cells(row, row.cost)))
    return "\n".join(lines)


def _cells(row: Row, cost: CellCost) -> list[str]:
    per_call, per_1k = cost.cpu_ms_per_call, cost.cpu_ms_per_1k_deltas
    ratio = None if row.baseline is None else row.versus.get(row.baseline, {}).get("cpu_ratio")
    return [
        row.scenario,
        str(row.concurrency),
        str(cost.calls),
        str(cost.deltas),
        _number(per_call.get("inference")),
        _number(per_call.get("gateway")),
        _number(per_call.get(CLIENT)),
        _number(per_1k.get("inference")),
        _number(per_1k.get("gateway")),
        _number(per_1k.get(CLIENT)),
        "" if ratio is None else f"{ratio:.2f}x",
        # Whoever holds the streams: the services, or the baseline caller itself.
        _number(cost.rss_kb_per_stream.get("pair" if cost.services else CLIENT), digits=0),
        "-" if row.client_cpu_cores is None else f"{row.client_cpu_cores:.2f}",
        "-" if row.host_cpu_busy is None else f"{row.host_cpu_busy:.0%}",
    ]


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _line(cells: Sequence[str]) -> str:
    parts = [
        f"{cell:<{width}}" if index == 0 else f"{cell:>{width}}"
        for index, ((_, width), cell) in enumerate(zip(_COLUMNS, cells, strict=True))
    ]
    return "  ".join(parts).rstrip()
