"""Token usage in CloudWatch, through moto: the sums equal what callers were told.

moto's server plays CloudWatch over HTTP for the inference service process
(AWS_ENDPOINT_URL_CLOUDWATCH, as any boto3 client honours it) and rejects
parameters the real API would reject, the seed's MaxRecords bug among them.
A CloudWatch that cannot be reached must cost metrics, never a chat: it only
turns the `cloudwatch` health name NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator
from typing import Any

import boto3
import grpc
import pytest
from botocore.config import Config
from gateway_client import ask, dual_chat, user
from grpc_health.v1 import health_pb2, health_pb2_grpc
from polling import wait_until
from telemetry_support import (
    MICRO,
    PRO,
    Pair,
    closed_port,
    log_lines,
    running_pair,
    silent_listener,
)

from dualnova.dev.stack import HOST, EmulatorHandle
from dualnova.gateway.v1 import gateway_pb2
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from inference_service.bedrock import UsageReport
from inference_service.cloudwatch import CloudWatchPublisher

NAMESPACE = "DualNova/Test"
MODELS = {"micro": MICRO, "pro": PRO}
FAST_FLUSH = {"DUALNOVA_CLOUDWATCH_INTERVAL": "0.2"}


@pytest.fixture(scope="module")
def pair(
    emulator: EmulatorHandle, moto_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    env = {
        "DUALNOVA_CLOUDWATCH_NAMESPACE": NAMESPACE,
        "AWS_ENDPOINT_URL_CLOUDWATCH": moto_url,
        **FAST_FLUSH,
    }
    with running_pair(emulator, tmp_path_factory.mktemp("cloudwatch"), inference_env=env) as p:
        yield p


def statistics(client: Any, metric: str, model: str, route: str) -> tuple[float, float]:
    """CloudWatch's Sum and SampleCount of `metric` for one model and route, over the last hour."""
    now = datetime.datetime.now(datetime.UTC)
    response = client.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=metric,
        Dimensions=[
            {"Name": "ModelId", "Value": model},
            {"Name": "Route", "Value": route},
        ],
        StartTime=now - datetime.timedelta(hours=1),
        EndTime=now + datetime.timedelta(minutes=5),
        Period=60,
        Statistics=["Sum", "SampleCount"],
    )
    points = response["Datapoints"]
    return sum(p["Sum"] for p in points), sum(p["SampleCount"] for p in points)


def health(address: str, name: str) -> str:
    with grpc.insecure_channel(address) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=name), timeout=5
        )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def test_cloudwatch_sums_equal_the_usage_callers_received(pair: Pair, cloudwatch: Any) -> None:
    cached = gateway_pb2.DualChatRequest(
        messages=[user("What does the cache save?")],
        system=["You are a careful assistant who explains AWS costs."],
        cache_system=True,
    )
    requests = [
        ask("첫 번째 질문입니다"),
        cached,  # writes the prompt cache
        cached,  # reads it
    ]
    received = [dual_chat(pair.gateway.address, request) for request in requests]

    fields = {
        "InputTokenCount": "input_tokens",
        "OutputTokenCount": "output_tokens",
        "TotalTokenCount": "total_tokens",
        "CacheReadInputTokenCount": "cache_read_input_tokens",
        "CacheWriteInputTokenCount": "cache_write_input_tokens",
    }
    for route, model in MODELS.items():
        usages = [result.routes[route].usage for result in received]
        assert all(usage is not None for usage in usages)
        assert sum(u.cache_read_input_tokens for u in usages) > 0  # the cache path is covered
        for metric, field_name in fields.items():
            expected = sum(getattr(usage, field_name) for usage in usages)
            wait_until(
                lambda metric=metric, model=model, route=route, expected=expected: (
                    statistics(cloudwatch, metric, model, route)[0] == expected
                ),
                f"{metric} for {route} to sum to {expected}",
            )
        # One sample per call: SampleCount is the number of calls.
        assert statistics(cloudwatch, "InputTokenCount", model, route)[1] == len(requests)
    assert health(pair.inference.address, "cloudwatch") == "SERVING"


