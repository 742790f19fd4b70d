"""Retrieve's metadata filter (RetrievalFilter): checked once, then applied to each passage.

Supported: equals, notEquals, in (value a list), andAll and orAll (lists of
at least two filters). Every other RetrievalFilter member (greaterThan,
startsWith, listContains, ...) is a ValidationException here, as the
emulated knowledge base has no numeric or list attributes to compare.
notEquals also matches a passage without the key, as Bedrock's does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bedrock_emulator.errors import constraint, validation

Predicate = Callable[[Mapping[str, Any]], bool]

_COMPARISONS = ("equals", "notEquals", "in")
_COMBINATIONS = ("andAll", "orAll")
_UNSUPPORTED = (
    "greaterThan",
    "greaterThanOrEquals",
    "lessThan",
    "lessThanOrEquals",
    "listContains",
    "notIn",
    "startsWith",
    "stringContains",
)


def compile_filter(spec: Any, path: str) -> Predicate:
    """The predicate `spec` means over a passage's metadata; ValidationException if it is wrong."""
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise validation(f"{path} must set exactly one filter operator.")
    ((operator, operand),) = spec.items()
    where = f"{path}.{operator}"
    if operator in _COMBINATIONS:
        if not isinstance(operand, list) or len(operand) < 2:
            raise constraint(where, operand, "Member must have length greater than or equal to 2")
        parts = [compile_filter(item, f"{where}.{i}") for i, item in enumerate(operand)]
        if operator == "andAll":
            return lambda metadata: all(part(metadata) for part in parts)
        return lambda metadata: any(part(metadata) for part in parts)
    if operator in _UNSUPPORTED:
        raise validation(f"The filter operator {operator} is not supported by this knowledge base.")
    if operator not in _COMPARISONS:
        raise validation(f"Unknown filter operator {operator} at {path}.")
    key, value = _attribute(operand, where)
    if operator == "equals":
        return lambda metadata: key in metadata and metadata[key] == value
    if operator == "notEquals":
        return lambda metadata: key not in metadata or metadata[key] != value
    if not isinstance(value, list) or not value:
        raise validation(f"{where}.value must be a non-empty list for the in operator.")
    return lambda metadata: key in metadata and metadata[key] in value


def _attribute(operand: Any, path: str) -> tuple[str, Any]:
    if not isinstance(operand, Mapping) or set(operand) != {"key", "value"}:
        raise validation(f"{path} must have exactly the members key and value.")
    key = operand["key"]
    if not isinstance(key, str) or not 1 <= len(key) <= 100:
        raise constraint(f"{path}.key", key, "Member must have length between 1 and 100")
    return key, operand["value"]
