"""Closed-loop load: N workers, each starting its next call as soon as its last one ends.

That keeps N calls in flight, which is what "N concurrent streams" means.
Worker i starts at i * ramp / N so N calls do not all land in the same
millisecond, and each worker's first call is a warm-up that is not recorded
(connections, pools and caches get built there, not in the numbers). After
the deadline no worker starts another call; calls already running end within
their own timeout, so a cell always ends.

Blocking callers (boto3) get one thread per worker, the way a threaded app
calls boto3; async callers (grpc.aio, aiobotocore) get one task per worker on
one loop. Besides the recorded samples a run counts every call it made and
every text delta it received, warm-ups included, because the CPU a cell costs
is measured over the whole cell.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.clients import Sample


class LoadError(RuntimeError):
    """Workers outlived the deadline plus the call timeout: something ignored its timeout."""


@dataclass(frozen=True)
class Plan:
    concurrency: int
    requests: int  # recorded calls in all, shared by the workers; warm-ups come on top
    ramp_s: float
    deadline: float  # time.monotonic() after which no call starts
    call_timeout_s: float  # every call ends within this; bounds the wait after the deadline

    def start_offset(self, worker: int) -> float:
        return worker * self.ramp_s / self.concurrency

    def join_timeout(self) -> float:
        return max(0.0, self.deadline - time.monotonic()) + self.call_timeout_s + 5.0


@dataclass(frozen=True)
class Load:
    """What one cell's workers did."""

    samples: list[Sample]  # of the recorded calls only
    calls: int  # every call made, warm-ups and failures included
    deltas: int  # text deltas received over those calls


def _load(recorded: list[list[Sample]], warmups: list[list[Sample]]) -> Load:
    calls = recorded + warmups
    return Load(
        samples=[sample for samples in recorded for sample in samples],
        calls=len(calls),
        deltas=sum(sample.deltas for samples in calls for sample in samples),
    )


class _Tickets:
    """Permission to make the next recorded call, shared by the workers of a cell."""

    def __init__(self, total: int, deadline: float) -> None:
        self._left = total
        self._deadline = deadline
        self._lock = threading.Lock()

    def open(self) -> bool:
        return time.monotonic() < self._deadline

    def take(self) -> bool:
        with self._lock:
            if self._left <= 0 or not self.open():
                return False
            self._left -= 1
            return True


def run_threads(call: Callable[[], list[Sample]], plan: Plan) -> Load:
    """Run `plan` with one thread per worker."""
    tickets = _Tickets(plan.requests, plan.deadline)
    recorded: list[list[Sample]] = []
    warmups: list[list[Sample]] = []  # list.append is atomic: the workers share these two

    def worker(index: int) -> None:
        time.sleep(plan.start_offset(index))
        if not tickets.open():
            return
        warmups.append(call())
        while tickets.take():
            recorded.append(call())

    threads = [
        threading.Thread(target=worker, args=(index,), name=f"bench-{index}", daemon=True)
        for index in range(plan.concurrency)
    ]
    for thread in threads:
        thread.start()
    give_up = time.monotonic() + plan.join_timeout()
    for thread in threads:
        thread.join(max(0.0, give_up - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        raise LoadError("benchmark threads still running past the deadline and call timeout")
    return _load(recorded, warmups)


async def run_tasks(call: Callable[[], Awaitable[list[Sample]]], plan: Plan) -> Load:
    """Run `plan` with one asyncio task per worker on the running loop."""
    tickets = _Tickets(plan.requests, plan.deadline)
    recorded: list[list[Sample]] = []
    warmups: list[list[Sample]] = []

    async def worker(index: int) -> None:
        await asyncio.sleep(plan.start_offset(index))
        if not tickets.open():
            return
        warmups.append(await call())
        while tickets.take():
            recorded.append(await call())

    workers = asyncio.gather(*(worker(index) for index in range(plan.concurrency)))
    try:
        await asyncio.wait_for(workers, plan.join_timeout())
    except TimeoutError:
        raise LoadError("benchmark tasks still running past the deadline and timeout") from None
    return _load(recorded, warmups)
