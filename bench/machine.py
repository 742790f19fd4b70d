"""The machine the numbers came from, and how busy it was while they were taken.

The benchmark client shares the CPUs with the emulator and both services, so
every cell records the CPU this process used (in cores) and how busy the
whole machine was: a row taken on a saturated host says so itself.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

_PROC_STAT = Path("/proc/stat")
_CPUINFO = Path("/proc/cpuinfo")


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, which containers narrow), like nproc."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def raise_open_files_limit() -> int:
    """Lift the soft limit on open files to the hard one; the new soft limit.

    At 2,000 concurrent DualChats the client, the emulator and both services
    each hold thousands of sockets; the services inherit the limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
        except (ValueError, OSError):
            pass  # a hard limit of "unlimited" may still be refused; keep what we have
    return soft


def describe() -> dict[str, str | int]:
    """CPU count and model, OS, Python and the client libraries' versions."""
    info: dict[str, str | int] = {
        "cpus": usable_cpus(),
        "cpu_model": _cpu_model(),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
    }
    for package in ("grpcio", "boto3", "botocore", "aiohttp", "aiobotocore", "matplotlib"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info


def _cpu_model() -> str:
    try:
        for line in _CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _host_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies over all CPUs since boot; None off Linux."""
    try:
        fields = _PROC_STAT.read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    # user nice system idle iowait irq softirq steal; guest time is already in user and nice.
    ticks = [int(value) for value in fields[:8]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


@dataclass(frozen=True)
class CpuUse:
    client_cores: float | None  # CPU seconds this process used per wall second
    host_busy: float | None  # share of all CPUs busy (every process), 0-1


class CpuMeter:
    """Measures CPU use between start() and stop()."""

    def start(self) -> CpuMeter:
        self._wall = time.monotonic()
        self._process = time.process_time()
        self._host = _host_ticks()
        return self

    def stop(self) -> CpuUse:
        wall = time.monotonic() - self._wall
        process = time.process_time() - self._process
        host = _host_ticks()
        busy = None
        if self._host is not None and host is not None and host[1] > self._host[1]:
            busy = (host[0] - self._host[0]) / (host[1] - self._host[1])
        return CpuUse(client_cores=process / wall if wall > 0 else None, host_busy=busy)
