"""The README's tables stay true: every setting and every mapped Bedrock error is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import config as gateway_config
from inference_service import config as inference_config
from inference_service.errors import CLIENT_ERROR_CODES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize(
    "flag",
    [*inference_config.FLAGS, *gateway_config.FLAGS],
    ids=lambda flag: flag.variable,
)
def test_every_setting_is_in_the_configuration_table(flag) -> None:
    assert f"| `{flag.variable}` | `{flag.option}` |" in README


@pytest.mark.parametrize("error_code", sorted(CLIENT_ERROR_CODES))
def test_every_mapped_bedrock_error_is_in_the_error_table(error_code: str) -> None:
    status, _phrase = CLIENT_ERROR_CODES[error_code]
    assert f"| `{error_code}` | `{status.name}` |" in README


def test_the_two_commands_are_the_quick_start() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "make demo" in quick_start and "make test" in quick_start
