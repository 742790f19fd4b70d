"""The gateway's settings: read once at start from the environment, then frozen.

Every variable has a command-line flag of the same meaning (see FLAGS;
__main__ turns flags into this mapping, so a flag overrides its variable). A
bad value raises ConfigError naming the variable, before anything listens.
No grpc import here or below: the worker supervisor reads these settings too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dualnova import event_loop as loops
from dualnova import workers
from dualnova.settings import (
    DEFAULT_INTERVAL_S,
    INTERVAL_VARIABLE,
    ConfigError,
    Flag,
    read_address,
    read_float,
    read_int,
    read_interval,
)
from dualnova.targets import read_target

__all__ = [
    "ConfigError",
    "FLAGS",
    "Flag",
    "MICRO_DEFAULTS",
    "PRO_DEFAULTS",
    "RouteDefaults",
    "Settings",
    "load",
]


@dataclass(frozen=True)
class RouteDefaults:
    """Inference settings a route uses when neither the request nor its override sets them."""

    max_tokens: int
    temperature: float


# The contract's defaults (gateway.proto, DualChatRequest.inference_config):
# micro answers short and focused, pro longer and a little freer.
MICRO_DEFAULTS = RouteDefaults(max_tokens=1024, temperature=0.3)
PRO_DEFAULTS = RouteDefaults(max_tokens=2048, temperature=0.5)


FLAGS: tuple[Flag, ...] = (
    Flag("--listen", "GATEWAY_LISTEN", "HOST:PORT to serve gRPC on (default 127.0.0.1:50052)"),
    Flag(
        "--inference-target",
        "INFERENCE_TARGET",
        "the inference service: HOST:PORT, or a gRPC target such as dns:///inference:50051"
        " to balance over every address behind the name (default 127.0.0.1:50051)",
    ),
    Flag(
        "--max-connection-age",
        "GATEWAY_MAX_CONNECTION_AGE",
        "seconds before the server asks a client connection to close, so clients reconnect"
        " and spread over replicas; 0 means never (default 300)",
    ),
    Flag(
        "--max-connection-age-grace",
        "GATEWAY_MAX_CONNECTION_AGE_GRACE",
        "seconds running streams may finish on a connection past its age (default 120)",
    ),
    Flag(
        "--shutdown-grace",
        "GATEWAY_SHUTDOWN_GRACE",
        "seconds running streams may finish after SIGTERM before they are cancelled (default 10)",
    ),
    Flag(
        "--shutdown-delay",
        "GATEWAY_SHUTDOWN_DELAY",
        "seconds between reporting NOT_SERVING on SIGTERM and refusing new calls, so balancers"
        " see the change first (default 2)",
    ),
    Flag(
        "--health-interval",
        INTERVAL_VARIABLE,
        "longest wait, in seconds, before following the inference service's health again and"
        " before reconnecting to it after it went away (default 5)",
    ),
    Flag(
        "--micro-max-tokens",
        "GATEWAY_MICRO_MAX_TOKENS",
        f"micro route's default max_tokens (default {MICRO_DEFAULTS.max_tokens})",
    ),
    Flag(
        "--micro-temperature",
        "GATEWAY_MICRO_TEMPERATURE",
        f"micro route's default temperature (default {MICRO_DEFAULTS.temperature})",
    ),
    Flag(
        "--pro-max-tokens",
        "GATEWAY_PRO_MAX_TOKENS",
        f"pro route's default max_tokens (default {PRO_DEFAULTS.max_tokens})",
    ),
    Flag(
        "--pro-temperature",
        "GATEWAY_PRO_TEMPERATURE",
        f"pro route's default temperature (default {PRO_DEFAULTS.temperature})",
    ),
    workers.flag("GATEWAY_WORKERS"),
    loops.FLAG,
)


@dataclass(frozen=True)
class Settings:
    """Validated configuration; built by load(), never mutated."""

    listen: str = "127.0.0.1:50052"
    # HOST:PORT or a resolver URI; one long-lived channel, round-robin over its addresses.
    inference_target: str = "127.0.0.1:50051"
    # 0 disables the cap. gRPC adds +-10% jitter so replicas do not all reconnect at once.
    max_connection_age_s: float = 300.0
    # Long enough for a Pro answer to finish on a connection that is being retired.
    max_connection_age_grace_s: float = 120.0
    shutdown_grace_s: float = 10.0
    # Seconds of NOT_SERVING before new calls are refused (SIGTERM only).
    shutdown_delay_s: float = 2.0
    # Caps the health follower's retry backoff and the channel's reconnect backoff.
    health_interval_s: float = DEFAULT_INTERVAL_S
    micro: RouteDefaults = field(default=MICRO_DEFAULTS)
    pro: RouteDefaults = field(default=PRO_DEFAULTS)
    # Server processes sharing the listen port (dualnova.workers); 1 is this process alone.
    workers: int = 1
    event_loop: str = loops.DEFAULT

    def route_defaults(self, route: str) -> RouteDefaults:
        """The defaults of route "micro" or "pro"."""
        if route == "micro":
            return self.micro
        if route == "pro":
            return self.pro
        raise KeyError(route)


def load(env: Mapping[str, str]) -> Settings:
    """Read and validate every variable; raises ConfigError naming the first bad one."""
    defaults = Settings()
    return Settings(
        listen=read_address(env, "GATEWAY_LISTEN", defaults.listen),
        inference_target=read_target(env, "INFERENCE_TARGET", defaults.inference_target),
        max_connection_age_s=read_float(
            env, "GATEWAY_MAX_CONNECTION_AGE", defaults.max_connection_age_s, minimum=0
        ),
        max_connection_age_grace_s=read_float(
            env,
            "GATEWAY_MAX_CONNECTION_AGE_GRACE",
            defaults.max_connection_age_grace_s,
            minimum=0,
        ),
        shutdown_grace_s=read_float(
            env, "GATEWAY_SHUTDOWN_GRACE", defaults.shutdown_grace_s, minimum=0
        ),
        shutdown_delay_s=read_float(
            env, "GATEWAY_SHUTDOWN_DELAY", defaults.shutdown_delay_s, minimum=0, maximum=3600
        ),
        health_interval_s=read_interval(env),
        micro=_read_route_defaults(env, "MICRO", MICRO_DEFAULTS),
        pro=_read_route_defaults(env, "PRO", PRO_DEFAULTS),
        workers=workers.read_workers(env, "GATEWAY_WORKERS"),
        event_loop=loops.read(env),
    )


def _read_route_defaults(env: Mapping[str, str], prefix: str, base: RouteDefaults) -> RouteDefaults:
    return RouteDefaults(
        max_tokens=read_int(env, f"GATEWAY_{prefix}_MAX_TOKENS", base.max_tokens, minimum=1),
        temperature=read_float(
            env, f"GATEWAY_{prefix}_TEMPERATURE", base.temperature, minimum=0.0, maximum=1.0
        ),
    )
