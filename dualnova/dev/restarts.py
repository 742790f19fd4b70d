"""Keep a local stack's processes running: one that exits is started again, with backoff.

`dualnova up` used to stop everything when one process died, which also threw
away what the others held (the gateway's connections, a chat half-streamed).
A process is restarted on its own port, so what pointed at it (the gateway's
INFERENCE_TARGET, a person's `dualnova chat --gateway`) still does. A process
that keeps dying waits longer between tries; one that cannot be started at
all several times in a row ends the watch (GaveUp), since trying forever would
only hide a broken setting.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from dualnova.dev.stack import HOST, StackError, port_is_free

__all__ = ["BACKOFF_S", "GIVE_UP_AFTER", "GaveUp", "Keeper", "Part", "describe_exit"]

# Seconds before each consecutive restart; the last repeats.
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
# A process that ran this long before it died starts again from the first delay.
STEADY_S = 30.0
# Starts in a row that failed (exited or never answered) before the watch gives up.
GIVE_UP_AFTER = 5


class Part(Protocol):
    """What a stack process offers (dualnova.dev.stack's EmulatorHandle and ServiceHandle)."""

    @property
    def name(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> int | None: ...


class GaveUp(Exception):
    """A process could not be started again; the message says which and why."""


@dataclass
class _Slot:
    part: Part
    started_at: float
    # Deaths in a row that came soon after a start: the index into BACKOFF_S.
    quick_deaths: int = 0
    failed_starts: int = 0
    restarts: int = 0
    # While waiting to restart: when, how long the wait was, and why the process went.
    due: float | None = None
    delay: float = 0.0
    reason: str = ""


class Keeper:
    """Call check() now and then: it notices exits and restarts what is due.

    `report` gets one line per event (a restart done, a start that failed). It
    runs on the caller's thread, so a restart blocks until the process answers,
    and a KeyboardInterrupt during it reaches the caller as usual.
    """

    def __init__(
        self,
        parts: Sequence[Part],
        report: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._report = report
        self._clock = clock
        now = clock()
        self._slots = [_Slot(part, now) for part in parts]

    def check(self) -> None:
        """One round over every process; GaveUp when one failed to start GIVE_UP_AFTER times."""
        for slot in self._slots:
            if slot.due is None and not slot.part.running:
                self._schedule(slot, describe_exit(slot.part.stop()), died=True)
            if slot.due is not None and self._clock() >= slot.due:
                self._restart(slot)

    def _schedule(self, slot: _Slot, reason: str, *, died: bool) -> None:
        now = self._clock()
        if died and now - slot.started_at >= STEADY_S:
            slot.quick_deaths = 0
        slot.delay = BACKOFF_S[min(slot.quick_deaths, len(BACKOFF_S) - 1)]
        slot.quick_deaths += 1
        slot.due = now + slot.delay
        slot.reason = reason

    def _restart(self, slot: _Slot) -> None:
        part = slot.part
        try:
            if not port_is_free(part.port):
                # Else the readiness check would take the other program's server for ours.
                raise StackError(f"port {part.port} is taken by another program")
            part.start()
        except StackError as error:
            part.stop()  # reap it and close its log before the next try
            slot.failed_starts += 1
            why = f"{error.reason}: {error.last_line}" if error.last_line else error.reason
            if slot.failed_starts >= GIVE_UP_AFTER:
                raise GaveUp(
                    f"{part.name} did not start {slot.failed_starts} times in a row"
                    f" ({why}); stopping"
                ) from None
            self._schedule(slot, slot.reason, died=False)
            self._report(f"{part.name} did not start again ({why}); next try in {slot.delay:g} s")
            return
        slot.restarts += 1
        slot.failed_starts = 0
        slot.due = None
        slot.started_at = self._clock()
        self._report(
            f"{part.name} {slot.reason}; restarted on {HOST}:{part.port}"
            f" (restart {slot.restarts}, after {slot.delay:g} s)"
        )


def describe_exit(status: int | None) -> str:
    """'exited with status 3', 'was killed by SIGKILL': how a process went, for a person."""
    if status is None:
        return "was not running"
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"
