"""Metrics over OTLP: tokens, duration, time to first chunk and request counts per model and route.

The services export cumulative metrics to the test's collector; each test
notes where a series stood and waits until it has moved by exactly what its
calls should add. Every test waits for every series it touches, so the next
test starts from settled values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from gateway_client import ask, dual_chat, user
from polling import wait_until
from telemetry_support import MICRO, PRO, OtlpCollector, Pair

from dualnova.dev.stack import EmulatorHandle
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc

INFERENCE = "inference_service"
GATEWAY = "gateway"
MODELS = {"micro": MICRO, "pro": PRO}
TOKENS = "gen_ai.client.token.usage"
DURATION = "gen_ai.client.operation.duration"
FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
REQUESTS = "dualnova.inference.requests"
ROUTE_CALLS = "dualnova.gateway.route.calls"


def genai(model: str, route: str, **more: str) -> dict[str, str]:
    """The attributes every GenAI metric of a Bedrock call carries, plus `more`."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "aws.bedrock",
        "gen_ai.request.model": model,
        "dualnova.route": route,
        **{key.replace("__", "."): value for key, value in more.items()},
    }


def tokens(model: str, route: str, kind: str) -> dict[str, str]:
    return genai(model, route, gen_ai__token__type=kind)


def requests(model: str, route: str, status: str) -> dict[str, str]:
    return {
        "gen_ai.request.model": model,
        "dualnova.route": route,
        "rpc.response.status_code": status,
    }


def route_calls(route: str, status: str) -> dict[str, str]:
    return {"dualnova.route": route, "rpc.response.status_code": status}


@dataclass
class Series:
    """One series of one metric: where it stood when made, and a wait for it to move."""

    collector: OtlpCollector
    service: str
    metric: str
    attributes: dict[str, Any]
    start: tuple[float, int] = field(init=False)

    def __post_init__(self) -> None:
        self.start = self.now()

    def now(self) -> tuple[float, int]:
        return self.collector.total(self.service, self.metric, self.attributes)

    def moves_by(self, value: float, count: int | None = None) -> None:
        """A sum grows by `value`; a histogram's sum by `value` and its count by `count`."""
        want = (self.start[0] + value, None if count is None else self.start[1] + count)
        wait_until(
            lambda: self.now()[0] == want[0] and want[1] in (None, self.now()[1]),
            f"{self.metric} {self.attributes} to reach {want}",
        )

    def records_one_more(self) -> None:
        """A histogram has one more (positive) measurement."""
        wait_until(
            lambda: self.now()[1] == self.start[1] + 1,
            f"one more {self.metric} {self.attributes}",
        )
        assert self.now()[0] > self.start[0]


def test_a_dual_chat_records_tokens_duration_first_chunk_and_requests_per_route(
    exporting_pair: Pair, collector: OtlpCollector
) -> None:
    def series(service: str, metric: str, attributes: dict[str, str]) -> Series:
        return Series(collector, service, metric, attributes)

    before = {
        route: {
            "input": series(INFERENCE, TOKENS, tokens(model, route, "input")),
            "output": series(INFERENCE, TOKENS, tokens(model, route, "output")),
            "duration": series(INFERENCE, DURATION, genai(model, route)),
            "first_chunk": series(INFERENCE, FIRST_CHUNK, genai(model, route)),
            "requests": series(INFERENCE, REQUESTS, requests(model, route, "OK")),
            "route_calls": series(GATEWAY, ROUTE_CALLS, route_calls(route, "OK")),
        }
        for route, model in MODELS.items()
    }
    result = dual_chat(exporting_pair.gateway.address, ask("Count my tokens"))

    for route in MODELS:
        usage = result.routes[route].usage
        got = before[route]
        got["input"].moves_by(usage.input_tokens, count=1)
        got["output"].moves_by(usage.output_tokens, count=1)
        got["duration"].records_one_more()
        got["first_chunk"].records_one_more()
        got["requests"].moves_by(1)
        got["route_calls"].moves_by(1)
    token_point = collector.point(INFERENCE, TOKENS, tokens(MICRO, "micro", "input"))
    assert token_point is not None and token_point.unit == "{token}"
    duration_point = collector.point(INFERENCE, DURATION, genai(MICRO, "micro"))
    assert duration_point is not None and duration_point.unit == "s"


def test_a_failed_call_is_counted_by_status_and_its_duration_by_error_type(
    exporting_pair: Pair, collector: OtlpCollector, emulator: EmulatorHandle
) -> None:
    throttled = Series(collector, INFERENCE, REQUESTS, requests(PRO, "pro", "RESOURCE_EXHAUSTED"))
    failed_duration = Series(
        collector,
        INFERENCE,
        DURATION,
        genai(PRO, "pro", error__type="ThrottlingException"),
    )
    route_failed = Series(collector, GATEWAY, ROUTE_CALLS, route_calls("pro", "RESOURCE_EXHAUSTED"))
    micro_ok = Series(collector, INFERENCE, REQUESTS, requests(MICRO, "micro", "OK"))
    micro_output = Series(collector, INFERENCE, TOKENS, tokens(MICRO, "micro", "output"))
    emulator.add_fault(kind="throttling", model=PRO)

    result = dual_chat(exporting_pair.gateway.address, ask("Throttle pro"))
    assert result.routes["pro"].error.code == "RESOURCE_EXHAUSTED"

    throttled.moves_by(1)
    failed_duration.records_one_more()
    route_failed.moves_by(1)
    micro_ok.moves_by(1)
    micro_output.moves_by(result.routes["micro"].usage.output_tokens, count=1)


def test_a_model_name_that_was_refused_never_becomes_a_metric_attribute(
    exporting_pair: Pair, collector: OtlpCollector
) -> None:
    refused = Series(
        collector, INFERENCE, REQUESTS, requests("_OTHER", "direct", "INVALID_ARGUMENT")
    )
    with grpc.insecure_channel(exporting_pair.inference.address) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            list(
                stub.Chat(
                    inference_pb2.ChatRequest(model="caller-chosen-text", messages=[user("hi")]),
                    timeout=10,
                )
            )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    refused.moves_by(1)
    recorded = collector.series(INFERENCE, REQUESTS)
    assert {p.attributes["gen_ai.request.model"] for p in recorded} <= {
        MICRO,
        PRO,
        "_OTHER",
    }
