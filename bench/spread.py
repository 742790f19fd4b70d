"""`python -m bench.spread RUN.json ...`: each comparison's median and range over repeated runs.

One run's added ttft at low concurrency moves by a millisecond or two with
whatever else the machine does, so a number to quote is the median of a few
runs with its range beside it. Each run compares within itself (a row against
its baselines from the same run); this only collects those comparisons:
for every row that has baselines, its added ttft p50 and p99 and its cell's
CPU ratio (bench.stats.compare) against each,
and for every cell through the services, the services' CPU per call, deltas
per call, CPU per 1,000 deltas and the CPU it adds per call over its first
baseline's (the services' for a pair baseline, the caller's own for boto3);
against a pair baseline with clearly fewer deltas per call (plain DualChat
for the tool one), also the CPU per 1,000 extra deltas: the marginal cost of
an event, apart from the per-call costs both pay.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

Key = tuple[int, str, str, str]  # concurrency, scenario, route ("" for a cell), measure


def _caller_ms(row: Mapping[str, Any]) -> float | None:
    """What serving the row's call cost: its services' CPU, else its caller's (bench.cost)."""
    cost = row.get("cost") or {}
    per_call = cost.get("cpu_ms_per_call") or {}
    return per_call.get("pair" if cost.get("services") else "client")


def measures(rows: Sequence[Mapping[str, Any]]) -> dict[Key, float]:
    """One run's comparisons and costs, by (concurrency, scenario, route, measure)."""
    found: dict[Key, float] = {}
    cells = {(row["scenario"], row["concurrency"]): row for row in rows if not row["skipped"]}
    for row in rows:
        if row["skipped"]:
            continue
        where = (row["concurrency"], row["scenario"])
        for baseline, versus in row.get("versus", {}).items():
            for name in ("added_ttft_p50_ms", "added_ttft_p99_ms"):
                if versus.get(name) is not None:
                    found[(*where, row["route"], f"{name[:-3]} vs {baseline}")] = versus[name]
            if versus.get("cpu_ratio") is not None:  # the cell's, the same on both routes
                found[(*where, "", f"cpu_ratio vs {baseline}")] = versus["cpu_ratio"]
        cost = row.get("cost") or {}
        if not cost.get("services") or not cost.get("calls"):
            continue
        per_call, per_1k = cost["cpu_ms_per_call"], cost["cpu_ms_per_1k_deltas"]
        cell = {
            "cpu_ms_per_call": per_call.get("pair"),
            "deltas_per_call": cost["deltas"] / cost["calls"],
            **{f"{name}_cpu_ms_per_1k_deltas": per_1k.get(name) for name in cost["services"]},
        }
        baseline_row = cells.get((row.get("baseline"), row["concurrency"]))
        mine, theirs = per_call.get("pair"), baseline_row and _caller_ms(baseline_row)
        if mine is not None and theirs is not None:
            cell[f"added_cpu_ms_per_call vs {row['baseline']}"] = mine - theirs
        if baseline_row is not None:
            cell.update(_marginal(cost, baseline_row.get("cost") or {}, row["baseline"]))
        found.update(
            {(*where, "", name): value for name, value in cell.items() if value is not None}
        )
    return found


def _marginal(
    cost: Mapping[str, Any], baseline: Mapping[str, Any], name: str
) -> dict[str, float | None]:
    """CPU per 1,000 deltas a cell has beyond its pair baseline's (per call): what each extra
    event costs, apart from the per-call costs both share. Only for a cell with clearly more
    deltas per call (10%) than a baseline through the same services."""
    if not baseline.get("services") or not baseline.get("calls"):
        return {}
    extra = cost["deltas"] / cost["calls"] - baseline["deltas"] / baseline["calls"]
    if extra <= 0.1 * baseline["deltas"] / baseline["calls"]:
        return {}
    mine, theirs = cost["cpu_ms_per_call"], baseline["cpu_ms_per_call"]
    return {
        f"{part}_cpu_ms_per_1k_extra_deltas vs {name}": (mine[part] - theirs[part]) * 1000 / extra
        for part in (*cost["services"], "pair")
        if mine.get(part) is not None and theirs.get(part) is not None
    }


def spread(
    runs: Iterable[Sequence[Mapping[str, Any]]],
) -> dict[Key, tuple[float, float, float, int]]:
    """Each measure's median, minimum and maximum over the runs that have it, and how many do."""
    values: dict[Key, list[float]] = {}
    for rows in runs:
        for key, value in measures(rows).items():
            values.setdefault(key, []).append(value)
    return {
        key: (statistics.median(found), min(found), max(found), len(found))
        for key, found in sorted(values.items())
    }


def format_spread(summary: Mapping[Key, tuple[float, float, float, int]]) -> str:
    lines = [
        f"{'conc':>5}  {'scenario':<17}  {'route':<5}  {'measure':<52}  median [min, max] (runs)"
    ]
    for (concurrency, scenario, route, name), (median, low, high, count) in summary.items():
        digits = 2 if name.startswith("cpu_ratio") else 1
        lines.append(
            f"{concurrency:>5}  {scenario:<17}  {route or 'cell':<5}  {name:<52}"
            f"  {median:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}] ({count})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    paths = [Path(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python -m bench.spread RUN.json [RUN.json ...]", file=sys.stderr)
        return 2
    runs = [json.loads(path.read_text())["rows"] for path in paths]
    print(format_spread(spread(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
