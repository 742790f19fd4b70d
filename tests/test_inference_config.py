"""Configuration: variables and flags, and the one-line exit 2 when something is wrong at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from startup import assert_refused_to_start

from dualnova.server.settings import ConfigError
from inference_service import config

REPO = Path(__file__).resolve().parent.parent


def run_service(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m inference_service` with only the given environment (no developer AWS profile)."""
    base = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        # Keep the credential chain local and fast: no ~/.aws files, no instance metadata.
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return subprocess.run(
        [sys.executable, "-m", "inference_service", *args],
        env={**base, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


GOOD_AWS = {
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "AKIAEMULATOR0000",
    "AWS_SECRET_ACCESS_KEY": "emulator-secret",
}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("INFERENCE_LISTEN", "no-port-here"),
        ("INFERENCE_MAX_STREAMS", "abc"),
        ("INFERENCE_MAX_STREAMS", "0"),
        ("DUALNOVA_BEDROCK_READ_TIMEOUT", "soon"),
        ("DUALNOVA_BEDROCK_MAX_ATTEMPTS", "0"),
        ("DUALNOVA_DEFAULT_MAX_TOKENS", "-5"),
        ("DUALNOVA_ALLOWED_MODELS", "amazon.nova-lite-v1:0,,x"),
    ],
)
def test_bad_variable_exits_2_naming_it(variable: str, value: str) -> None:
    result = run_service({**GOOD_AWS, variable: value})
    assert_refused_to_start(result, "inference_service", variable, repr(value))


def test_bad_flag_value_exits_2_naming_the_variable_it_stands_for() -> None:
    result = run_service(GOOD_AWS, "--max-streams", "lots")
    assert_refused_to_start(result, "inference_service", "INFERENCE_MAX_STREAMS", "'lots'")


def test_missing_region_exits_2_naming_aws_region() -> None:
    env = {k: v for k, v in GOOD_AWS.items() if k != "AWS_REGION"}
    line = assert_refused_to_start(run_service(env), "inference_service", "AWS_REGION")
    assert "region" in line


def test_missing_credentials_exit_2_saying_so() -> None:
    line = assert_refused_to_start(run_service({"AWS_REGION": "us-east-1"}), "inference_service")
    assert "no AWS credentials" in line


def test_unknown_profile_exits_2_naming_it() -> None:
    result = run_service({**GOOD_AWS, "AWS_PROFILE": "no-such-profile"})
    assert_refused_to_start(result, "inference_service", "no-such-profile")


def test_address_in_use_exits_2_naming_inference_listen() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_service({**GOOD_AWS, "INFERENCE_LISTEN": address})
    # Logs and gRPC's own bind message come first; the verdict is the last line.
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("inference_service: configuration error: INFERENCE_LISTEN=")
    assert address in last


def test_defaults() -> None:
    settings = config.load({})
    assert settings.listen == "127.0.0.1:50051"
    assert settings.micro_model == "amazon.nova-micro-v1:0"
    assert settings.pro_model == "amazon.nova-pro-v1:0"
    assert settings.allowed_models == ()
    assert settings.max_streams == 4096  # per worker: 2,000 DualChats are 4,000 streams
    assert settings.bedrock_read_timeout_s == 3600
    assert settings.bedrock_connect_timeout_s == 10
    assert settings.bedrock_max_attempts is None  # botocore: AWS_MAX_ATTEMPTS, else 3
    assert settings.default_max_tokens == 1024
    assert settings.workers == 1  # one process, port not shared
    assert settings.event_loop == "uvloop"


def test_our_max_attempts_wins_over_aws_max_attempts() -> None:
    both = config.load({"DUALNOVA_BEDROCK_MAX_ATTEMPTS": "5", "AWS_MAX_ATTEMPTS": "2"})
    assert both.bedrock_max_attempts == 5
    with pytest.raises(ConfigError, match="AWS_MAX_ATTEMPTS"):
        config.load({"AWS_MAX_ATTEMPTS": "many"})


def test_models_resolve_by_alias_configured_id_or_allow_list() -> None:
    settings = config.load(
        {
            "DUALNOVA_MICRO_MODEL": "us.amazon.nova-micro-v1:0",
            "DUALNOVA_ALLOWED_MODELS": "amazon.nova-lite-v1:0, amazon.nova-premier-v1:0",
        }
    )
    assert settings.resolve_model("micro") == "us.amazon.nova-micro-v1:0"
    assert settings.resolve_model("pro") == "amazon.nova-pro-v1:0"
    assert settings.resolve_model("us.amazon.nova-micro-v1:0") == "us.amazon.nova-micro-v1:0"
    assert settings.resolve_model("amazon.nova-premier-v1:0") == "amazon.nova-premier-v1:0"
    assert settings.resolve_model("amazon.nova-micro-v1:0") is None  # not configured any more
    assert settings.resolve_model("Micro") is None


def test_every_variable_has_a_flag() -> None:
    variables = {flag.variable for flag in config.FLAGS}
    assert {
        "INFERENCE_LISTEN",
        "DUALNOVA_MICRO_MODEL",
        "DUALNOVA_PRO_MODEL",
        "DUALNOVA_ALLOWED_MODELS",
        "INFERENCE_MAX_STREAMS",
        "DUALNOVA_BEDROCK_READ_TIMEOUT",
        "DUALNOVA_BEDROCK_CONNECT_TIMEOUT",
        "DUALNOVA_BEDROCK_MAX_ATTEMPTS",
        "DUALNOVA_DEFAULT_MAX_TOKENS",
    } <= variables


def test_unset_variables_read_as_their_declared_defaults() -> None:
    settings = config.load({})
    assert settings == config.Settings()
    for setting in config.SETTINGS:
        assert setting.read({}) == setting.default, setting.variable


def test_a_declared_bound_is_the_one_enforced_and_named() -> None:
    assert config.MAX_STREAMS.maximum == 100_000
    with pytest.raises(
        ConfigError, match=r"INFERENCE_MAX_STREAMS='100001': must be at most 100000"
    ):
        config.load({"INFERENCE_MAX_STREAMS": "100001"})
    assert config.load({"INFERENCE_MAX_STREAMS": "100000"}).max_streams == 100_000
