"""The gateway's settings: read once at start from the environment, then frozen.

Each variable is declared once below as a Setting (name, flag, default,
bounds, meaning); FLAGS, the Settings defaults and load() derive from those
declarations. Every variable has a command-line flag of the same meaning
(__main__ turns flags into this mapping, so a flag overrides its variable). A
bad value raises ConfigError naming the variable, before anything listens.
No grpc import here or below: the worker supervisor reads these settings too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dualnova.pricing import PRICES_FILE, PriceTable
from dualnova.routes import MICRO, PRO
from dualnova.server import event_loop as loops
from dualnova.server import tls_config, workers
from dualnova.server.callers import (
    Credential,
    Secret,
    as_secret,
    as_upstream_token_file,
    tokens_file_setting,
    tokens_setting,
)
from dualnova.server.settings import (
    HEALTH_INTERVAL,
    ConfigError,
    Flag,
    Setting,
    as_bool,
    as_float,
    as_int,
    flags_of,
    listen,
    max_connection_age,
    max_connection_age_grace,
    shutdown_delay,
    shutdown_grace,
)
from dualnova.server.targets import read_target

__all__ = [
    "ConfigError",
    "FLAGS",
    "Flag",
    "MICRO_DEFAULTS",
    "PRO_DEFAULTS",
    "RouteDefaults",
    "SETTINGS",
    "Settings",
    "load",
]


@dataclass(frozen=True)
class RouteDefaults:
    """Inference settings a route uses when neither the request nor its override sets them."""

    max_tokens: int
    temperature: float


@dataclass(frozen=True)
class RouteSettings:
    """The two settings of one route's defaults (GATEWAY_<ROUTE>_MAX_TOKENS, _TEMPERATURE)."""

    max_tokens: Setting[int]
    temperature: Setting[float]

    @classmethod
    def declare(cls, route: str, max_tokens: int, temperature: float) -> RouteSettings:
        """Names, flags and meanings follow the route's name, so only the numbers differ."""
        prefix = f"GATEWAY_{route.upper()}"
        return cls(
            max_tokens=Setting(
                f"{prefix}_MAX_TOKENS",
                f"--{route}-max-tokens",
                f"{route} route's default max_tokens",
                default=max_tokens,
                reader=as_int,
                minimum=1,
            ),
            temperature=Setting(
                f"{prefix}_TEMPERATURE",
                f"--{route}-temperature",
                f"{route} route's default temperature",
                default=temperature,
                reader=as_float,
                minimum=0.0,
                maximum=1.0,
            ),
        )

    @property
    def defaults(self) -> RouteDefaults:
        return RouteDefaults(self.max_tokens.default, self.temperature.default)

    def read(self, env: Mapping[str, str]) -> RouteDefaults:
        return RouteDefaults(self.max_tokens.read(env), self.temperature.read(env))


def _as_target(env: Mapping[str, str], setting: Setting[str]) -> str:
    return read_target(env, setting.variable, setting.default)


