"""Guardrails: the one guardrail the emulated account has, when it intervenes, and its trace.

The account knows guardrail GUARDRAIL_ID at versions "1" and "DRAFT". With
a guardrailConfig naming it, a last user turn whose text (guard content
included) holds the word MARKER is blocked: the answer is BLOCKED_TEXT with stop
reason "guardrail_intervened". With trace "enabled" or "enabled_full" the
metadata carries the assessment: a denied topic when it intervened (with
empty outputAssessments under enabled_full), an empty assessment otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bedrock_emulator.errors import constraint, validation

GUARDRAIL_ID = "gr-dualnova"
GUARDRAIL_VERSIONS = ("1", "DRAFT")
MARKER = "forbidden"
BLOCKED_TEXT = "Sorry, I can't help with that."
UNKNOWN_GUARDRAIL = "The guardrail identifier or version provided in the request does not exist."
TRACE_MODES = ("enabled", "disabled", "enabled_full")
PROCESSING_MODES = ("sync", "async")
_MARKER = re.compile(rf"\b{MARKER}\b", re.IGNORECASE)


def check_config(config: Any) -> None:
    """Raise Bedrock's ValidationException for a guardrailConfig it refuses."""
    if config is None:
        return
    if not isinstance(config, Mapping):
        raise validation("Malformed input request, please reformat your input and try again.")
    trace = config.get("trace")
    if trace is not None and trace not in TRACE_MODES:
        raise constraint(
            "guardrailConfig.trace",
            trace,
            f"Member must satisfy enum value set: [{', '.join(TRACE_MODES)}]",
        )
    mode = config.get("streamProcessingMode")
    if mode is not None and mode not in PROCESSING_MODES:
        raise constraint(
            "guardrailConfig.streamProcessingMode",
            mode,
            f"Member must satisfy enum value set: [{', '.join(PROCESSING_MODES)}]",
        )
    identifier = config.get("guardrailIdentifier")
    version = config.get("guardrailVersion")
    if identifier != GUARDRAIL_ID or version not in GUARDRAIL_VERSIONS:
        raise validation(UNKNOWN_GUARDRAIL)


def intervenes(body: Mapping[str, Any], user_text: str) -> bool:
    """The guardrail blocks this (valid) request; `user_text` is the last user turn's text."""
    if body.get("guardrailConfig") is None:
        return False
    return _MARKER.search(user_text) is not None


def trace(body: Mapping[str, Any], intervened: bool) -> dict[str, Any] | None:
    """The metadata's trace.guardrail, or None when no trace was asked for."""
    config = body.get("guardrailConfig")
    if not isinstance(config, Mapping) or config.get("trace") not in ("enabled", "enabled_full"):
        return None
    assessment: dict[str, Any] = {}
    if intervened:
        assessment["topicPolicy"] = {
            "topics": [{"name": "Forbidden", "type": "DENY", "action": "BLOCKED"}]
        }
    result: dict[str, Any] = {"inputAssessment": {GUARDRAIL_ID: assessment}}
    if intervened and config["trace"] == "enabled_full":
        result["outputAssessments"] = {}
    return result
