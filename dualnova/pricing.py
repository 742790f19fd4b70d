"""Estimated cost of an answer: its token counts times the configured prices.

An estimate, never the bill: Bedrock's invoice is the authority (regional
prices differ, discounts and free tiers apply). The built-in table holds the
on-demand prices of the Nova text models; DUALNOVA_PRICES_FILE replaces them
for the models it names. Both services read it the same way (PRICES_FILE).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from dualnova.chat.v1 import chat_pb2
from dualnova.server.settings import ConfigError, Setting, read_optional_str

# Where the built-in prices come from, and when they were read. The pricing page
# renders its tables in the browser, so the figures were checked against copies
# of it (US East on-demand, per 1,000,000 tokens); cache reads are 75% below input.
PRICES_SOURCE = "https://aws.amazon.com/bedrock/pricing/"
PRICES_DATE = "2026-12-01"

TOKENS_PER_PRICE = 1_000_000

# Cross-region inference profiles bill at the base model's price in the source region.
CROSS_REGION_PREFIXES = ("us.", "eu.", "apac.", "global.")

PRICE_FIELDS = ("input", "output", "cache_read", "cache_write")


@dataclass(frozen=True)
class ModelPrice:
    """US dollars per 1,000,000 tokens of each kind."""

    input: float
    output: float
    cache_read: float
    cache_write: float


class PriceTable(Mapping[str, ModelPrice]):
    """Model id -> price; read-only and hashable, so frozen settings can hold one."""

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        self._prices = dict(prices)

    def __getitem__(self, model_id: str) -> ModelPrice:
        return self._prices[model_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    def __hash__(self) -> int:
        return hash(frozenset(self._prices.items()))

    def __repr__(self) -> str:
        return f"PriceTable({self._prices!r})"


DEFAULT_PRICES = PriceTable(
    {
        "amazon.nova-micro-v1:0": ModelPrice(0.035, 0.14, 0.00875, 0.0),
        "amazon.nova-lite-v1:0": ModelPrice(0.06, 0.24, 0.015, 0.0),
        "amazon.nova-pro-v1:0": ModelPrice(0.80, 3.20, 0.20, 0.0),
    }
)


def price_of(prices: PriceTable, model_id: str) -> ModelPrice | None:
    """The price of `model_id`, or of its base model when it names a cross-region profile."""
    price = prices.get(model_id)
    if price is not None:
        return price
    for prefix in CROSS_REGION_PREFIXES:
        if model_id.startswith(prefix):
            return prices.get(model_id[len(prefix) :])
    return None


def estimate(prices: PriceTable, model_id: str, usage: chat_pb2.Usage) -> chat_pb2.Cost | None:
    """The cost of `usage` on `model_id`; None when the table has no price for it."""
    price = price_of(prices, model_id)
    if price is None:
        return None
    return _cost(
        input_usd=usage.input_tokens * price.input / TOKENS_PER_PRICE,
        output_usd=usage.output_tokens * price.output / TOKENS_PER_PRICE,
        cache_read_usd=usage.cache_read_input_tokens * price.cache_read / TOKENS_PER_PRICE,
        cache_write_usd=usage.cache_write_input_tokens * price.cache_write / TOKENS_PER_PRICE,
    )


def add_costs(costs: Iterable[chat_pb2.Cost]) -> chat_pb2.Cost:
    """The field-wise sum of `costs` (an empty sum is all zeros, still an estimate)."""
    listed = list(costs)
    return _cost(
        input_usd=sum(cost.input_usd for cost in listed),
        output_usd=sum(cost.output_usd for cost in listed),
        cache_read_usd=sum(cost.cache_read_usd for cost in listed),
        cache_write_usd=sum(cost.cache_write_usd for cost in listed),
    )


def _cost(
    *, input_usd: float, output_usd: float, cache_read_usd: float, cache_write_usd: float
) -> chat_pb2.Cost:
    return chat_pb2.Cost(
        input_usd=input_usd,
        output_usd=output_usd,
        cache_read_usd=cache_read_usd,
        cache_write_usd=cache_write_usd,
        total_usd=input_usd + output_usd + cache_read_usd + cache_write_usd,
        estimated=True,
    )


def parse_prices(text: str, base: PriceTable = DEFAULT_PRICES) -> PriceTable:
    """`base` with the models named in the JSON `text` replaced; ValueError saying what is wrong.

    The shape: {"<model id>": {"input": .., "output": .., "cache_read": .., "cache_write": ..}},
    every price a number >= 0 in US dollars per 1,000,000 tokens, all four given (a
    missing one would silently price those tokens at 0).
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(document, dict):
        raise ValueError("expected a JSON object of model id -> prices")
    table = dict(base)
    for model_id, entry in document.items():
        if not model_id.strip():
            raise ValueError("a model id is empty")
        table[model_id] = _model_price(model_id, entry)
    return PriceTable(table)


def _model_price(model_id: str, entry: object) -> ModelPrice:
    if not isinstance(entry, dict):
        raise ValueError(f"{model_id}: expected an object with {', '.join(PRICE_FIELDS)}")
    unknown = sorted(set(entry) - set(PRICE_FIELDS))
    if unknown:
        raise ValueError(
            f"{model_id}: unknown field {unknown[0]!r} (expected {', '.join(PRICE_FIELDS)})"
        )
    values: dict[str, float] = {}
    for name in PRICE_FIELDS:
        if name not in entry:
            raise ValueError(f"{model_id}: {name} is missing")
        value = entry[name]
        # bool is an int to Python, never a price.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{model_id}: {name} must be a number, not {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{model_id}: {name} must be a finite number >= 0, not {value!r}")
        values[name] = float(value)
    return ModelPrice(**values)


def _as_prices(env: Mapping[str, str], setting: Setting[PriceTable]) -> PriceTable:
    path = read_optional_str(env, setting.variable)
    if path is None:
        return setting.default
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ConfigError(f"{setting.variable}={path!r}: cannot read it ({reason})") from None
    try:
        return parse_prices(text, setting.default)
    except ValueError as error:
        raise ConfigError(f"{setting.variable}={path!r}: {error}") from None


# Declared once; each service lists it among its settings.
PRICES_FILE: Setting[PriceTable] = Setting(
    "DUALNOVA_PRICES_FILE",
    "--prices-file",
    "JSON file of model prices in USD per 1,000,000 tokens"
    ' ({"<model id>": {"input", "output", "cache_read", "cache_write"}}) replacing the'
    " built-in ones for the models it names; costs are estimates",
    default=DEFAULT_PRICES,
    reader=_as_prices,
    default_text=f"unset, the built-in Nova on-demand prices of {PRICES_DATE}",
)
