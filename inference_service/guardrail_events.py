"""A Bedrock guardrail's trace as the GenAI conventions' guardrail result events.

Bedrock's metadata trace.guardrail holds an inputAssessment (guardrail id ->
assessment) and outputAssessments (guardrail id -> a list of them); each
assessment's policies hold items (topics, filters, words, entities) with
Bedrock's action. Each item with an action becomes one "gen_ai.guardrail.result"
event's attributes, keeping Bedrock's own values (the conventions forbid
inferring a verdict). Only configuration words are copied: policy and topic
names, filter types, actions; a trace's matched words and PII ("match") are the
caller's content and stay out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["GUARDRAIL_COMPONENT", "GUARDRAIL_EVENT", "GUARDRAIL_INTERVENED", "guardrail_results"]

GUARDRAIL_EVENT = "gen_ai.guardrail.result"
GUARDRAIL_COMPONENT = "Amazon Bedrock Guardrails"
GUARDRAIL_INTERVENED = "guardrail_intervened"
# At most this many result events per call: a trace can list many filters.
_MAX_GUARDRAIL_EVENTS = 32
# Trace keys -> the conventions' source values (Bedrock's own ApplyGuardrail terms).
_SOURCES = {"inputAssessment": "INPUT", "outputAssessments": "OUTPUT"}


def guardrail_results(trace: Any) -> list[dict[str, str]]:
    """The result-event attributes of Bedrock's trace.guardrail: one per item with an action."""
    results: list[dict[str, str]] = []
    if not isinstance(trace, dict):
        return results
    for key, source in _SOURCES.items():
        for assessment in _assessments(trace.get(key)):
            for policy, body in assessment.items():
                for item in _action_items(body):
                    attributes = {
                        "gen_ai.guardrail.source": source,
                        "gen_ai.guardrail.result.type": "action",
                        "gen_ai.guardrail.result.value": str(item["action"]),
                        "gen_ai.guardrail.policy.rule.id": _rule(policy, item),
                    }
                    if isinstance(item.get("type"), str):
                        attributes["gen_ai.guardrail.risk.category"] = item["type"]
                    results.append(attributes)
                    if len(results) >= _MAX_GUARDRAIL_EVENTS:
                        return results
    return results


def _assessments(value: Any) -> Iterator[dict[str, Any]]:
    """Each assessment: trace[...] maps a guardrail id to one (input) or a list (outputs)."""
    if not isinstance(value, dict):
        return
    for assessed in value.values():
        for assessment in assessed if isinstance(assessed, list) else [assessed]:
            if isinstance(assessment, dict):
                yield assessment


def _action_items(value: Any) -> Iterator[dict[str, Any]]:
    """The dicts under a policy that carry an action (topics, filters, words, entities)."""
    if isinstance(value, dict):
        if isinstance(value.get("action"), str):
            yield value
            return
        for item in value.values():
            yield from _action_items(item)
    elif isinstance(value, list):
        for item in value:
            yield from _action_items(item)


def _rule(policy: str, item: Mapping[str, Any]) -> str:
    """The policy and, for a named topic, its name (configuration, not content)."""
    name = item.get("name")
    return f"{policy}/{name}" if policy == "topicPolicy" and isinstance(name, str) else policy
