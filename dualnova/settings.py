"""Reading configuration from the environment, failing at start with one clear line.

Each service's config module declares its variables with these readers; a bad
value raises ConfigError naming the variable, which the service's __main__
turns into a one-line message and exit status 2 (never a traceback later).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message names the variable."""


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def read_str(env: Mapping[str, str], name: str, default: str) -> str:
    value = _raw(env, name)
    return default if value is None else value


def read_optional_str(env: Mapping[str, str], name: str) -> str | None:
    return _raw(env, name)


def read_address(env: Mapping[str, str], name: str, default: str) -> str:
    """A HOST:PORT for gRPC; IPv6 hosts in brackets ([::1]:50051)."""
    value = read_str(env, name, default)
    check_address(value, name)
    return value


def check_address(value: str, name: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name}={value!r}: expected HOST:PORT, e.g. 127.0.0.1:50051")


def read_float(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    value = _raw(env, name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected a number") from None
    _check_range(name, value, number, minimum, maximum)
    return number


def read_int(
    env: Mapping[str, str],
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = _raw(env, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected a whole number") from None
    _check_range(name, value, number, minimum, maximum)
    return number


def read_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _raw(env, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r}: expected true or false")


def _check_range(
    name: str, raw: str, number: float, minimum: float | None, maximum: float | None
) -> None:
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name}={raw!r}: must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{name}={raw!r}: must be at most {maximum}")


def read_choice(env: Mapping[str, str], name: str, default: str, choices: Sequence[str]) -> str:
    """One of `choices`, compared case-insensitively."""
    value = _raw(env, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered not in choices:
        raise ConfigError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return lowered


# Both services probe (or follow) their dependencies this often. Defined here, not in
# health_service, so a config module can read it without importing grpc: a worker
# supervisor reads the whole configuration and must not load grpc before it spawns.
INTERVAL_VARIABLE = "DUALNOVA_HEALTH_INTERVAL"
DEFAULT_INTERVAL_S = 5.0
MAX_INTERVAL_S = 3600.0


def read_interval(env: Mapping[str, str]) -> float:
    """DUALNOVA_HEALTH_INTERVAL: seconds between dependency probes, > 0 (default 5)."""
    interval = read_float(env, INTERVAL_VARIABLE, DEFAULT_INTERVAL_S, maximum=MAX_INTERVAL_S)
    if not interval > 0 or not math.isfinite(interval):
        raise ConfigError(f"{INTERVAL_VARIABLE}={env.get(INTERVAL_VARIABLE)!r}: must be above 0")
    return interval


def environ() -> Mapping[str, str]:
    """The process environment, as the readers take it (tests pass their own mapping)."""
    return os.environ


@dataclass(frozen=True)
class Flag:
    """One command-line flag and the environment variable it stands for."""

    option: str
    variable: str
    help: str


def flag_overrides(
    flags: Sequence[Flag],
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    epilog: str | None = None,
) -> dict[str, str]:
    """The variables given as flags on the command line, by variable name.

    A flag means exactly what its variable means, so a service parses its
    flags into this mapping and lays it over the environment before load().
    """
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog)
    for flag in flags:
        parser.add_argument(
            flag.option, dest=flag.variable, metavar="VALUE", help=f"{flag.help} [{flag.variable}]"
        )
    namespace = parser.parse_args(argv)
    return {name: value for name, value in vars(namespace).items() if value is not None}


# The exit status of a program that refused to start on its configuration.
EXIT_CONFIG = 2


def refuse_to_start(prog: str, error: Exception) -> int:
    """Say on one stderr line why `prog` cannot start (no traceback) and return EXIT_CONFIG.

    Deliberately not a log record: it is the whole message for the person or
    platform reading the exit, and logging may not be set up yet.
    """
    sys.stderr.write(f"{prog}: configuration error: {error}\n")
    return EXIT_CONFIG
