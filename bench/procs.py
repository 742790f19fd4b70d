"""CPU time and memory of a process and everything it started, read from /proc.

A service may run several worker processes (INFERENCE_WORKERS,
GATEWAY_WORKERS), so a service's cost is the sum over its process tree, found
again at every reading: workers started or replaced during a cell count too.
CPU is utime + stime + cutime + cstime, so a worker that exits and is reaped
mid-cell moves its time into its parent's cutime instead of vanishing.

Memory is the high-water mark (VmHWM) after resetting it through
/proc/<pid>/clear_refs at the start of a cell, so a peak between two readings
is not missed however busy the machine is. Off Linux every reading is None.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
try:
    _TICKS_PER_S = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):  # not POSIX
    _TICKS_PER_S = 100


def process_tree(pid: int) -> list[int]:
    """`pid` and all its living descendants, parents first; [] if `pid` is gone."""
    if not (_PROC / str(pid)).exists():
        return []
    found = [pid]
    index = 0
    while index < len(found):
        found.extend(child for child in _children(found[index]) if child not in found)
        index += 1
    return found


def _children(pid: int) -> list[int]:
    children: list[int] = []
    try:
        tasks = list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return children
    for task in tasks:
        try:
            children.extend(int(part) for part in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue  # the thread or the process ended while being read
    return children


def cpu_seconds(pids: Iterable[int], *, reaped: bool = True) -> float | None:
    """CPU seconds the processes (and, if `reaped`, their reaped children) used.

    None if no process could be read.
    """
    total = 0
    last = 15 if reaped else 13
    read_any = False
    for pid in pids:
        try:
            stat = (_PROC / str(pid) / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: fields start after the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        total += sum(int(value) for value in fields[11:last])  # utime stime [cutime cstime]
        read_any = True
    return total / _TICKS_PER_S if read_any else None


def _status_kb(pid: int, key: str) -> int | None:
    try:
        lines = (_PROC / str(pid) / "status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def memory_kb(pids: Iterable[int], key: str = "VmRSS") -> int | None:
    """Sum of `key` (VmRSS now, or VmHWM: the peak since the last reset) in KB."""
    values = [value for pid in pids if (value := _status_kb(pid, key)) is not None]
    return sum(values) if values else None


def reset_peak(pids: Iterable[int]) -> bool:
    """Set each process's VmHWM back to its VmRSS; False if any one refused."""
    done = True
    for pid in pids:
        try:
            (_PROC / str(pid) / "clear_refs").write_text("5")
        except OSError:
            done = False
    return done


@dataclass(frozen=True)
class TreeUse:
    """What one process tree used between ProcessMeter.start() and stop()."""

    cpu_s: float | None  # CPU seconds over the tree
    idle_rss_kb: int | None  # resident memory just before the cell
    peak_rss_kb: int | None  # sum of the processes' peaks during the cell; None if not reset

    @property
    def added_rss_kb(self) -> int | None:
        if self.idle_rss_kb is None or self.peak_rss_kb is None:
            return None
        return max(0, self.peak_rss_kb - self.idle_rss_kb)


class ProcessMeter:
    """CPU and peak memory of named process trees (inference, gateway) and single processes.

    `alone` names processes measured without their descendants: the benchmark
    client itself, whose children are the services under test.
    """

    def __init__(self, trees: Mapping[str, int], alone: Mapping[str, int] | None = None) -> None:
        self._roots = {**dict(trees), **dict(alone or {})}
        self._alone = set(alone or {})

    def _pids(self, name: str) -> list[int]:
        pid = self._roots[name]
        if name in self._alone:
            return [pid] if (_PROC / str(pid)).exists() else []
        return process_tree(pid)

    def _cpu_now(self, name: str, pids: list[int]) -> float | None:
        if name in self._alone and self._roots[name] == os.getpid():
            return time.process_time()  # this process: the same sum, without /proc's 10 ms ticks
        return cpu_seconds(pids, reaped=name not in self._alone)

    def start(self) -> ProcessMeter:
        self._cpu: dict[str, float | None] = {}
        self._idle: dict[str, int | None] = {}
        self._reset: dict[str, bool] = {}
        for name in self._roots:
            pids = self._pids(name)
            self._idle[name] = memory_kb(pids)
            self._reset[name] = bool(pids) and reset_peak(pids)
            self._cpu[name] = self._cpu_now(name, pids)
        return self

    def stop(self) -> dict[str, TreeUse]:
        use = {}
        for name in self._roots:
            pids = self._pids(name)
            now, before = self._cpu_now(name, pids), self._cpu[name]
            use[name] = TreeUse(
                cpu_s=None if now is None or before is None else max(0.0, now - before),
                idle_rss_kb=self._idle[name],
                peak_rss_kb=memory_kb(pids, "VmHWM") if self._reset[name] else None,
            )
        return use