def test_a_call_without_the_gateway_is_published_under_route_direct(
    pair: Pair, cloudwatch: Any
) -> None:
    with grpc.insecure_channel(pair.inference.address) as channel:
        responses = list(
            inference_pb2_grpc.InferenceServiceStub(channel).Chat(
                inference_pb2.ChatRequest(model="micro", messages=[user("Direct call")]),
                timeout=30,
            )
        )
    usage = next(r.usage for r in responses if r.HasField("usage"))
    wait_until(
        lambda: (
            statistics(cloudwatch, "OutputTokenCount", MICRO, "direct") == (usage.output_tokens, 1)
        ),
        "the direct call's output tokens",
    )


def test_an_unreachable_cloudwatch_leaves_chats_working_and_its_health_not_serving(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = {
        "DUALNOVA_CLOUDWATCH_NAMESPACE": NAMESPACE,
        "AWS_ENDPOINT_URL_CLOUDWATCH": f"http://{HOST}:{closed_port()}",
        **FAST_FLUSH,
    }
    log_dir = tmp_path_factory.mktemp("cloudwatch-down")
    with running_pair(emulator, log_dir, inference_env=env) as started:
        address = started.inference.address
        assert health(address, "cloudwatch") == "SERVING"  # nothing has failed yet
        for question in ("Does the chat survive?", "And the next one?"):
            result = dual_chat(started.gateway.address, ask(question))
            for route in MODELS:
                assert result.routes[route].error is None
                assert result.routes[route].usage.output_tokens > 0
        wait_until(
            lambda: health(address, "cloudwatch") == "NOT_SERVING",
            "cloudwatch NOT_SERVING",
        )
        # An optional dependency: the server itself stays in rotation.
        assert health(address, "") == "SERVING"
        failures = [
            line
            for line in log_lines(log_dir / "inference_service.log")
            if line["message"].startswith("CloudWatch PutMetricData failed")
        ]
        assert failures and "Could not connect" in failures[0]["error"]


def test_a_full_queue_drops_and_counts_instead_of_blocking(
    moto_url: str, emulator: EmulatorHandle, cloudwatch: Any
) -> None:
    async def scenario() -> tuple[int, list[tuple[bool, str]]]:
        states: list[tuple[bool, str]] = []

        async def on_state(serving: bool, reason: str) -> None:
            states.append((serving, reason))

        publisher = CloudWatchPublisher(
            cloudwatch, NAMESPACE, interval_s=3600, max_queue=2, on_state=on_state
        )
        await publisher.start()
        for output_tokens in (5, 7, 11, 13):
            publisher.record(PRO, "queue-test", UsageReport(3, output_tokens, 3 + output_tokens))
        await publisher.stop()  # sends what the queue held
        return publisher.dropped, states

    dropped, states = asyncio.run(scenario())
    assert dropped == 2
    assert states == [(True, ""), (True, "")]
    assert statistics(cloudwatch, "OutputTokenCount", PRO, "queue-test") == (5 + 7, 2)


def test_a_flush_cut_short_by_shutdown_counts_its_samples_as_dropped() -> None:
    # A CloudWatch that accepts the connection and never answers: stop() gives up
    # after its timeout, and the samples that flush was carrying are counted, not lost.
    with silent_listener() as port:
        hung = boto3.client(
            "cloudwatch",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(read_timeout=30, retries={"total_max_attempts": 1}),
        )

        async def scenario() -> int:
            publisher = CloudWatchPublisher(hung, NAMESPACE, interval_s=0.05, max_queue=10)
            await publisher.start()
            for output_tokens in (5, 7, 11):
                publisher.record(
                    MICRO, "stop-test", UsageReport(3, output_tokens, 3 + output_tokens)
                )
            await asyncio.sleep(0.3)  # the loop's flush is now waiting on the hung CloudWatch
            await publisher.stop(timeout_s=0.5)
            return publisher.dropped

        assert asyncio.run(scenario()) == 3
