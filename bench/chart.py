"""The run as a picture: what DualChat adds to time to first token, and what it costs in CPU.

Two panels against concurrency, for the DualChat scenario and its baselines:
added TTFT (p50 and p99, against boto3 and against aiobotocore calling the
emulator themselves), and CPU milliseconds per chat: the pair's services
beside the baseline caller's own. matplotlib comes with the `bench` extra;
without it there is no chart and the run says why.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.stats import Row

# matplotlib.pyplot, or None where the bench extra is not installed.
try:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in CI
    pyplot: ModuleType | None = importlib.import_module("matplotlib.pyplot")
except ImportError:
    pyplot = None

PAIR = "dualchat"
BASELINES = ("boto3-dual", "aiobotocore-dual")
_ROUTE_COLOURS = {"micro": "tab:blue", "pro": "tab:orange"}
_CALLER_COLOURS = {
    "inference": "tab:green",
    "gateway": "tab:olive",
    "pair": "tab:red",
    "boto3-dual": "tab:gray",
    "aiobotocore-dual": "tab:purple",
}


def unavailable() -> str | None:
    """Why no chart can be drawn here, or None."""
    if pyplot is None:
        return "matplotlib not installed (pip install -e '.[bench]'; make bench does)"
    return None


def _ran(rows: Sequence[Row], scenario: str) -> list[Row]:
    return [row for row in rows if row.scenario == scenario and not row.skipped]


def draw(rows: Sequence[Row], path: Path, title: str) -> Path | None:
    """Write the chart to `path` (PNG); None if there is nothing to draw (no DualChat cell ran)."""
    if pyplot is None:
        raise RuntimeError(unavailable())
    pair = _ran(rows, PAIR)
    if not pair:
        return None
    figure, (latency, cpu) = pyplot.subplots(1, 2, figsize=(13, 5.2), layout="constrained")
    _added_ttft(latency, pair)
    _cpu_per_chat(cpu, rows, pair)
    figure.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def _concurrency_axis(axes: Any, rows: Sequence[Row]) -> None:
    """Log x, ticked at the concurrencies that ran, labelled as plain numbers."""
    levels = sorted({row.concurrency for row in rows})
    axes.set_xscale("log")
    axes.set_xticks(levels, [f"{level:,}" for level in levels])
    axes.minorticks_off()
    axes.set_xlabel("concurrent DualChats")


def _added_ttft(axes: Any, pair: Sequence[Row]) -> None:
    lowest = 0.0
    for route, colour in _ROUTE_COLOURS.items():
        # Against boto3 bold, against aiobotocore faint: the second baseline is for reference.
        for baseline, marker, alpha in zip(BASELINES, ("o", "s"), (1.0, 0.4), strict=True):
            for key, style in (("added_ttft_p50_ms", "-"), ("added_ttft_p99_ms", "--")):
                points = [
                    (row.concurrency, row.versus[baseline][key])
                    for row in pair
                    if row.route == route and row.versus.get(baseline, {}).get(key) is not None
                ]
                if not points:
                    continue
                xs, ys = zip(*points, strict=True)
                lowest = min(lowest, *ys)
                label = f"{route} {key.split('_')[2]} vs {baseline.split('-')[0]}"
                axes.plot(
                    xs,
                    ys,
                    style,
                    marker=marker,
                    color=colour,
                    alpha=alpha,
                    label=label,
                    markersize=4,
                )
    axes.axhline(0, color="black", linewidth=0.6)
    _concurrency_axis(axes, pair)
    # Linear within 10 ms of zero, logarithmic beyond: 5 ms and 20 s both read on one axis.
    axes.set_yscale("symlog", linthresh=10)
    axes.set_ylim(bottom=lowest * 1.5 if lowest < 0 else 0)
    axes.set_ylabel("ms added to time to first token")
    axes.set_title("DualChat: added TTFT (solid p50, dashed p99)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7, ncol=2)


def _per_call(rows: Sequence[Row], key: str) -> tuple[list[int], list[float]]:
    points = {}
    for row in rows:
        value = None if row.cost is None else row.cost.cpu_ms_per_call.get(key)
        if value is not None:
            points[row.concurrency] = value  # both routes share their cell's cost
    return list(points), list(points.values())


def _cpu_per_chat(axes: Any, rows: Sequence[Row], pair: Sequence[Row]) -> None:
    for key, label in (
        ("pair", "pair (inference + gateway)"),
        ("inference", "inference service"),
        ("gateway", "gateway"),
    ):
        xs, ys = _per_call(pair, key)
        style = "-" if key == "pair" else ":"
        axes.plot(xs, ys, style, marker="o", color=_CALLER_COLOURS[key], label=label, markersize=4)
    for baseline in BASELINES:
        xs, ys = _per_call(_ran(rows, baseline), "client")
        if xs:
            axes.plot(
                xs,
                ys,
                "-",
                marker="s",
                color=_CALLER_COLOURS[baseline],
                label=f"{baseline} caller",
                markersize=4,
            )
    _concurrency_axis(axes, pair)
    axes.set_ylabel("CPU ms per chat (Micro + Pro, warm-ups included)")
    axes.set_title("CPU per DualChat: the pair against calling Bedrock yourself")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7)
