"""The inference service's settings: read once at start from the environment, then frozen.

No grpc import here or below: the worker supervisor reads these settings too.

Each variable is declared once below as a Setting (name, flag, default,
bounds, meaning); FLAGS, the Settings defaults and load() derive from those
declarations. Every variable has a command-line flag of the same meaning
(__main__ turns flags into this mapping, so a flag overrides its variable). A
bad value raises ConfigError naming the variable, before anything listens or
calls AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from dualnova.pricing import PRICES_FILE, PriceTable
from dualnova.routes import MICRO, PRO, ROUTES
from dualnova.server import event_loop as loops
from dualnova.server import tls_config, workers
from dualnova.server.callers import Credential, tokens_file_setting, tokens_setting
from dualnova.server.content_rules import KNOWLEDGE_BASE_ID
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
    read_int,
    read_optional_str,
    read_str,
    shutdown_delay,
    shutdown_grace,
)

__all__ = ["ConfigError", "FLAGS", "Flag", "SETTINGS", "Settings", "load"]


def _check_model_id(name: str, value: str) -> None:
    # The aliases callers may name are the route names (dualnova.routes); as ids they
    # would be ambiguous, and whitespace never belongs in a Bedrock id.
    if value in ROUTES or any(ch.isspace() for ch in value):
        raise ConfigError(f"{name}={value!r}: expected a Bedrock model or inference-profile id")


def _as_model_id(env: Mapping[str, str], setting: Setting[str]) -> str:
    value = read_str(env, setting.variable, setting.default)
    _check_model_id(setting.variable, value)
    return value


def _as_model_list(env: Mapping[str, str], setting: Setting[tuple[str, ...]]) -> tuple[str, ...]:
    raw = read_optional_str(env, setting.variable)
    if raw is None:
        return setting.default
    ids = tuple(part.strip() for part in raw.split(","))
    if any(not part for part in ids):
        raise ConfigError(f"{setting.variable}={raw!r}: empty entry in the comma-separated list")
    for model_id in ids:
        _check_model_id(setting.variable, model_id)
    return ids


def _as_max_attempts(env: Mapping[str, str], setting: Setting[int | None]) -> int | None:
    """Ours wins when set; otherwise botocore reads AWS_MAX_ATTEMPTS itself.

    Checking AWS_MAX_ATTEMPTS here too means a malformed value stops the
    service at start with a clear line rather than failing inside botocore.
    """
    ours = read_int(env, setting.variable, 0, minimum=setting.minimum, maximum=setting.maximum)
    if ours:
        return ours
    read_int(env, "AWS_MAX_ATTEMPTS", 0, minimum=1)
    return setting.default


def _as_namespace(env: Mapping[str, str], setting: Setting[str | None]) -> str | None:
    """A namespace PutMetricData accepts: a bad one stops the start, not the first flush."""
    name = setting.variable
    value = read_optional_str(env, name)
    if value is None:
        return setting.default
    if (
        len(value) > 255
        or not value.isascii()
        or not value.isprintable()
        or value.startswith(":")
        or value.startswith("AWS/")
    ):
        raise ConfigError(
            f"{name}={value!r}: expected a CloudWatch namespace (printable ASCII, at most 255"
            " characters, not starting with ':' or 'AWS/')"
        )
    return value


def _as_knowledge_base_id(env: Mapping[str, str], setting: Setting[str | None]) -> str | None:
    value = read_optional_str(env, setting.variable)
    if value is None:
        return setting.default
    if KNOWLEDGE_BASE_ID.fullmatch(value) is None:
        raise ConfigError(
            f"{setting.variable}={value!r}: expected a knowledge base id (10 letters or digits)"
        )
    return value


def _model(route: str, default: str) -> Setting[str]:
    return Setting(
        f"DUALNOVA_{route.upper()}_MODEL",
        f"--{route}-model",
        f"Bedrock id behind the alias '{route}'",
        default=default,
        reader=_as_model_id,
    )


LISTEN = listen("INFERENCE_LISTEN", "127.0.0.1:50051")
# TLS from these files (mutual TLS with a client CA); plaintext only on loopback unless allowed.
TLS = tls_config.ServerTLSSettings.declare("INFERENCE")
MICRO_MODEL = _model(MICRO, "amazon.nova-micro-v1:0")
PRO_MODEL = _model(PRO, "amazon.nova-pro-v1:0")
ALLOWED_MODELS: Setting[tuple[str, ...]] = Setting(
    "DUALNOVA_ALLOWED_MODELS",
    "--allowed-models",
    "comma-separated extra Bedrock model or inference-profile ids callers may name",
    default=(),
    reader=_as_model_list,
)
# Caps concurrent Chat streams in one process (each worker has its own cap); also sizes
# the Bedrock connection pool, so a stream never waits for a connection. 4096 holds
# 2,000 concurrent DualChats (two streams each) with room to spare.
MAX_STREAMS = Setting(
    "INFERENCE_MAX_STREAMS",
    "--max-streams",
    "concurrent Chat streams per worker; more are refused with RESOURCE_EXHAUSTED",
    default=4096,
    reader=as_int,
    minimum=1,
    maximum=100_000,
)
BEDROCK_READ_TIMEOUT = Setting(
    "DUALNOVA_BEDROCK_READ_TIMEOUT",
    "--bedrock-read-timeout",
    "seconds the service waits for bytes from Bedrock, for the headers and between reads",
    default=3600.0,
    reader=as_float,
    minimum=0.001,
    note="AWS's advice for Nova",
)
BEDROCK_CONNECT_TIMEOUT = Setting(
    "DUALNOVA_BEDROCK_CONNECT_TIMEOUT",
    "--bedrock-connect-timeout",
    "seconds to open a connection to Bedrock",
    default=10.0,
    reader=as_float,
    minimum=0.001,
)
# None: botocore decides (AWS_MAX_ATTEMPTS or the profile's max_attempts, else 3).
BEDROCK_MAX_ATTEMPTS: Setting[int | None] = Setting(
    "DUALNOVA_BEDROCK_MAX_ATTEMPTS",
    "--bedrock-max-attempts",
    "total attempts per call before a stream starts, botocore's standard retry mode;"
    " overrides AWS_MAX_ATTEMPTS",
    default=None,
    reader=_as_max_attempts,
    minimum=1,
    maximum=20,
    default_text="AWS_MAX_ATTEMPTS, else 3",
)
# Above the gateway's GATEWAY_MAX_MESSAGE_BYTES (32 MiB), so a request the gateway admitted
# (plus the route's model and settings) always passes here too.
MAX_MESSAGE_BYTES = Setting(
    "INFERENCE_MAX_MESSAGE_BYTES",
    "--max-message-bytes",
    "largest ChatRequest, in serialized bytes, the server accepts (and largest message it"
    " sends); larger ones are refused with INVALID_ARGUMENT naming the limit",
    default=64 * 1024 * 1024,
    reader=as_int,
    minimum=1024,
    maximum=1024 * 1024 * 1024,
)
DEFAULT_MAX_TOKENS = Setting(
    "DUALNOVA_DEFAULT_MAX_TOKENS",
    "--default-max-tokens",
    "max_tokens when a request leaves it unset",
    default=1024,
    reader=as_int,
    minimum=1,
)
MAX_CONNECTION_AGE = max_connection_age("INFERENCE_MAX_CONNECTION_AGE")
MAX_CONNECTION_AGE_GRACE = max_connection_age_grace("INFERENCE_MAX_CONNECTION_AGE_GRACE")
SHUTDOWN_GRACE = shutdown_grace("INFERENCE_SHUTDOWN_GRACE")
SHUTDOWN_DELAY = shutdown_delay("INFERENCE_SHUTDOWN_DELAY")
# Probes: how often, how long each may take (never longer than the interval, so a
# change shows within two intervals), and how many failed calls count as an outage.
PROBE_INTERVAL = HEALTH_INTERVAL.described(
    "seconds between dependency probes (bedrock-runtime, bedrock, model/*), above 0"
)
HEALTH_TIMEOUT = Setting(
    "DUALNOVA_HEALTH_TIMEOUT",
    "--health-timeout",
    "seconds one probe may take, at most the interval",
    default=2.0,
    reader=as_float,
    minimum=0.001,
    note="or the interval if shorter",
)
HEALTH_FAILED_CALLS = Setting(
    "DUALNOVA_HEALTH_FAILED_CALLS",
    "--health-failed-calls",
    "consecutive Chat calls failing for want of Bedrock (throttling and request errors"
    " aside) that turn bedrock-runtime NOT_SERVING",
    default=3,
    reader=as_int,
    minimum=1,
)
# CloudWatch token metrics: off unless a namespace is set.
CLOUDWATCH_NAMESPACE: Setting[str | None] = Setting(
    "DUALNOVA_CLOUDWATCH_NAMESPACE",
    "--cloudwatch-namespace",
    "publish token usage to this CloudWatch namespace",
    default=None,
    reader=_as_namespace,
    default_text="unset, off",
)
CLOUDWATCH_INTERVAL = Setting(
    "DUALNOVA_CLOUDWATCH_INTERVAL",
    "--cloudwatch-interval",
    "seconds between PutMetricData batches",
    default=60.0,
    reader=as_float,
    minimum=0.01,
    maximum=3600,
)
CLOUDWATCH_QUEUE = Setting(
    "DUALNOVA_CLOUDWATCH_QUEUE",
    "--cloudwatch-queue",
    "usage samples held for the next batch; more are dropped and counted",
    default=10_000,
    reader=as_int,
    minimum=1,
)
# Grounding without a knowledge base id uses this one; its state is the knowledge-base health name.
KNOWLEDGE_BASE: Setting[str | None] = Setting(
    "DUALNOVA_KNOWLEDGE_BASE_ID",
    "--knowledge-base-id",
    "the Bedrock Knowledge Base a grounding without an id retrieves from; also adds the"
    " knowledge-base health name (GetKnowledgeBase)",
    default=None,
    reader=_as_knowledge_base_id,
    default_text="unset, none",
)
# Prompt and answer text in logs: off, so logs can go where the conversations may not.
LOG_CONTENT = Setting(
    "DUALNOVA_LOG_CONTENT",
    "--log-content",
    "true to put prompt and answer text in the per-call log line",
    default=False,
    reader=as_bool,
)
# Server processes sharing the listen port (dualnova.server.workers); 1 is this process alone.
WORKERS = workers.setting("INFERENCE_WORKERS")
# Who may call Chat (dualnova.server.auth): the gateway's GATEWAY_UPSTREAM_TOKEN; unset, anyone.
AUTH_TOKENS = tokens_setting("INFERENCE_AUTH_TOKENS", "--auth-tokens", "Chat callers (the gateway)")
AUTH_TOKENS_FILE = tokens_file_setting(
    "INFERENCE_AUTH_TOKENS_FILE", "--auth-tokens-file", "Chat callers (the gateway)"
)

# Every setting with a flag, in --help and README order.
SETTINGS: tuple[Setting[Any], ...] = (
    LISTEN,
    *TLS.settings,
    tls_config.ALLOW_PLAINTEXT,
    MICRO_MODEL,
    PRO_MODEL,
    ALLOWED_MODELS,
    MAX_STREAMS,
    MAX_MESSAGE_BYTES,
    BEDROCK_READ_TIMEOUT,
    BEDROCK_CONNECT_TIMEOUT,
    BEDROCK_MAX_ATTEMPTS,
    DEFAULT_MAX_TOKENS,
    MAX_CONNECTION_AGE,
    MAX_CONNECTION_AGE_GRACE,
    SHUTDOWN_GRACE,
    SHUTDOWN_DELAY,
    PROBE_INTERVAL,
    HEALTH_TIMEOUT,
    HEALTH_FAILED_CALLS,
    CLOUDWATCH_NAMESPACE,
    CLOUDWATCH_INTERVAL,
    CLOUDWATCH_QUEUE,
    KNOWLEDGE_BASE,
    PRICES_FILE,
    LOG_CONTENT,
    WORKERS,
    loops.SETTING,
    AUTH_TOKENS,
    AUTH_TOKENS_FILE,
)
FLAGS: tuple[Flag, ...] = flags_of(SETTINGS)


@dataclass(frozen=True)
class Settings:
    """What the inference service runs with, built by load() and never mutated.

    Each default is its declaration's, so Settings() is what an empty environment loads.
    """

    listen: str = LISTEN.default
    # None: plaintext (dualnova.server.tls_config decides where that is allowed).
    tls: tls_config.ServerTLS | None = None
    micro_model: str = MICRO_MODEL.default
    pro_model: str = PRO_MODEL.default
    # Extra ids callers may name verbatim, besides micro_model and pro_model.
    allowed_models: tuple[str, ...] = ALLOWED_MODELS.default
    max_streams: int = MAX_STREAMS.default
    max_message_bytes: int = MAX_MESSAGE_BYTES.default
    bedrock_read_timeout_s: float = BEDROCK_READ_TIMEOUT.default
    bedrock_connect_timeout_s: float = BEDROCK_CONNECT_TIMEOUT.default
    bedrock_max_attempts: int | None = BEDROCK_MAX_ATTEMPTS.default
    default_max_tokens: int = DEFAULT_MAX_TOKENS.default
    max_connection_age_s: float = MAX_CONNECTION_AGE.default
    max_connection_age_grace_s: float = MAX_CONNECTION_AGE_GRACE.default
    shutdown_grace_s: float = SHUTDOWN_GRACE.default
    shutdown_delay_s: float = SHUTDOWN_DELAY.default
    health_interval_s: float = PROBE_INTERVAL.default
    health_timeout_s: float = HEALTH_TIMEOUT.default
    health_failed_calls: int = HEALTH_FAILED_CALLS.default
    # AWS_REGION, which boto3 itself does not read (it reads AWS_DEFAULT_REGION and the
    # profile). When set it wins over both, as the AWS CLI and the other SDKs document.
    # A standard AWS variable, not ours, so it has no flag and no Setting.
    aws_region: str | None = None
    cloudwatch_namespace: str | None = CLOUDWATCH_NAMESPACE.default
    cloudwatch_interval_s: float = CLOUDWATCH_INTERVAL.default
    cloudwatch_queue_size: int = CLOUDWATCH_QUEUE.default
    knowledge_base_id: str | None = KNOWLEDGE_BASE.default
    # Model prices for the estimated-cost metric (dualnova.pricing).
    prices: PriceTable = PRICES_FILE.default
    log_content: bool = LOG_CONTENT.default
    workers: int = WORKERS.default
    event_loop: str = loops.SETTING.default
    auth_tokens: tuple[Credential, ...] = AUTH_TOKENS.default
    auth_tokens_file: str | None = AUTH_TOKENS_FILE.default

    def resolve_model(self, requested: str) -> str | None:
        """The Bedrock id for an alias or an accepted id; None when it is not accepted."""
        if requested == MICRO:
            return self.micro_model
        if requested == PRO:
            return self.pro_model
        if requested in (self.micro_model, self.pro_model) or requested in self.allowed_models:
            return requested
        return None

    def accepted_models(self) -> tuple[str, ...]:
        """Everything a caller may put in ChatRequest.model, for error messages."""
        return (*ROUTES, self.micro_model, self.pro_model, *self.allowed_models)


def load(env: Mapping[str, str]) -> Settings:
    """Read and validate every variable; raises ConfigError naming the first bad one."""
    micro = MICRO_MODEL.read(env)
    pro = PRO_MODEL.read(env)
    interval = PROBE_INTERVAL.read(env)
    return Settings(
        listen=LISTEN.read(env),
        tls=TLS.read(env, LISTEN),
        micro_model=micro,
        pro_model=pro,
        allowed_models=ALLOWED_MODELS.read(env),
        max_streams=MAX_STREAMS.read(env),
        max_message_bytes=MAX_MESSAGE_BYTES.read(env),
        bedrock_read_timeout_s=BEDROCK_READ_TIMEOUT.read(env),
        bedrock_connect_timeout_s=BEDROCK_CONNECT_TIMEOUT.read(env),
        bedrock_max_attempts=BEDROCK_MAX_ATTEMPTS.read(env),
        default_max_tokens=DEFAULT_MAX_TOKENS.read(env),
        max_connection_age_s=MAX_CONNECTION_AGE.read(env),
        max_connection_age_grace_s=MAX_CONNECTION_AGE_GRACE.read(env),
        shutdown_grace_s=SHUTDOWN_GRACE.read(env),
        shutdown_delay_s=SHUTDOWN_DELAY.read(env),
        health_interval_s=interval,
        health_timeout_s=_read_health_timeout(env, interval),
        health_failed_calls=HEALTH_FAILED_CALLS.read(env),
        aws_region=read_optional_str(env, "AWS_REGION"),
        cloudwatch_namespace=CLOUDWATCH_NAMESPACE.read(env),
        cloudwatch_interval_s=CLOUDWATCH_INTERVAL.read(env),
        cloudwatch_queue_size=CLOUDWATCH_QUEUE.read(env),
        knowledge_base_id=KNOWLEDGE_BASE.read(env),
        prices=PRICES_FILE.read(env),
        log_content=LOG_CONTENT.read(env),
        workers=WORKERS.read(env),
        event_loop=loops.read(env),
        auth_tokens=AUTH_TOKENS.read(env),
        auth_tokens_file=AUTH_TOKENS_FILE.read(env),
    )


def _read_health_timeout(env: Mapping[str, str], interval: float) -> float:
    """A probe that outlives the interval would delay the next one past the two-interval bound."""
    unset = min(HEALTH_TIMEOUT.default, interval)
    timeout = replace(HEALTH_TIMEOUT, default=unset).read(env)
    if timeout > interval:
        name = HEALTH_TIMEOUT.variable
        raise ConfigError(
            f"{name}={env.get(name)!r}: must be at most {PROBE_INTERVAL.variable} ({interval:g} s)"
        )
    return timeout
