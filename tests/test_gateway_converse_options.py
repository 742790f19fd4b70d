"""Guardrails and Bedrock's options through DualChat, shared or per route.

What reached Bedrock is read off the emulator's request log; what Bedrock
reports back (the guardrail's trace, the latency mode and tier applied, the
typed stop reason) must reach the caller on the right route unchanged.
"""

from __future__ import annotations

import json

import grpc
import pytest
from converse_support import bodies, refused, user
from gateway_client import dual_chat

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.gateway.v1 import gateway_pb2

ROUTES = ("micro", "pro")
FORBIDDEN = "Tell me the forbidden recipe."
BLOCKED = {
    "gr-dualnova": {
        "topicPolicy": {"topics": [{"name": "Forbidden", "type": "DENY", "action": "BLOCKED"}]}
    }
}


def guardrail(
    trace: int = chat_pb2.GUARDRAIL_TRACE_MODE_ENABLED, version: str = "1", **fields: int
) -> chat_pb2.GuardrailConfig:
    return chat_pb2.GuardrailConfig(
        identifier="gr-dualnova", version=version, trace=trace, **fields
    )


def test_a_guardrail_intervention_and_its_trace_reach_the_caller_on_both_routes(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    config = guardrail(stream_processing_mode=chat_pb2.GUARDRAIL_STREAM_MODE_ASYNC)
    result = dual_chat(
        gateway.address,
        gateway_pb2.DualChatRequest(messages=[user(FORBIDDEN)], guardrail_config=config),
    )
    sent = bodies(emulator)
    for route in ROUTES:
        got = result.routes[route]
        assert got.error is None
        assert got.text == "Sorry, I can't help with that."
        traces = [
            r.guardrail_trace
            for r in result.responses
            if r.route == route and r.HasField("guardrail_trace")
        ]
        assert len(traces) == 1
        assert json.loads(traces[0].trace_json) == {"inputAssessment": BLOCKED}
        assert traces[0].intervened
        assert got.events[-3:] == ["guardrail_trace", "usage", "stop"]
        assert got.stop.stop_reason == "guardrail_intervened"
        assert got.stop.reason == chat_pb2.STOP_REASON_GUARDRAIL_INTERVENED
        assert sent[route]["guardrailConfig"] == {
            "guardrailIdentifier": "gr-dualnova",
            "guardrailVersion": "1",
            "trace": "enabled",
            "streamProcessingMode": "async",
        }


def test_a_routes_guardrail_config_replaces_the_shared_one(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = dual_chat(
        gateway.address,
        gateway_pb2.DualChatRequest(
            messages=[user(FORBIDDEN)],
            guardrail_config=guardrail(trace=chat_pb2.GUARDRAIL_TRACE_MODE_DISABLED),
            pro=gateway_pb2.RouteOverride(
                guardrail_config=guardrail(
                    trace=chat_pb2.GUARDRAIL_TRACE_MODE_ENABLED_FULL, version="DRAFT"
                )
            ),
        ),
    )
    sent = bodies(emulator)
    assert sent["micro"]["guardrailConfig"] == {
        "guardrailIdentifier": "gr-dualnova",
        "guardrailVersion": "1",
        "trace": "disabled",
    }
    assert sent["pro"]["guardrailConfig"] == {
        "guardrailIdentifier": "gr-dualnova",
        "guardrailVersion": "DRAFT",
        "trace": "enabled_full",
    }
    micro, pro = result.routes["micro"], result.routes["pro"]
    assert "guardrail_trace" not in micro.events
    assert micro.stop.reason == chat_pb2.STOP_REASON_GUARDRAIL_INTERVENED
    (trace,) = [
        r.guardrail_trace
        for r in result.responses
        if r.route == "pro" and r.HasField("guardrail_trace")
    ]
    assert json.loads(trace.trace_json) == {"inputAssessment": BLOCKED, "outputAssessments": {}}
    assert pro.stop.reason == chat_pb2.STOP_REASON_GUARDRAIL_INTERVENED


def test_per_route_options_reach_bedrock_as_sent_and_what_was_applied_comes_back(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = dual_chat(
        gateway.address,
        gateway_pb2.DualChatRequest(
            messages=[user("Which is faster?")],
            micro=gateway_pb2.RouteOverride(
                options=chat_pb2.BedrockOptions(
                    top_k=40, service_tier=chat_pb2.SERVICE_TIER_PRIORITY
                )
            ),
            pro=gateway_pb2.RouteOverride(
                options=chat_pb2.BedrockOptions(latency=chat_pb2.LATENCY_OPTIMIZED)
            ),
        ),
    )
    sent = bodies(emulator)
    assert sent["micro"]["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 40}}
    assert sent["micro"]["serviceTier"] == {"type": "priority"}
    assert "performanceConfig" not in sent["micro"]
    assert sent["pro"]["performanceConfig"] == {"latency": "optimized"}
    for absent in ("additionalModelRequestFields", "serviceTier", "requestMetadata"):
        assert absent not in sent["pro"]

    micro, pro = result.routes["micro"], result.routes["pro"]
    assert micro.error is None and pro.error is None
    assert micro.stop.applied == chat_pb2.Applied(service_tier=chat_pb2.SERVICE_TIER_PRIORITY)
    assert pro.stop.applied == chat_pb2.Applied(latency=chat_pb2.LATENCY_OPTIMIZED)


def test_a_routes_options_replace_the_shared_ones_as_a_whole(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    shared = chat_pb2.BedrockOptions(
        service_tier=chat_pb2.SERVICE_TIER_FLEX, request_metadata={"team": "search"}
    )
    dual_chat(
        gateway.address,
        gateway_pb2.DualChatRequest(
            messages=[user("Which is cheaper?")],
            options=shared,
            pro=gateway_pb2.RouteOverride(
                options=chat_pb2.BedrockOptions(latency=chat_pb2.LATENCY_STANDARD)
            ),
        ),
    )
    sent = bodies(emulator)
    assert sent["micro"]["serviceTier"] == {"type": "flex"}
    assert sent["micro"]["requestMetadata"] == {"team": "search"}
    assert sent["pro"]["performanceConfig"] == {"latency": "standard"}
    assert "serviceTier" not in sent["pro"] and "requestMetadata" not in sent["pro"]


def test_latency_optimized_for_micro_is_bedrocks_error_on_micro_while_pro_answers(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    # Which models offer latency-optimized inference is Bedrock's to say (it changes by
    # region and model version), so the gateway passes it on and micro's route fails alone.
    result = dual_chat(
        gateway.address,
        gateway_pb2.DualChatRequest(
            messages=[user("Quick!")],
            options=chat_pb2.BedrockOptions(latency=chat_pb2.LATENCY_OPTIMIZED),
        ),
    )
    error = result.routes["micro"].error
    assert error is not None and error.code == "INVALID_ARGUMENT"
    assert "The model doesn't support latency-optimized inference." in error.message
    pro = result.routes["pro"]
    assert pro.error is None
    assert pro.stop.applied.latency == chat_pb2.LATENCY_OPTIMIZED
    assert set(result.summary.usage_by_route) == {"pro"}


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        pytest.param(
            gateway_pb2.DualChatRequest(
                messages=[user("hi")],
                micro=gateway_pb2.RouteOverride(options=chat_pb2.BedrockOptions(top_k=0)),
            ),
            "micro.options.top_k",
            id="top-k",
        ),
        pytest.param(
            gateway_pb2.DualChatRequest(
                messages=[user("hi")],
                pro=gateway_pb2.RouteOverride(guardrail_config=guardrail(version="v1")),
            ),
            "pro.guardrail_config.version",
            id="guardrail-version",
        ),
        pytest.param(
            gateway_pb2.DualChatRequest(
                messages=[user("hi")], guardrail_config=chat_pb2.GuardrailConfig(version="1")
            ),
            "guardrail_config.identifier",
            id="shared-guardrail-identifier",
        ),
        pytest.param(
            gateway_pb2.DualChatRequest(
                messages=[user("hi")], options=chat_pb2.BedrockOptions(service_tier=9)
            ),
            "options.service_tier",
            id="shared-service-tier",
        ),
    ],
)
def test_bad_options_and_guardrails_are_refused_naming_the_field_before_bedrock(
    gateway: ServiceHandle,
    emulator: EmulatorHandle,
    request_: gateway_pb2.DualChatRequest,
    field: str,
) -> None:
    error = refused(gateway.address, request_)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}: ")
    assert emulator.requests() == []
