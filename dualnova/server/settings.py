"""Reading configuration from the environment, failing at start with one clear line.

Each service's config module declares each variable once, as a Setting: its
name, flag, default, bounds, reader and meaning. The flag list, the --help
text, the Settings dataclass defaults and load() all derive from that one
declaration, and the README test checks each declared default against the
configuration table, so they cannot drift apart. A bad value raises
ConfigError naming the variable, which the service's __main__ turns into a
one-line message and exit status 2 (never a traceback later).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar


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
    minimum: float | None = None,
    maximum: float | None = None,
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


def environ() -> Mapping[str, str]:
    """The process environment, as the readers take it (tests pass their own mapping)."""
    return os.environ


@dataclass(frozen=True)
class Flag:
    """One command-line flag and the environment variable it stands for."""

    option: str
    variable: str
    help: str


T = TypeVar("T")


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One variable, declared once: everything else about it is derived from this.

    `reader` turns the environment into a value using this declaration's
    variable, default and bounds (see as_int and friends), so a bound is
    written only here. `default_text` replaces the default in the help where
    the value alone would mislead (None meaning "botocore decides"); `note`
    follows it, e.g. why the default is what it is.
    """

    variable: str
    option: str
    meaning: str
    default: T
    reader: Callable[[Mapping[str, str], Setting[T]], T]
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    default_text: str | None = None
    note: str | None = None

    def read(self, env: Mapping[str, str]) -> T:
        """This variable's value in `env`; ConfigError naming it when it is bad."""
        return self.reader(env, self)

    @property
    def shown_default(self) -> str:
        """The default as the help and the README state it ("3600", "0.3", "false")."""
        if self.default_text is not None:
            return self.default_text
        return show_value(self.default)

    @property
    def help(self) -> str:
        """The meaning with its default, as --help prints it."""
        colon = ":" if self.default_text is not None else ""
        note = f", {self.note}" if self.note else ""
        return f"{self.meaning} (default{colon} {self.shown_default}{note})"

    @property
    def flag(self) -> Flag:
        return Flag(self.option, self.variable, self.help)

    def described(self, meaning: str) -> Setting[T]:
        """The same variable explained for one service (what it bounds there differs)."""
        return replace(self, meaning=meaning)


def show_value(value: object) -> str:
    """A value as people type it: 3600.0 is "3600", False is "false", ("a", "b") is "a,b"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value) or "none"
    return str(value)


def flags_of(settings: Sequence[Setting[Any]]) -> tuple[Flag, ...]:
    """The command-line flags of `settings`, in declaration order."""
    return tuple(setting.flag for setting in settings)


# Readers for Setting.reader: the plain types, with the declaration's bounds.


def as_address(env: Mapping[str, str], setting: Setting[str]) -> str:
    return read_address(env, setting.variable, setting.default)


def as_int(env: Mapping[str, str], setting: Setting[int]) -> int:
    return read_int(
        env, setting.variable, setting.default, minimum=setting.minimum, maximum=setting.maximum
    )


def as_float(env: Mapping[str, str], setting: Setting[float]) -> float:
    return read_float(
        env, setting.variable, setting.default, minimum=setting.minimum, maximum=setting.maximum
    )


def as_bool(env: Mapping[str, str], setting: Setting[bool]) -> bool:
    return read_bool(env, setting.variable, setting.default)


def as_choice(env: Mapping[str, str], setting: Setting[str]) -> str:
    return read_choice(env, setting.variable, setting.default, setting.choices)


def _as_interval(env: Mapping[str, str], setting: Setting[float]) -> float:
    # read_float's range check cannot say "above 0" (nor refuse nan), hence its own line.
    interval = as_float(env, setting)
    if not interval > 0 or not math.isfinite(interval):
        raise ConfigError(f"{setting.variable}={env.get(setting.variable)!r}: must be above 0")
    return interval


# What every server has, each under its own variable: declared here so that both
# services listen, drain and stop by the same bounds.


def listen(variable: str, default: str) -> Setting[str]:
    """The HOST:PORT a server binds (loopback by default; containers set the address)."""
    return Setting(variable, "--listen", "HOST:PORT to serve gRPC on", default, as_address)


def shutdown_grace(variable: str) -> Setting[float]:
    """How long running streams may finish after SIGTERM."""
    meaning = "seconds running streams may finish after SIGTERM before they are cancelled"
    return Setting(variable, "--shutdown-grace", meaning, 10.0, as_float, minimum=0)


def shutdown_delay(variable: str) -> Setting[float]:
    """Seconds of NOT_SERVING before new calls are refused (SIGTERM only)."""
    meaning = (
        "seconds between reporting NOT_SERVING on SIGTERM and refusing new calls, so balancers"
        " see the change first"
    )
    return Setting(variable, "--shutdown-delay", meaning, 2.0, as_float, minimum=0, maximum=3600)


def max_connection_age(variable: str) -> Setting[float]:
    """How long a client connection may live before the server asks it to close.

    0 disables the cap. gRPC adds +-10% jitter so connections do not all close at
    once; a closed one makes the client re-resolve and reconnect, so it spreads
    over replicas added since.
    """
    meaning = (
        "seconds before the server asks a client connection to close, so clients re-resolve"
        " and spread over replicas; 0 means never"
    )
    return Setting(variable, "--max-connection-age", meaning, 300.0, as_float, minimum=0)


def max_connection_age_grace(variable: str) -> Setting[float]:
    """Long enough for a Pro answer to finish on a connection that is being retired."""
    meaning = "seconds running streams may finish on a connection past its age"
    return Setting(variable, "--max-connection-age-grace", meaning, 120.0, as_float, minimum=0)


# Both services probe (or follow) their dependencies this often; each describes what
# the interval bounds there. Declared here, not in health_service, so a config module
# can read it without importing grpc: a worker supervisor reads the whole configuration
# and must not load grpc before it spawns.
HEALTH_INTERVAL: Setting[float] = Setting(
    "DUALNOVA_HEALTH_INTERVAL",
    "--health-interval",
    "seconds between dependency probes, above 0",
    default=5.0,
    reader=_as_interval,
    maximum=3600.0,
)
INTERVAL_VARIABLE = HEALTH_INTERVAL.variable
DEFAULT_INTERVAL_S = HEALTH_INTERVAL.default


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
