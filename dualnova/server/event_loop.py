"""The asyncio event loop a service runs on: the standard one, or uvloop when asked.

DUALNOVA_EVENT_LOOP (flag --event-loop) is `uvloop` (the default) or
`asyncio`. grpc.aio, signal handlers and the health and shutdown machinery
behave the same on both. uvloop is the default because it measured cheaper:
at 200 concurrent DualChats (make bench, pace 1.0, three runs each) it cut
each service's CPU per DualChat by about 8% and Micro's ttft p50 from
499-657 ms to 449-457 ms on 2 cores. `asyncio` stays for platforms without
uvloop and for comparison.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from dualnova.server.settings import ConfigError, Setting, as_choice

__all__ = ["CHOICES", "DEFAULT", "FLAG", "SETTING", "VARIABLE", "current", "read", "run"]


def _as_installed_loop(env: Mapping[str, str], setting: Setting[str]) -> str:
    kind = as_choice(env, setting)
    if kind == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ConfigError(f"{setting.variable}=uvloop: uvloop is not installed in this environment")
    return kind


SETTING: Setting[str] = Setting(
    "DUALNOVA_EVENT_LOOP",
    "--event-loop",
    "event loop the server runs on: uvloop or asyncio",
    default="uvloop",
    reader=_as_installed_loop,
    choices=("asyncio", "uvloop"),
)
VARIABLE = SETTING.variable
CHOICES = SETTING.choices
DEFAULT = SETTING.default
FLAG = SETTING.flag

T = TypeVar("T")


def read(env: Mapping[str, str]) -> str:
    """The configured loop's name; ConfigError for anything else, or for a loop not installed."""
    return SETTING.read(env)


def run(main: Coroutine[Any, Any, T], kind: str) -> T:
    """asyncio.run(main) on the loop named `kind`."""
    if kind == "uvloop":
        # Imported here: only a service asked to run on it loads it.
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def current() -> str:
    """The name of the loop this coroutine runs on, for the start-up log line."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
