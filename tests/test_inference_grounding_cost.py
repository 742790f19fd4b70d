"""The estimated cost beside the token metrics, and the retrieval span, from a real service.

One inference service of this module's own exports OTLP to the module's
collector, publishes to CloudWatch (moto's server, as tests/test_cloudwatch.py
does) and prices its models from a DUALNOVA_PRICES_FILE written here, so the
expected figures are the tokens each caller was told times those prices:
the OTel histogram dualnova.inference.cost, the CloudWatch metric
EstimatedCostUSD and the Bedrock span's dualnova.cost.usd all say the same.
"""

from __future__ import annotations

import datetime
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from polling import wait_until
from processes import SERVICE_DEFAULTS
from startup import assert_refused_to_start
from telemetry_support import FAST_EXPORT, MICRO, PRO, OtlpCollector

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc

NAMESPACE = "DualNova/CostTest"
INFERENCE = "inference_service"
COST = "dualnova.inference.cost"
# USD per 1,000,000 tokens: not the built-in prices, so the file is what prices the calls.
PRICES = {
    MICRO: {"input": 1.5, "output": 6.0, "cache_read": 0.375, "cache_write": 2.25},
    PRO: {"input": 20.0, "output": 80.0, "cache_read": 5.0, "cache_write": 25.0},
}
USER = chat_pb2.ROLE_USER


@pytest.fixture(scope="module")
def priced_service(
    emulator: EmulatorHandle,
    collector: OtlpCollector,
    moto_url: str,
    log_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceHandle]:
    prices_file = tmp_path_factory.mktemp("prices") / "prices.json"
    prices_file.write_text(json.dumps(PRICES))
    url = emulator.aws_env()["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"]
    handle = ServiceHandle(
        "inference service (cost)",
        "inference_service",
        "INFERENCE_LISTEN",
        {
            **SERVICE_DEFAULTS,
            **emulator.aws_env(),
            "AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME": url,
            "AWS_ENDPOINT_URL_BEDROCK_AGENT": url,
            "DUALNOVA_BEDROCK_MAX_ATTEMPTS": "1",
            "DUALNOVA_KNOWLEDGE_BASE_ID": "KBDUALNOVA",
            "DUALNOVA_PRICES_FILE": str(prices_file),
            "DUALNOVA_CLOUDWATCH_NAMESPACE": NAMESPACE,
            "DUALNOVA_CLOUDWATCH_INTERVAL": "0.2",
            "AWS_ENDPOINT_URL_CLOUDWATCH": moto_url,
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            **FAST_EXPORT,
        },
        log_path=log_dir / "inference_service-cost.log",
    )
    handle.start()
    yield handle
    handle.stop()


@pytest.fixture
def priced_stub(
    priced_service: ServiceHandle,
) -> Iterator[inference_pb2_grpc.InferenceServiceStub]:
    with grpc.insecure_channel(priced_service.address) as channel:
        yield inference_pb2_grpc.InferenceServiceStub(channel)


def traceparent() -> tuple[str, tuple[tuple[str, str], ...]]:
    """A sampled W3C trace context of a fresh trace: (trace id, metadata)."""
    trace_id = secrets.token_hex(16)
    return trace_id, (("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"),)


def usage_of(
    stub: inference_pb2_grpc.InferenceServiceStub,
    request: inference_pb2.ChatRequest,
    metadata: tuple[tuple[str, str], ...] = (),
) -> chat_pb2.Usage:
    (usage,) = [
        e.usage for e in stub.Chat(request, timeout=20, metadata=metadata) if e.HasField("usage")
    ]
    return usage


def priced(model: str, usage: chat_pb2.Usage) -> float:
    price = PRICES[model]
    return (
        usage.input_tokens * price["input"]
        + usage.output_tokens * price["output"]
        + usage.cache_read_input_tokens * price["cache_read"]
        + usage.cache_write_input_tokens * price["cache_write"]
    ) / 1_000_000


def cost_attributes(model: str) -> dict[str, str]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "aws.bedrock",
        "gen_ai.request.model": model,
        "dualnova.route": "direct",
    }


def cloudwatch_cost(client: Any, model: str) -> tuple[float, float]:
    """EstimatedCostUSD's Sum and SampleCount for `model` on direct calls, over the last hour."""
    now = datetime.datetime.now(datetime.UTC)
    response = client.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName="EstimatedCostUSD",
        Dimensions=[{"Name": "ModelId", "Value": model}, {"Name": "Route", "Value": "direct"}],
        StartTime=now - datetime.timedelta(hours=1),
        EndTime=now + datetime.timedelta(minutes=5),
        Period=60,
        Statistics=["Sum", "SampleCount"],
    )
    points = response["Datapoints"]
    return sum(p["Sum"] for p in points), sum(p["SampleCount"] for p in points)


