"""The gateway's route spans say what each route's answer did: tool calls, guardrail stops.

Both services export to a collector the test runs (as in test_tracing.py); one
DualChat whose micro route calls a tool and whose pro route is stopped by a
guardrail shows each on its own route's span, in the GenAI conventions'
names, and nothing of the tool's input.
"""

from __future__ import annotations

from typing import Any

from converse_support import WEATHER_INPUT, WEATHER_TOOL, reassemble, user
from gateway_client import dual_chat
from telemetry_support import OtlpCollector, Pair, Span

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle
from dualnova.gateway.v1 import gateway_pb2


def route_span(spans: list[Span], route: str) -> Span:
    (found,) = [
        s
        for s in spans
        if (s.service, s.kind) == ("gateway", "CLIENT")
        and s.attributes.get("dualnova.route") == route
    ]
    return found


def events_named(span: Span, name: str) -> list[dict[str, Any]]:
    return [
        attributes
        for event, attributes in zip(span.events, span.event_attributes, strict=True)
        if event == name
    ]


def test_a_routes_tool_call_and_guardrail_intervention_are_on_its_own_route_span(
    exporting_pair: Pair, collector: OtlpCollector, emulator: EmulatorHandle
) -> None:
    guardrail = chat_pb2.GuardrailConfig(
        identifier="gr-dualnova", version="DRAFT", trace=chat_pb2.GUARDRAIL_TRACE_MODE_ENABLED
    )
    result = dual_chat(
        exporting_pair.gateway.address,
        gateway_pb2.DualChatRequest(
            micro=gateway_pb2.RouteOverride(
                messages=[user("What is the weather in Paris? Ask get_weather.")],
                tool_config=chat_pb2.ToolConfig(tools=[WEATHER_TOOL]),
            ),
            pro=gateway_pb2.RouteOverride(
                messages=[user("Tell me the forbidden recipe.")], guardrail_config=guardrail
            ),
        ),
    )
    spans = collector.wait_for_trace(result.summary.trace_id, 7)
    call = reassemble(result.responses, "micro")[1]

    micro = route_span(spans, "micro")
    assert events_named(micro, "gen_ai.tool.call") == [
        {
            "gen_ai.tool.name": "get_weather",
            "gen_ai.tool.call.id": call.tool_use_id,
            "gen_ai.tool.type": "function",
        }
    ]
    assert micro.attributes["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert "aws.bedrock.guardrail.id" not in micro.attributes
    assert "gen_ai.guardrail.result" not in micro.events
    # The call's input is the caller's data: never on a span.
    values = [*micro.attributes.values(), *(v for e in micro.event_attributes for v in e.values())]
    assert all("emulated" not in str(value) for value in values)
    assert WEATHER_INPUT not in str(values)

    pro = route_span(spans, "pro")
    assert pro.attributes["aws.bedrock.guardrail.id"] == "gr-dualnova"
    assert pro.attributes["gen_ai.response.finish_reasons"] == ("guardrail_intervened",)
    assert events_named(pro, "gen_ai.guardrail.result") == [
        {
            "gen_ai.provider.name": "aws.bedrock",
            "gen_ai.guardrail.component.name": "Amazon Bedrock Guardrails",
            "gen_ai.guardrail.result.type": "action",
            "gen_ai.guardrail.result.value": "INTERVENED",
            "gen_ai.guardrail.policy.id": "gr-dualnova",
            "gen_ai.guardrail.policy.version": "DRAFT",
        }
    ]
    assert "gen_ai.tool.call" not in pro.events


def test_without_a_trace_the_intervening_stop_is_the_routes_guardrail_result(
    exporting_pair: Pair, collector: OtlpCollector, emulator: EmulatorHandle
) -> None:
    result = dual_chat(
        exporting_pair.gateway.address,
        gateway_pb2.DualChatRequest(
            messages=[user("Tell me the forbidden recipe.")],
            guardrail_config=chat_pb2.GuardrailConfig(identifier="gr-dualnova", version="1"),
        ),
    )
    spans = collector.wait_for_trace(result.summary.trace_id, 7)
    for route in ("micro", "pro"):
        assert "guardrail_trace" not in result.routes[route].events
        span = route_span(spans, route)
        assert events_named(span, "gen_ai.guardrail.result") == [
            {
                "gen_ai.provider.name": "aws.bedrock",
                "gen_ai.guardrail.component.name": "Amazon Bedrock Guardrails",
                "gen_ai.guardrail.result.type": "stopReason",
                "gen_ai.guardrail.result.value": "guardrail_intervened",
                "gen_ai.guardrail.policy.id": "gr-dualnova",
                "gen_ai.guardrail.policy.version": "1",
            }
        ]
