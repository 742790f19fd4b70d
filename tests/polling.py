"""Waiting for a condition in tests: poll with a deadline, never sleep and hope.

The one polling helper of the suite; the deadline only keeps a broken build
from hanging, it is never a timing claim.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

WAIT_S = 20.0


def wait_until(check: Callable[[], T], what: str | Callable[[], str], timeout: float = WAIT_S) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline.

    `what` may be a function, called only on failure, to describe the state the
    condition never reached (the last log entry, say).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what if isinstance(what, str) else what()
            raise AssertionError(f"timed out after {timeout:g} s waiting for {described}")
        time.sleep(0.02)