LISTEN = listen("GATEWAY_LISTEN", "127.0.0.1:50052")
# TLS from these files (mutual TLS with a client CA); plaintext only on loopback unless allowed.
TLS = tls_config.ServerTLSSettings.declare("GATEWAY")
# TLS to the inference service: the CA its certificate is checked against, and the
# gateway's own certificate when the inference service asks for one (mutual TLS).
INFERENCE_TLS = tls_config.ClientTLSSettings(
    ca=tls_config.file_setting(
        "INFERENCE_TLS_CA",
        "--inference-tls-ca",
        "PEM CA bundle the inference service's certificate is checked against; set, the"
        " gateway calls it over TLS",
        "unset, plaintext",
    ),
    cert=tls_config.file_setting(
        "GATEWAY_UPSTREAM_TLS_CERT",
        "--upstream-tls-cert",
        "PEM certificate the gateway presents to the inference service (mutual TLS)",
        "unset, none",
    ),
    key=tls_config.file_setting(
        "GATEWAY_UPSTREAM_TLS_KEY",
        "--upstream-tls-key",
        "PEM private key of GATEWAY_UPSTREAM_TLS_CERT",
        "unset, none",
    ),
)
# HOST:PORT or a resolver URI; one long-lived channel, round-robin over its addresses.
INFERENCE_TARGET = Setting(
    "INFERENCE_TARGET",
    "--inference-target",
    "the inference service: HOST:PORT, or a gRPC target such as dns:///inference:50051"
    " to balance over every address behind the name",
    default="127.0.0.1:50051",
    reader=_as_target,
)
MAX_CONNECTION_AGE = max_connection_age("GATEWAY_MAX_CONNECTION_AGE")
MAX_CONNECTION_AGE_GRACE = max_connection_age_grace("GATEWAY_MAX_CONNECTION_AGE_GRACE")
SHUTDOWN_GRACE = shutdown_grace("GATEWAY_SHUTDOWN_GRACE")
SHUTDOWN_DELAY = shutdown_delay("GATEWAY_SHUTDOWN_DELAY")
# Caps the health follower's retry backoff and the channel's reconnect backoff.
FOLLOW_INTERVAL = HEALTH_INTERVAL.described(
    "longest wait, in seconds, before following the inference service's health again and"
    " before reconnecting to it after it went away"
)
# The contract's defaults (gateway.proto, DualChatRequest.inference_config):
# micro answers short and focused, pro longer and a little freer.
MICRO_SETTINGS = RouteSettings.declare(MICRO, max_tokens=1024, temperature=0.3)
PRO_SETTINGS = RouteSettings.declare(PRO, max_tokens=2048, temperature=0.5)
MICRO_DEFAULTS = MICRO_SETTINGS.defaults
PRO_DEFAULTS = PRO_SETTINGS.defaults
# Server processes sharing the listen port (dualnova.server.workers); 1 is this process alone.
WORKERS = workers.setting("GATEWAY_WORKERS")
# Who may call (dualnova.server.auth): unset, DualChat is open (loopback only, see README).
AUTH_TOKENS = tokens_setting("GATEWAY_AUTH_TOKENS", "--auth-tokens", "DualChat callers")
AUTH_TOKENS_FILE = tokens_file_setting(
    "GATEWAY_AUTH_TOKENS_FILE", "--auth-tokens-file", "DualChat callers"
)
REFLECTION = Setting(
    "GATEWAY_REFLECTION",
    "--reflection",
    "false to turn gRPC server reflection off (health stays open either way)",
    default=True,
    reader=as_bool,
)
# The inference service's INFERENCE_AUTH_TOKENS: what this gateway presents to it.
UPSTREAM_TOKEN: Setting[Secret | None] = Setting(
    "GATEWAY_UPSTREAM_TOKEN",
    "--upstream-token",
    "bearer token the gateway presents to the inference service (one of its"
    " INFERENCE_AUTH_TOKENS); wins over GATEWAY_UPSTREAM_TOKEN_FILE",
    default=None,
    reader=as_secret,
    default_text="unset, none sent",
)
UPSTREAM_TOKEN_FILE: Setting[str | None] = Setting(
    "GATEWAY_UPSTREAM_TOKEN_FILE",
    "--upstream-token-file",
    "file holding that token (its first line), re-read when it changes",
    default=None,
    reader=as_upstream_token_file,
    default_text="unset",
)
# What one DualChatRequest may hold, checked before either route starts (gateway.validation).
# 32 MiB: five documents at Bedrock's 4.5 MB each plus a few images fit (gRPC's own
# default, 4 MiB, would refuse one such document); the transport allows twice this.
MAX_MESSAGE_BYTES = Setting(
    "GATEWAY_MAX_MESSAGE_BYTES",
    "--max-message-bytes",
    "largest DualChatRequest, in serialized bytes, the server accepts (and largest message"
    " it sends); larger ones are refused with INVALID_ARGUMENT naming the limit",
    default=32 * 1024 * 1024,
    reader=as_int,
    minimum=1024,
    maximum=1024 * 1024 * 1024,
)
MAX_MESSAGES = Setting(
    "GATEWAY_MAX_MESSAGES",
    "--max-messages",
    "most conversation turns (messages) in one DualChatRequest",
    default=1000,
    reader=as_int,
    minimum=1,
)
# About Nova Micro's 128k-token context: a longer conversation would fail on that route anyway.
MAX_TEXT_CHARS = Setting(
    "GATEWAY_MAX_TEXT_CHARS",
    "--max-text-chars",
    "most characters of text in one DualChatRequest: every message, system prompt and"
    " route override's system prompt together",
    default=500_000,
    reader=as_int,
    minimum=1,
)
# Concurrent DualChats per worker; each is two inference streams (INFERENCE_MAX_STREAMS).
MAX_STREAMS = Setting(
    "GATEWAY_MAX_STREAMS",
    "--max-streams",
    "concurrent DualChats per worker; more are refused at once with RESOURCE_EXHAUSTED"
    " and a RetryInfo",
    default=4096,
    reader=as_int,
    minimum=1,
    maximum=100_000,
)
# Half the total, so one caller never holds the whole gateway.
MAX_STREAMS_PER_CALLER = Setting(
    "GATEWAY_MAX_STREAMS_PER_CALLER",
    "--max-streams-per-caller",
    "concurrent DualChats of one caller per worker (the caller's token name, else its"
    " address); more are refused at once with RESOURCE_EXHAUSTED and a RetryInfo",
    default=2048,
    reader=as_int,
    minimum=1,
    maximum=100_000,
)

