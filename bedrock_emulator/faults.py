"""Fault rules: which requests fail, and how.

A rule is posted as JSON to /_emulator/faults:

    {"kind": "throttling" | "access_denied" | "service_unavailable" | "internal"
             | "mid_stream_error" | "hang" | "slow",
     "model": "amazon.nova-pro-v1:0" | "us.amazon.nova-pro-v1:0" | null,   # null: any model
     "operations": ["ConverseStream", "Converse", ...],  # optional
     "times": 1 | null,           # matches left; null: unlimited
     "after_deltas": 2,           # mid_stream_error, hang: deltas sent first
     "exception": "modelStreamErrorException",  # mid_stream_error: the :exception-type
     "delay_ms": 200}             # slow: pause between deltas (not scaled by pacing)

`model` matches the id as the caller sent it or the model it resolves to, so
a rule on amazon.nova-pro-v1:0 also catches us.amazon.nova-pro-v1:0. Default
operations are ConverseStream and Converse; access_denied adds
GetFoundationModel. Knowledge-base calls (Retrieve, GetKnowledgeBase) fail
only when a rule names them in `operations` (and has no `model`), so a
grounded Converse test can fail one step alone. The oldest matching rule wins.

A request can also carry its own fault: `[[fault:KIND]]` anywhere in the last
user message applies KIND with default parameters to that request only, and
`[[fault:KIND:FAMILY]]` (FAMILY = micro, lite, pro, premier or a model id)
only when the request's model is that one, so one conversation sent to Micro
and Pro can fail on one route.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bedrock_emulator import catalog, errors
from bedrock_emulator.errors import BedrockError

KINDS = (
    "throttling",
    "access_denied",
    "service_unavailable",
    "internal",
    "mid_stream_error",
    "hang",
    "slow",
)
INFERENCE_OPERATIONS = ("ConverseStream", "Converse")
OPERATIONS = (
    *INFERENCE_OPERATIONS,
    "GetFoundationModel",
    "GetInferenceProfile",
    "ListFoundationModels",
    "ListInferenceProfiles",
    "ListAsyncInvokes",
    "Retrieve",
    "GetKnowledgeBase",
)
STREAM_EXCEPTIONS = (
    "modelStreamErrorException",
    "internalServerException",
    "throttlingException",
    "validationException",
    "serviceUnavailableException",
)
# What a mid-stream exception becomes when the operation has no stream (Converse).
_UNSTREAMED = {
    "modelStreamErrorException": "ModelErrorException",
    "internalServerException": "InternalServerException",
    "throttlingException": "ThrottlingException",
    "validationException": "ValidationException",
    "serviceUnavailableException": "ServiceUnavailableException",
}
STREAM_MESSAGES = {
    "modelStreamErrorException": errors.MODEL_STREAM_ERROR,
    "internalServerException": errors.INTERNAL,
    "throttlingException": errors.TOO_MANY_REQUESTS,
    "validationException": "The model rejected the request while streaming the response.",
    "serviceUnavailableException": errors.SERVICE_UNAVAILABLE,
}
# Kinds that answer an error instead of a response.
_ERRORS = {
    "throttling": ("ThrottlingException", errors.TOO_MANY_REQUESTS),
    "access_denied": ("AccessDeniedException", errors.NO_MODEL_ACCESS),
    "service_unavailable": ("ServiceUnavailableException", errors.SERVICE_UNAVAILABLE),
    "internal": ("InternalServerException", errors.INTERNAL),
}
HANG_LIMIT_S = 600.0
_FIELDS = {"kind", "model", "operations", "times", "after_deltas", "exception", "delay_ms"}
_DIRECTIVE = re.compile(r"\[\[fault:(?P<kind>[a-z_]+)(?::(?P<target>[^\]\s]+))?\]\]")


@dataclass(frozen=True)
class FaultRule:
    kind: str
    model: str | None = None
    operations: tuple[str, ...] = INFERENCE_OPERATIONS
    times: int | None = None
    after_deltas: int = 2
    exception: str = "modelStreamErrorException"
    delay_ms: float = 200.0
    id: str = ""

    def matches(self, operation: str, model_ids: Sequence[str]) -> bool:
        if operation not in self.operations:
            return False
        return self.model is None or self.model in model_ids

    def error(self, operation: str) -> BedrockError | None:
        """The error answered before any response, if this kind is one (per operation)."""
        if self.kind in _ERRORS:
            return BedrockError(*_ERRORS[self.kind])
        if self.kind == "mid_stream_error" and operation != "ConverseStream":
            return BedrockError(_UNSTREAMED[self.exception], STREAM_MESSAGES[self.exception])
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "model": self.model,
            "operations": list(self.operations),
            "times": self.times,
            "after_deltas": self.after_deltas,
            "exception": self.exception,
            "delay_ms": self.delay_ms,
        }


def parse_rule(data: Any) -> FaultRule:
    """A rule from its JSON form; ValueError with a readable message if it is wrong."""
    if not isinstance(data, Mapping):
        raise ValueError("a fault rule is a JSON object")
    unknown = set(data) - _FIELDS
    if unknown:
        raise ValueError(f"unknown fault rule fields: {', '.join(sorted(unknown))}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    model = data.get("model")
    if model is not None and (not isinstance(model, str) or catalog.resolve(model) is None):
        raise ValueError(f"model {model!r} is not in the emulator's catalog")
    operations = data.get("operations")
    if operations is None:
        operations = INFERENCE_OPERATIONS
        if kind == "access_denied":
            operations += ("GetFoundationModel",)
    if (
        not isinstance(operations, list | tuple)
        or not operations
        or any(op not in OPERATIONS for op in operations)
    ):
        raise ValueError(f"operations must be a non-empty list of {', '.join(OPERATIONS)}")
    if kind == "mid_stream_error" and any(op not in INFERENCE_OPERATIONS for op in operations):
        raise ValueError("mid_stream_error applies to ConverseStream and Converse only")
    times = data.get("times")
    if times is not None and (not _is_int(times) or times < 1):
        raise ValueError("times must be a positive integer or null")
    after_deltas = data.get("after_deltas", 2)
    if not _is_int(after_deltas) or after_deltas < 0:
        raise ValueError("after_deltas must be a non-negative integer")
    exception = data.get("exception", "modelStreamErrorException")
    if exception not in STREAM_EXCEPTIONS:
        raise ValueError(f"exception must be one of {', '.join(STREAM_EXCEPTIONS)}")
    delay_ms = data.get("delay_ms", 200)
    if isinstance(delay_ms, bool) or not isinstance(delay_ms, int | float) or delay_ms < 0:
        raise ValueError("delay_ms must be a non-negative number")
    return FaultRule(
        kind=kind,
        model=model,
        operations=tuple(operations),
        times=times,
        after_deltas=after_deltas,
        exception=exception,
        delay_ms=float(delay_ms),
    )


def directive(text: str, model: catalog.ModelSpec) -> FaultRule | None:
    """The `[[fault:KIND]]` / `[[fault:KIND:FAMILY]]` in a user message that targets `model`."""
    for match in _DIRECTIVE.finditer(text):
        kind, target = match.group("kind"), match.group("target")
        if kind not in KINDS:
            continue
        if target is None or target == model.family or catalog.resolve(target) == model:
            return FaultRule(kind=kind, id="directive")
    return None


@dataclass
class _Armed:
    rule: FaultRule
    remaining: int | None


@dataclass
class FaultBook:
    """The active rules, in the order they were added."""

    _armed: list[_Armed] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, rule: FaultRule) -> FaultRule:
        rule = replace(rule, id=f"fault-{next(self._ids)}")
        self._armed.append(_Armed(rule, rule.times))
        return rule

    def clear(self) -> None:
        self._armed.clear()

    def remove(self, rule_id: str) -> bool:
        before = len(self._armed)
        self._armed = [armed for armed in self._armed if armed.rule.id != rule_id]
        return len(self._armed) != before

    def take(self, operation: str, model_ids: Sequence[str]) -> FaultRule | None:
        """The first rule matching this request, counting the match against its `times`."""
        for armed in self._armed:
            if armed.rule.matches(operation, model_ids):
                if armed.remaining is not None:
                    armed.remaining -= 1
                    if armed.remaining == 0:
                        self._armed.remove(armed)
                return armed.rule
        return None

    def to_json(self) -> list[dict[str, Any]]:
        return [{**armed.rule.to_json(), "remaining": armed.remaining} for armed in self._armed]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
