"""The README's tables stay true: every setting and every mapped Bedrock error is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway import config as gateway_config
from inference_service import config as inference_config
from inference_service.bedrock import CLIENT_ERROR_CODES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
CONFIGURATION = README.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]


def configuration_table(heading: str) -> str:
    """One service's table: the text under `### <heading>` up to the next subsection."""
    return CONFIGURATION.split(f"\n### {heading}", 1)[1].split("\n### ", 1)[0]


@pytest.mark.parametrize(
    "flag",
    [*inference_config.FLAGS, *gateway_config.FLAGS],
    ids=lambda flag: flag.variable,
)
def test_every_setting_is_in_the_configuration_table(flag) -> None:
    assert f"| `{flag.variable}` | `{flag.option}` |" in README


@pytest.mark.parametrize(
    ("heading", "setting"),
    [
        *(("Inference service", setting) for setting in inference_config.SETTINGS),
        *(("Gateway", setting) for setting in gateway_config.SETTINGS),
    ],
    ids=lambda value: getattr(value, "variable", value),
)
def test_every_setting_row_states_the_declared_default(heading: str, setting) -> None:
    rows = [
        line
        for line in configuration_table(heading).splitlines()
        if line.startswith(f"| `{setting.variable}` | `{setting.option}` |")
    ]
    assert len(rows) == 1, f"{setting.variable}: {len(rows)} rows under {heading}"
    # "(default 10)" must not pass for a declared 1; "(default: unset, off)" reads as words.
    stated = re.compile(rf"\(default:? {re.escape(setting.shown_default)}(?![\w.])")
    assert stated.search(rows[0]), f"{rows[0]} does not say (default {setting.shown_default})"


@pytest.mark.parametrize("error_code", sorted(CLIENT_ERROR_CODES))
def test_every_mapped_bedrock_error_is_in_the_error_table(error_code: str) -> None:
    status, _phrase = CLIENT_ERROR_CODES[error_code]
    assert f"| `{error_code}` | `{status.name}` |" in README


def test_the_two_commands_are_the_quick_start() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "make demo" in quick_start and "make test" in quick_start


LAYOUT_PACKAGES = ("inference_service", "gateway", "bedrock_emulator", "dualnova")


@pytest.mark.parametrize("package", LAYOUT_PACKAGES)
def test_the_layout_table_names_every_module_and_only_real_ones(package: str) -> None:
    (row,) = [line for line in README.splitlines() if line.startswith(f"| `{package}/` |")]
    named = set(re.findall(r"`([a-z_]+\.py)`", row))
    root = Path(__file__).resolve().parent.parent / package
    modules = {
        path.name
        for path in root.rglob("*.py")
        if not path.name.startswith("__") and "_pb2" not in path.name
    }
    assert named - modules == set(), "named in the README but not in the tree"
    assert modules - named == set(), "in the tree but not in the README's layout table"
