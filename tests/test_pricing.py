"""dualnova.pricing: cost is tokens times the prices; a bad price file stops a service at start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from startup import assert_refused_to_start

from dualnova import pricing
from dualnova.chat.v1 import chat_pb2
from dualnova.pricing import DEFAULT_PRICES, PRICES_FILE, ModelPrice, PriceTable
from dualnova.server.settings import ConfigError

MICRO = "amazon.nova-micro-v1:0"
PRO = "amazon.nova-pro-v1:0"
USAGE = chat_pb2.Usage(
    input_tokens=1234,
    output_tokens=567,
    total_tokens=1801 + 300 + 40,
    cache_read_input_tokens=300,
    cache_write_input_tokens=40,
)


def expected(price: ModelPrice, usage: chat_pb2.Usage) -> dict[str, float]:
    parts = {
        "input_usd": usage.input_tokens * price.input / 1e6,
        "output_usd": usage.output_tokens * price.output / 1e6,
        "cache_read_usd": usage.cache_read_input_tokens * price.cache_read / 1e6,
        "cache_write_usd": usage.cache_write_input_tokens * price.cache_write / 1e6,
    }
    return {**parts, "total_usd": sum(parts.values())}


@pytest.mark.parametrize("model_id", [MICRO, PRO, "amazon.nova-lite-v1:0"])
def test_cost_is_each_kind_of_token_times_its_price(model_id: str) -> None:
    cost = pricing.estimate(DEFAULT_PRICES, model_id, USAGE)
    assert cost is not None and cost.estimated
    for name, value in expected(DEFAULT_PRICES[model_id], USAGE).items():
        assert getattr(cost, name) == pytest.approx(value, rel=1e-12), name


def test_the_built_in_prices_are_novas_on_demand_ones() -> None:
    # Per 1,000,000 tokens; cache reads 75% below input, no charge for cache writes on Nova.
    assert DEFAULT_PRICES[MICRO] == ModelPrice(0.035, 0.14, 0.00875, 0.0)
    assert DEFAULT_PRICES["amazon.nova-lite-v1:0"] == ModelPrice(0.06, 0.24, 0.015, 0.0)
    assert DEFAULT_PRICES[PRO] == ModelPrice(0.80, 3.20, 0.20, 0.0)
    assert pricing.PRICES_SOURCE.startswith("https://aws.amazon.com/bedrock/pricing")
    assert pricing.PRICES_DATE in PRICES_FILE.shown_default


def test_a_million_pro_output_tokens_cost_its_output_price() -> None:
    cost = pricing.estimate(DEFAULT_PRICES, PRO, chat_pb2.Usage(output_tokens=1_000_000))
    assert cost is not None
    assert (cost.output_usd, cost.input_usd, cost.total_usd) == (3.2, 0.0, 3.2)


@pytest.mark.parametrize("prefix", ["us.", "eu.", "apac.", "global."])
def test_a_cross_region_profile_takes_its_base_models_price(prefix: str) -> None:
    assert pricing.estimate(DEFAULT_PRICES, prefix + PRO, USAGE) == pricing.estimate(
        DEFAULT_PRICES, PRO, USAGE
    )


@pytest.mark.parametrize(
    "model_id",
    ["anthropic.claude-3-haiku-20240307-v1:0", "xx.amazon.nova-pro-v1:0", "us.", "", "nova-pro"],
)
def test_a_model_without_a_price_has_no_cost(model_id: str) -> None:
    assert pricing.estimate(DEFAULT_PRICES, model_id, USAGE) is None


def test_a_profiles_own_price_wins_over_its_base_models() -> None:
    own = ModelPrice(1.0, 2.0, 0.5, 0.25)
    table = PriceTable({**DEFAULT_PRICES, "us." + PRO: own})
    cost = pricing.estimate(table, "us." + PRO, USAGE)
    assert cost is not None
    assert cost.total_usd == pytest.approx(expected(own, USAGE)["total_usd"])


def test_add_costs_sums_field_by_field() -> None:
    micro = pricing.estimate(DEFAULT_PRICES, MICRO, USAGE)
    pro = pricing.estimate(DEFAULT_PRICES, PRO, USAGE)
    assert micro is not None and pro is not None
    total = pricing.add_costs([micro, pro])
    for name in ("input_usd", "output_usd", "cache_read_usd", "cache_write_usd", "total_usd"):
        assert getattr(total, name) == pytest.approx(getattr(micro, name) + getattr(pro, name))
    assert total.estimated
    assert pricing.add_costs([]) == chat_pb2.Cost(estimated=True)


def test_a_prices_file_replaces_the_models_it_names_and_keeps_the_others(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps({PRO: {"input": 1, "output": 4.5, "cache_read": 0.25, "cache_write": 1.25}})
    )
    table = PRICES_FILE.read({PRICES_FILE.variable: str(prices)})
    assert table[PRO] == ModelPrice(1.0, 4.5, 0.25, 1.25)
    assert table[MICRO] == DEFAULT_PRICES[MICRO]
    cost = pricing.estimate(table, PRO, USAGE)
    assert cost is not None
    assert cost.cache_write_usd == pytest.approx(40 * 1.25 / 1e6)
    assert PRICES_FILE.read({}) is DEFAULT_PRICES


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{", "not JSON"),
        ("[]", "expected a JSON object"),
        (json.dumps({PRO: 3}), "expected an object"),
        (json.dumps({PRO: {"input": 1, "output": 2, "cache_read": 0}}), "cache_write is missing"),
        (
            json.dumps({PRO: {"input": 1, "output": 2, "cache_read": 0, "cache_write": 0, "x": 1}}),
            "unknown field 'x'",
        ),
        (
            json.dumps({PRO: {"input": -1, "output": 2, "cache_read": 0, "cache_write": 0}}),
            "input must be a finite number >= 0",
        ),
        (
            json.dumps({PRO: {"input": "1", "output": 2, "cache_read": 0, "cache_write": 0}}),
            "input must be a number",
        ),
        (
            json.dumps({PRO: {"input": True, "output": 2, "cache_read": 0, "cache_write": 0}}),
            "input must be a number",
        ),
        (json.dumps({" ": {"input": 1, "output": 2, "cache_read": 0, "cache_write": 0}}), "empty"),
    ],
)
def test_a_bad_prices_file_is_a_config_error_naming_the_variable(
    tmp_path: Path, content: str, says: str
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(content)
    with pytest.raises(ConfigError) as raised:
        PRICES_FILE.read({PRICES_FILE.variable: str(prices)})
    assert str(raised.value).startswith(f"DUALNOVA_PRICES_FILE={str(prices)!r}: ")
    assert says in str(raised.value)


def test_a_missing_prices_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"DUALNOVA_PRICES_FILE=.*cannot read it"):
        PRICES_FILE.read({PRICES_FILE.variable: str(tmp_path / "absent.json")})


@pytest.mark.parametrize("module", ["gateway", "inference_service"])
def test_a_bad_prices_file_stops_the_service_with_one_line(tmp_path: Path, module: str) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({PRO: {"input": "cheap"}}))
    result = subprocess.run(
        [sys.executable, "-m", module],
        env={"PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1", PRICES_FILE.variable: str(prices)},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert_refused_to_start(result, module, "DUALNOVA_PRICES_FILE=")
