"""The summary's estimated cost: each route's tokens, as Bedrock reported them, times its prices.

Through the three processes: the emulator's request log holds the usage Bedrock
sent for each route, and the summary's cost_by_route must be those tokens
times the configured prices (the built-in ones, or a DUALNOVA_PRICES_FILE of a
gateway of this module's own), total_cost their sum; each route span carries
its cost as dualnova.cost.usd.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from gateway_client import ask, dual_chat, user
from processes import SERVICE_DEFAULTS
from telemetry_support import OtlpCollector, Pair

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.gateway.v1 import gateway_pb2
from dualnova.pricing import DEFAULT_PRICES, ModelPrice
from gateway.fanout import summarize

MODELS = {"micro": "amazon.nova-micro-v1:0", "pro": "amazon.nova-pro-v1:0"}
# Prices of this module's gateway: nothing like the defaults, cache writes priced too.
PRO_PRICE = ModelPrice(input=2.5, output=7.0, cache_read=0.5, cache_write=3.75)
CACHED = gateway_pb2.DualChatRequest(
    messages=[user("What does a cache point cost?")],
    system=["You are a careful assistant who explains AWS costs in detail."],
    cache_system=True,
)


def bedrock_usage(emulator: EmulatorHandle) -> dict[str, dict[str, int]]:
    """The usage the emulator reported on each route's last ConverseStream."""
    entries = [e for e in emulator.requests() if e["operation"] == "ConverseStream"]
    return {
        route: [e for e in entries if e["model_id"] == model][-1]["usage"]
        for route, model in MODELS.items()
    }


def cost_of(usage: dict[str, int], price: ModelPrice) -> dict[str, float]:
    """Tokens times prices (USD per 1,000,000 tokens), field by field."""
    parts = {
        "input_usd": usage["inputTokens"] * price.input / 1e6,
        "output_usd": usage["outputTokens"] * price.output / 1e6,
        "cache_read_usd": usage.get("cacheReadInputTokens", 0) * price.cache_read / 1e6,
        "cache_write_usd": usage.get("cacheWriteInputTokens", 0) * price.cache_write / 1e6,
    }
    return {**parts, "total_usd": sum(parts.values())}


def assert_cost(cost: chat_pb2.Cost, expected: dict[str, float]) -> None:
    assert cost.estimated
    for name, value in expected.items():
        assert getattr(cost, name) == pytest.approx(value, rel=1e-9, abs=1e-15), name


def test_each_routes_cost_is_its_tokens_times_the_built_in_prices(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = dual_chat(gateway.address, ask("What does DualNova cost to run?"))

    usage = bedrock_usage(emulator)
    summary = result.summary
    assert set(summary.cost_by_route) == {"micro", "pro"}
    for route, model in MODELS.items():
        assert usage[route]["outputTokens"] > 0
        assert_cost(summary.cost_by_route[route], cost_of(usage[route], DEFAULT_PRICES[model]))
    total = summary.total_cost
    assert total.estimated
    assert total.total_usd == pytest.approx(
        sum(c.total_usd for c in summary.cost_by_route.values()), rel=1e-12
    )
    assert total.output_usd == pytest.approx(
        sum(c.output_usd for c in summary.cost_by_route.values()), rel=1e-12
    )


@pytest.fixture(scope="module")
def priced_gateway(
    inference: ServiceHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceHandle]:
    """A gateway process of this module's own, with Pro priced by a DUALNOVA_PRICES_FILE."""
    directory = tmp_path_factory.mktemp("prices")
    prices = directory / "prices.json"
    prices.write_text(
        json.dumps(
            {
                MODELS["pro"]: {
                    "input": PRO_PRICE.input,
                    "output": PRO_PRICE.output,
                    "cache_read": PRO_PRICE.cache_read,
                    "cache_write": PRO_PRICE.cache_write,
                }
            }
        )
    )
    handle = ServiceHandle(
        "gateway (prices file)",
        "gateway",
        "GATEWAY_LISTEN",
        {
            **SERVICE_DEFAULTS,
            "INFERENCE_TARGET": inference.address,
            "DUALNOVA_PRICES_FILE": str(prices),
        },
        log_path=directory / "gateway.log",
    )
    handle.start()
    yield handle
    handle.stop()


def test_a_prices_file_prices_the_models_it_names_cache_reads_and_writes_included(
    priced_gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    written = dual_chat(priced_gateway.address, CACHED)
    written_usage = bedrock_usage(emulator)
    read = dual_chat(priced_gateway.address, CACHED)
    read_usage = bedrock_usage(emulator)

    assert written_usage["pro"]["cacheWriteInputTokens"] > 0
    assert read_usage["pro"]["cacheReadInputTokens"] > 0
    for result, usage in ((written, written_usage), (read, read_usage)):
        costs = result.summary.cost_by_route
        assert_cost(costs["pro"], cost_of(usage["pro"], PRO_PRICE))
        # Micro is not in the file: the built-in price still applies.
        assert_cost(costs["micro"], cost_of(usage["micro"], DEFAULT_PRICES[MODELS["micro"]]))
    assert written.summary.cost_by_route["pro"].cache_write_usd > 0
    assert read.summary.cost_by_route["pro"].cache_read_usd > 0


def test_each_route_span_carries_its_cost(
    exporting_pair: Pair, collector: OtlpCollector, emulator: EmulatorHandle
) -> None:
    result = dual_chat(exporting_pair.gateway.address, ask("What does a span cost?"))

    spans = collector.wait_for_trace(result.summary.trace_id, 7)
    for route in MODELS:
        (span,) = [
            s
            for s in spans
            if (s.service, s.kind) == ("gateway", "CLIENT")
            and s.attributes.get("dualnova.route") == route
        ]
        assert span.attributes["dualnova.cost.usd"] == pytest.approx(
            result.summary.cost_by_route[route].total_usd, rel=1e-12
        )


def test_a_route_without_usage_or_price_has_no_cost_and_no_total_without_any() -> None:
    usage = chat_pb2.Usage(input_tokens=100, output_tokens=10, total_tokens=110)
    priced = chat_pb2.Cost(input_usd=1.0, total_usd=1.0, estimated=True)

    summary = summarize({"micro": usage, "pro": usage}, "ab" * 16, {"micro": priced})
    assert set(summary.usage_by_route) == {"micro", "pro"}
    assert set(summary.cost_by_route) == {"micro"}
    assert summary.total_cost == priced

    without: Any = summarize({"pro": usage}, "ab" * 16, {})
    assert dict(without.cost_by_route) == {} and not without.HasField("total_cost")