# Every setting with a flag, in --help and README order.
SETTINGS: tuple[Setting[Any], ...] = (
    LISTEN,
    *TLS.settings,
    tls_config.ALLOW_PLAINTEXT,
    INFERENCE_TARGET,
    *INFERENCE_TLS.settings,
    MAX_CONNECTION_AGE,
    MAX_CONNECTION_AGE_GRACE,
    SHUTDOWN_GRACE,
    SHUTDOWN_DELAY,
    FOLLOW_INTERVAL,
    MICRO_SETTINGS.max_tokens,
    MICRO_SETTINGS.temperature,
    PRO_SETTINGS.max_tokens,
    PRO_SETTINGS.temperature,
    WORKERS,
    loops.SETTING,
    AUTH_TOKENS,
    AUTH_TOKENS_FILE,
    REFLECTION,
    UPSTREAM_TOKEN,
    UPSTREAM_TOKEN_FILE,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGES,
    MAX_TEXT_CHARS,
    MAX_STREAMS,
    MAX_STREAMS_PER_CALLER,
    PRICES_FILE,
)
FLAGS: tuple[Flag, ...] = flags_of(SETTINGS)


@dataclass(frozen=True)
class Settings:
    """What the gateway runs with, built by load() and never mutated; defaults as declared above."""

    listen: str = LISTEN.default
    # None: plaintext (dualnova.server.tls_config decides where that is allowed).
    tls: tls_config.ServerTLS | None = None
    inference_target: str = INFERENCE_TARGET.default
    inference_tls: tls_config.ClientTLS | None = None
    max_connection_age_s: float = MAX_CONNECTION_AGE.default
    max_connection_age_grace_s: float = MAX_CONNECTION_AGE_GRACE.default
    shutdown_grace_s: float = SHUTDOWN_GRACE.default
    shutdown_delay_s: float = SHUTDOWN_DELAY.default
    health_interval_s: float = FOLLOW_INTERVAL.default
    micro: RouteDefaults = field(default=MICRO_DEFAULTS)
    pro: RouteDefaults = field(default=PRO_DEFAULTS)
    workers: int = WORKERS.default
    event_loop: str = loops.SETTING.default
    auth_tokens: tuple[Credential, ...] = AUTH_TOKENS.default
    auth_tokens_file: str | None = AUTH_TOKENS_FILE.default
    reflection: bool = REFLECTION.default
    upstream_token: Secret | None = UPSTREAM_TOKEN.default
    upstream_token_file: str | None = UPSTREAM_TOKEN_FILE.default
    max_message_bytes: int = MAX_MESSAGE_BYTES.default
    max_messages: int = MAX_MESSAGES.default
    max_text_chars: int = MAX_TEXT_CHARS.default
    max_streams: int = MAX_STREAMS.default
    max_streams_per_caller: int = MAX_STREAMS_PER_CALLER.default
    # Summary.cost_by_route and total_cost are estimated from these.
    prices: PriceTable = PRICES_FILE.default

    def route_defaults(self, route: str) -> RouteDefaults:
        """The defaults of route MICRO or PRO."""
        if route == MICRO:
            return self.micro
        if route == PRO:
            return self.pro
        raise KeyError(route)


def load(env: Mapping[str, str]) -> Settings:
    """Read and validate every variable; raises ConfigError naming the first bad one."""
    return Settings(
        listen=LISTEN.read(env),
        tls=TLS.read(env, LISTEN),
        inference_target=INFERENCE_TARGET.read(env),
        inference_tls=INFERENCE_TLS.read(env),
        max_connection_age_s=MAX_CONNECTION_AGE.read(env),
        max_connection_age_grace_s=MAX_CONNECTION_AGE_GRACE.read(env),
        shutdown_grace_s=SHUTDOWN_GRACE.read(env),
        shutdown_delay_s=SHUTDOWN_DELAY.read(env),
        health_interval_s=FOLLOW_INTERVAL.read(env),
        micro=MICRO_SETTINGS.read(env),
        pro=PRO_SETTINGS.read(env),
        workers=WORKERS.read(env),
        event_loop=loops.read(env),
        auth_tokens=AUTH_TOKENS.read(env),
        auth_tokens_file=AUTH_TOKENS_FILE.read(env),
        reflection=REFLECTION.read(env),
        upstream_token=UPSTREAM_TOKEN.read(env),
        upstream_token_file=UPSTREAM_TOKEN_FILE.read(env),
        max_message_bytes=MAX_MESSAGE_BYTES.read(env),
        max_messages=MAX_MESSAGES.read(env),
        max_text_chars=MAX_TEXT_CHARS.read(env),
        max_streams=MAX_STREAMS.read(env),
        max_streams_per_caller=MAX_STREAMS_PER_CALLER.read(env),
        prices=PRICES_FILE.read(env),
    )
