"""The inference service's settings: read once at start from the environment, then frozen.

Every variable has a command-line flag of the same meaning (see FLAGS; __main__
turns flags into this mapping, so a flag overrides its variable). A bad value
raises ConfigError naming the variable, before anything listens or calls AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dualnova.settings import (
    ConfigError,
    read_address,
    read_float,
    read_int,
    read_optional_str,
    read_str,
)

__all__ = ["ConfigError", "FLAGS", "Flag", "Settings", "load"]

MICRO_ALIAS = "micro"
PRO_ALIAS = "pro"


@dataclass(frozen=True)
class Flag:
    """One command-line flag and the environment variable it stands for."""

    option: str
    variable: str
    help: str


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
        "concurrent Chat streams; more are refused with RESOURCE_EXHAUSTED (default 512)",
    ),
    Flag(
        "--bedrock-read-timeout",
        "DUALNOVA_BEDROCK_READ_TIMEOUT",
        "seconds botocore waits for bytes from Bedrock (default 3600, AWS's advice for Nova)",
    ),
    Flag(
        "--bedrock-connect-timeout",
        "DUALNOVA_BEDROCK_CONNECT_TIMEOUT",
        "seconds to open a connection to Bedrock (default 10)",
    ),
    Flag(
        "--bedrock-max-attempts",
        "DUALNOVA_BEDROCK_MAX_ATTEMPTS",
        "botocore total attempts per call, standard retry mode; overrides AWS_MAX_ATTEMPTS"
        " (default: AWS_MAX_ATTEMPTS, else 3)",
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
)


@dataclass(frozen=True)
class Settings:
    """Validated configuration; built by load(), never mutated."""

    listen: str = "127.0.0.1:50051"
    micro_model: str = "amazon.nova-micro-v1:0"
    pro_model: str = "amazon.nova-pro-v1:0"
    # Extra ids callers may name verbatim, besides micro_model and pro_model.
    allowed_models: tuple[str, ...] = ()
    # Caps concurrent Chat streams; also sizes the Bedrock thread pool and botocore's
    # connection pool, so a stream never waits for a thread or a connection.
    max_streams: int = 512
    bedrock_read_timeout_s: float = 3600.0
    bedrock_connect_timeout_s: float = 10.0
    # None: botocore decides (AWS_MAX_ATTEMPTS or the profile's max_attempts, else 3).
    bedrock_max_attempts: int | None = None
    default_max_tokens: int = 1024
    shutdown_grace_s: float = 10.0
    # AWS_REGION, which boto3 itself does not read (it reads AWS_DEFAULT_REGION and the
    # profile). When set it wins over both, as the AWS CLI and the other SDKs document.
    aws_region: str | None = None

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
        aws_region=read_optional_str(env, "AWS_REGION"),
    )


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