def test_the_cost_metrics_equal_the_tokens_times_the_configured_prices(
    priced_stub: inference_pb2_grpc.InferenceServiceStub,
    collector: OtlpCollector,
    cloudwatch: Any,
) -> None:
    cached = ["You are a careful assistant who explains what Bedrock's prompt cache saves."]
    requests = {
        MICRO: [
            inference_pb2.ChatRequest(
                model="micro", messages=[chat_pb2.Message(role=USER, text="Hello")]
            ),
            # The second of these reads what the first wrote to the prompt cache.
            *[
                inference_pb2.ChatRequest(
                    model="micro",
                    messages=[chat_pb2.Message(role=USER, text="What does the cache save?")],
                    system=cached,
                    cache_system=True,
                )
            ]
            * 2,
        ],
        PRO: [
            inference_pb2.ChatRequest(
                model="pro", messages=[chat_pb2.Message(role=USER, text="무엇을 할 수 있나요?")]
            )
        ],
    }
    expected: dict[str, float] = {}
    for model, calls in requests.items():
        usages = [usage_of(priced_stub, request) for request in calls]
        expected[model] = sum(priced(model, usage) for usage in usages)
        if model == MICRO:
            assert any(u.cache_write_input_tokens for u in usages)
            assert any(u.cache_read_input_tokens for u in usages)

    for model, calls in requests.items():
        value, _count = otel_cost(collector, model, len(calls))
        assert value == pytest.approx(expected[model], rel=1e-9)
        point = collector.point(INFERENCE, COST, cost_attributes(model))
        assert point is not None and point.unit == "{USD}"
        total, _samples = settled_cloudwatch_cost(cloudwatch, model, len(calls))
        assert total == pytest.approx(expected[model], rel=1e-9)


def otel_cost(collector: OtlpCollector, model: str, calls: int) -> tuple[float, int]:
    """The cost histogram's (sum, count) for `model` once it holds `calls` points."""
    return wait_until(
        lambda: (
            (total := collector.total(INFERENCE, COST, cost_attributes(model)))[1] == calls
            and total
        ),
        f"{calls} cost points for {model}",
    )


def settled_cloudwatch_cost(client: Any, model: str, calls: int) -> tuple[float, float]:
    return wait_until(
        lambda: (stats := cloudwatch_cost(client, model))[1] == calls and stats,
        f"{calls} EstimatedCostUSD samples for {model}",
    )


def test_a_grounded_chat_has_a_retrieval_span_and_a_priced_bedrock_span(
    priced_stub: inference_pb2_grpc.InferenceServiceStub, collector: OtlpCollector
) -> None:
    trace_id, metadata = traceparent()
    request = inference_pb2.ChatRequest(
        model="micro",
        messages=[chat_pb2.Message(role=USER, text="What is Amazon Nova Micro?")],
        grounding=chat_pb2.Grounding(number_of_results=3),
    )
    usage = usage_of(priced_stub, request, metadata)

    def both() -> list[Any] | None:
        spans = collector.spans(trace_id)
        names = {span.name for span in spans}
        return spans if {"retrieval KBDUALNOVA", f"chat {MICRO}"} <= names else None

    spans = wait_until(both, "the retrieval and chat spans")
    (retrieval,) = [s for s in spans if s.name == "retrieval KBDUALNOVA"]
    (bedrock,) = [s for s in spans if s.name == f"chat {MICRO}"]
    assert retrieval.kind == "CLIENT" and retrieval.status != "ERROR"
    attributes = retrieval.attributes
    assert attributes["gen_ai.operation.name"] == "retrieval"
    assert attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert attributes["gen_ai.data_source.id"] == "KBDUALNOVA"
    assert attributes["gen_ai.request.top_k"] == 3
    assert 0 < attributes["dualnova.retrieval.passages"] <= 3
    assert attributes["aws.request_id"]
    # Both are children of the Chat server span; the query's text is in neither.
    assert retrieval.parent_span_id == bedrock.parent_span_id != ""
    assert not any("Nova Micro?" in str(value) for value in attributes.values())
    assert bedrock.attributes["dualnova.cost.usd"] == pytest.approx(priced(MICRO, usage))


def test_a_failed_retrieve_marks_its_span(
    priced_stub: inference_pb2_grpc.InferenceServiceStub, collector: OtlpCollector
) -> None:
    trace_id, metadata = traceparent()
    request = inference_pb2.RetrieveRequest(
        grounding=chat_pb2.Grounding(knowledge_base_id="KBNOTREADY"), query="Nova"
    )
    with pytest.raises(grpc.RpcError) as raised:
        priced_stub.Retrieve(request, timeout=20, metadata=metadata)
    assert raised.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    spans = wait_until(
        lambda: [s for s in collector.spans(trace_id) if s.name == "retrieval KBNOTREADY"],
        "the failed retrieval span",
    )
    (span,) = spans
    assert span.status == "ERROR" and span.attributes["error.type"] == "ConflictException"


def test_a_bad_prices_file_stops_the_inference_service_with_one_line(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({MICRO: {"input": 1, "output": 2, "cache_read": 0}}))
    result = subprocess.run(
        [sys.executable, "-m", "inference_service"],
        env={
            "PATH": "/usr/bin:/bin",
            "AWS_REGION": "us-east-1",
            "DUALNOVA_PRICES_FILE": str(prices),
        },
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert_refused_to_start(
        result, "inference_service", "DUALNOVA_PRICES_FILE=", "cache_write is missing"
    )
