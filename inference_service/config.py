"""The inference service's settings: read once at start from the environment, then frozen.

No grpc import here or below: the worker supervisor reads these settings too.

Every variable has a command-line flag of the same meaning (see FLAGS; __main__
turns flags into this mapping, so a flag overrides its variable). A bad value
raises ConfigError naming the variable, before anything listens or calls AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dualnova import event_loop as loops
from dualnova import workers
from dualnova.settings import (
    INTERVAL_VARIABLE,
    ConfigError,
    Flag,
    read_address,
    read_bool,
    read_float,
    read_int,
    read_interval,
    read_optional_str,
    read_str,
)

__all__ = ["ConfigError", "FLAGS", "Flag", "Settings", "load"]

MICRO_ALIAS = "micro"
PRO_ALIAS = "pro"


FLAGS: tuple[Flag, ...] = (
    Flag("--listen", "INFERENCE_LISTEN", "HOST:PORT to serve gRPC on (default 127.0.0.1:50051)"),
    Flag("--micro-model", "DUALNOVA_MICRO_MODEL", "Bedrock id behind the alias 'micro'"),
    Flag("--pro-model", "DUALNOVA_PRO_MODEL", "Bedrock id behind the alias 'pro'"),
    Flag(
        "--allowed-models",
        "DUALNOVA_ALLOWED_MODELS",
        "comma-separated extra Bedrock model or inference-profile ids callers may name",
    ),
    Flag(
        "--max-streams",
        "INFERENCE_MAX_STREAMS",
        "concurrent Chat streams per worker; more are refused with RESOURCE_EXHAUSTED"
        " (default 4096)",
    ),
    Flag(
        "--bedrock-read-timeout",
        "DUALNOVA_BEDROCK_READ_TIMEOUT",
        "seconds the service waits for bytes from Bedrock, for the headers and between reads"
        " (default 3600, AWS's advice for Nova)",
    ),
    Flag(
        "--bedrock-connect-timeout",
        "DUALNOVA_BEDROCK_CONNECT_TIMEOUT",
        "seconds to open a connection to Bedrock (default 10)",
    ),
    Flag(
        "--bedrock-max-attempts",
        "DUALNOVA_BEDROCK_MAX_ATTEMPTS",
        "total attempts per call before a stream starts, botocore's standard retry mode;"
        " overrides AWS_MAX_ATTEMPTS (default: AWS_MAX_ATTEMPTS, else 3)",
    ),
    Flag(
        "--default-max-tokens",
        "DUALNOVA_DEFAULT_MAX_TOKENS",
        "max_tokens when a request leaves it unset (default 1024)",
    ),
    Flag(
        "--shutdown-grace",
        "INFERENCE_SHUTDOWN_GRACE",
        "seconds running streams may finish after SIGTERM before they are cancelled (default 10)",
    ),
    Flag(
        "--shutdown-delay",
        "INFERENCE_SHUTDOWN_DELAY",
        "seconds between reporting NOT_SERVING on SIGTERM and refusing new calls, so balancers"
        " see the change first (default 2)",
    ),
    Flag(
        "--health-interval",
        INTERVAL_VARIABLE,
        "seconds between dependency probes (bedrock-runtime, bedrock, model/*), above 0"
        " (default 5)",
    ),
    Flag(
        "--health-timeout",
        "DUALNOVA_HEALTH_TIMEOUT",
        "seconds one probe may take, at most the interval (default 2, or the interval if shorter)",
    ),
    Flag(
        "--health-failed-calls",
        "DUALNOVA_HEALTH_FAILED_CALLS",
        "consecutive Chat calls failing for want of Bedrock (throttling and request errors"
        " aside) that turn bedrock-runtime NOT_SERVING (default 3)",
    ),
    Flag(
        "--cloudwatch-namespace",
        "DUALNOVA_CLOUDWATCH_NAMESPACE",
        "publish token usage to this CloudWatch namespace (default: unset, off)",
    ),
    Flag(
        "--cloudwatch-interval",
        "DUALNOVA_CLOUDWATCH_INTERVAL",
        "seconds between PutMetricData batches (default 60)",
    ),
    Flag(
        "--cloudwatch-queue",
        "DUALNOVA_CLOUDWATCH_QUEUE",
        "usage samples held for the next batch; more are dropped and counted (default 10000)",
    ),
    Flag(
        "--log-content",
        "DUALNOVA_LOG_CONTENT",
        "true to put prompt and answer text in the per-call log line (default false)",
    ),
    workers.flag("INFERENCE_WORKERS"),
    loops.FLAG,
)


@dataclass(frozen=True)
class Settings:
    """Validated configuration; built by load(), never mutated."""

    listen: str = "127.0.0.1:50051"
    micro_model: str = "amazon.nova-micro-v1:0"
    pro_model: str = "amazon.nova-pro-v1:0"
    # Extra ids callers may name verbatim, besides micro_model and pro_model.
    allowed_models: tuple[str, ...] = ()
    # Caps concurrent Chat streams in one process (each worker has its own cap); also sizes
    # the Bedrock connection pool, so a stream never waits for a connection. 4096 holds
    # 2,000 concurrent DualChats (two streams each) with room to spare.
    max_streams: int = 4096
    bedrock_read_timeout_s: float = 3600.0
    bedrock_connect_timeout_s: float = 10.0
    # None: botocore decides (AWS_MAX_ATTEMPTS or the profile's max_attempts, else 3).
    bedrock_max_attempts: int | None = None
    default_max_tokens: int = 1024
    shutdown_grace_s: float = 10.0
    # Seconds of NOT_SERVING before new calls are refused (SIGTERM only).
    shutdown_delay_s: float = 2.0
    # Probes: how often, how long each may take (never longer than the interval, so a
    # change shows within two intervals), and how many failed calls count as an outage.
    health_interval_s: float = 5.0
    health_timeout_s: float = 2.0
    health_failed_calls: int = 3
    # AWS_REGION, which boto3 itself does not read (it reads AWS_DEFAULT_REGION and the
    # profile). When set it wins over both, as the AWS CLI and the other SDKs document.
    aws_region: str | None = None
    # CloudWatch token metrics: off unless a namespace is set.
    cloudwatch_namespace: str | None = None
    cloudwatch_interval_s: float = 60.0
    cloudwatch_queue_size: int = 10_000
    # Prompt and answer text in logs: off, so logs can go where the conversations may not.
    log_content: bool = False
    # Server processes sharing the listen port (dualnova.workers); 1 is this process alone.
    workers: int = 1
    event_loop: str = loops.DEFAULT

    def resolve_model(self, requested: str) -> str | None:
        """The Bedrock id for an alias or an accepted id; None when it is not accepted."""
        if requested == MICRO_ALIAS:
            return self.micro_model
        if requested == PRO_ALIAS:
            return self.pro_model
        if requested in (self.micro_model, self.pro_model) or requested in self.allowed_models:
            return requested
        return None

    def accepted_models(self) -> tuple[str, ...]:
        """Everything a caller may put in ChatRequest.model, for error messages."""
        return (MICRO_ALIAS, PRO_ALIAS, self.micro_model, self.pro_model, *self.allowed_models)


def load(env: Mapping[str, str]) -> Settings:
    """Read and validate every variable; raises ConfigError naming the first bad one."""
    defaults = Settings()
    micro = read_str(env, "DUALNOVA_MICRO_MODEL", defaults.micro_model)
    pro = read_str(env, "DUALNOVA_PRO_MODEL", defaults.pro_model)
    for name, value in (("DUALNOVA_MICRO_MODEL", micro), ("DUALNOVA_PRO_MODEL", pro)):
        _check_model_id(name, value)
    interval = read_interval(env)
    return Settings(
        listen=read_address(env, "INFERENCE_LISTEN", defaults.listen),
        micro_model=micro,
        pro_model=pro,
        allowed_models=_read_model_list(env, "DUALNOVA_ALLOWED_MODELS"),
        max_streams=read_int(
            env, "INFERENCE_MAX_STREAMS", defaults.max_streams, minimum=1, maximum=100_000
        ),
        bedrock_read_timeout_s=read_float(
            env, "DUALNOVA_BEDROCK_READ_TIMEOUT", defaults.bedrock_read_timeout_s, minimum=0.001
        ),
        bedrock_connect_timeout_s=read_float(
            env,
            "DUALNOVA_BEDROCK_CONNECT_TIMEOUT",
            defaults.bedrock_connect_timeout_s,
            minimum=0.001,
        ),
        bedrock_max_attempts=_read_max_attempts(env),
        default_max_tokens=read_int(
            env, "DUALNOVA_DEFAULT_MAX_TOKENS", defaults.default_max_tokens, minimum=1
        ),
        shutdown_grace_s=read_float(
            env, "INFERENCE_SHUTDOWN_GRACE", defaults.shutdown_grace_s, minimum=0
        ),
        shutdown_delay_s=read_float(
            env, "INFERENCE_SHUTDOWN_DELAY", defaults.shutdown_delay_s, minimum=0, maximum=3600
        ),
        health_interval_s=interval,
        health_timeout_s=_read_health_timeout(env, interval, defaults.health_timeout_s),
        health_failed_calls=read_int(
            env, "DUALNOVA_HEALTH_FAILED_CALLS", defaults.health_failed_calls, minimum=1
        ),
        aws_region=read_optional_str(env, "AWS_REGION"),
        cloudwatch_namespace=_read_namespace(env, "DUALNOVA_CLOUDWATCH_NAMESPACE"),
        cloudwatch_interval_s=read_float(
            env,
            "DUALNOVA_CLOUDWATCH_INTERVAL",
            defaults.cloudwatch_interval_s,
            minimum=0.01,
            maximum=3600,
        ),
        cloudwatch_queue_size=read_int(
            env, "DUALNOVA_CLOUDWATCH_QUEUE", defaults.cloudwatch_queue_size, minimum=1
        ),
        log_content=read_bool(env, "DUALNOVA_LOG_CONTENT", defaults.log_content),
        workers=workers.read_workers(env, "INFERENCE_WORKERS"),
        event_loop=loops.read(env),
    )


def _read_health_timeout(env: Mapping[str, str], interval: float, default: float) -> float:
    """A probe that outlives the interval would delay the next one past the two-interval bound."""
    timeout = read_float(env, "DUALNOVA_HEALTH_TIMEOUT", min(default, interval), minimum=0.001)
    if timeout > interval:
        raise ConfigError(
            f"DUALNOVA_HEALTH_TIMEOUT={env.get('DUALNOVA_HEALTH_TIMEOUT')!r}: must be at most"
            f" {INTERVAL_VARIABLE} ({interval:g} s)"
        )
    return timeout


def _read_namespace(env: Mapping[str, str], name: str) -> str | None:
    """A namespace PutMetricData accepts: a bad one stops the start, not the first flush."""
    value = read_optional_str(env, name)
    if value is None:
        return None
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


def _read_max_attempts(env: Mapping[str, str]) -> int | None:
    """Ours wins when set; otherwise botocore reads AWS_MAX_ATTEMPTS itself.

    Checking AWS_MAX_ATTEMPTS here too means a malformed value stops the
    service at start with a clear line rather than failing inside botocore.
    """
    ours = read_int(env, "DUALNOVA_BEDROCK_MAX_ATTEMPTS", 0, minimum=1, maximum=20)
    if ours:
        return ours
    read_int(env, "AWS_MAX_ATTEMPTS", 0, minimum=1)
    return None


def _read_model_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = read_optional_str(env, name)
    if raw is None:
        return ()
    ids = tuple(part.strip() for part in raw.split(","))
    if any(not part for part in ids):
        raise ConfigError(f"{name}={raw!r}: empty entry in the comma-separated list")
    for model_id in ids:
        _check_model_id(name, model_id)
    return ids


def _check_model_id(name: str, value: str) -> None:
    # Aliases would be ambiguous as ids, and whitespace never belongs in a Bedrock id.
    if value in (MICRO_ALIAS, PRO_ALIAS) or any(ch.isspace() for ch in value):
        raise ConfigError(f"{name}={value!r}: expected a Bedrock model or inference-profile id")
