"""Per-call options: performanceConfig, serviceTier, requestMetadata, additionalModelRequestFields.

Latency-optimized inference is accepted only by models that offer it (Nova
Pro); every service tier is accepted. What the request set is echoed in the
metadata event (`applied()`), as Bedrock reports what served the call. Nova's
topK (additionalModelRequestFields.inferenceConfig.topK) must be 1-128.
The latency and topK messages are the project contract's and the
emulator's; the enum, length and pattern ones are coral-style, as Bedrock's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bedrock_emulator.catalog import ModelSpec
from bedrock_emulator.errors import constraint, validation

LATENCIES = ("standard", "optimized")
SERVICE_TIERS = ("priority", "default", "flex", "reserved")
NO_LATENCY_OPTIMIZED = "The model doesn't support latency-optimized inference."
MAX_TOP_K = 128
MAX_METADATA_PAIRS = 16
_METADATA = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,\-.]{0,256}")
_MALFORMED = "Malformed input request, please reformat your input and try again."


def check_options(body: Mapping[str, Any], model: ModelSpec) -> None:
    """Raise Bedrock's ValidationException for an option it refuses."""
    _check_performance(body.get("performanceConfig"), model)
    _check_tier(body.get("serviceTier"))
    _check_metadata(body.get("requestMetadata"))
    _check_additional(body.get("additionalModelRequestFields"))


def _check_performance(config: Any, model: ModelSpec) -> None:
    if config is None:
        return
    if not isinstance(config, Mapping):
        raise validation(_MALFORMED)
    latency = config.get("latency")
    if latency is None:
        return
    if latency not in LATENCIES:
        raise constraint(
            "performanceConfig.latency",
            latency,
            f"Member must satisfy enum value set: [{', '.join(LATENCIES)}]",
        )
    if latency == "optimized" and not model.latency_optimized:
        raise validation(NO_LATENCY_OPTIMIZED)


def _check_tier(tier: Any) -> None:
    if tier is None:
        return
    if not isinstance(tier, Mapping):
        raise validation(_MALFORMED)
    if tier.get("type") not in SERVICE_TIERS:
        raise constraint(
            "serviceTier.type",
            tier.get("type"),
            f"Member must satisfy enum value set: [{', '.join(SERVICE_TIERS)}]",
        )


def _check_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, Mapping):
        raise validation(_MALFORMED)
    if not 1 <= len(metadata) <= MAX_METADATA_PAIRS:
        raise constraint(
            "requestMetadata",
            len(metadata),
            f"Member must have length between 1 and {MAX_METADATA_PAIRS}",
        )
    for key, value in metadata.items():
        if not key or not _METADATA.fullmatch(key):
            raise constraint(
                "requestMetadata",
                key,
                "Map keys must satisfy constraint: [Member must satisfy regular expression "
                "pattern: [a-zA-Z0-9\\s:_@$#=/+,-.]{1,256}]",
            )
        if not isinstance(value, str) or not _METADATA.fullmatch(value):
            raise constraint(
                f"requestMetadata.{key}",
                value,
                "Member must satisfy regular expression pattern: [a-zA-Z0-9\\s:_@$#=/+,-.]{0,256}",
            )


def _check_additional(fields: Any) -> None:
    if fields is None:
        return
    if not isinstance(fields, Mapping):
        raise validation(_MALFORMED)
    config = fields.get("inferenceConfig")
    if config is None:
        return
    if not isinstance(config, Mapping):
        raise validation(_MALFORMED)
    if "topK" not in config:
        return
    top_k = config["topK"]
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise validation(
            f"The value of additionalModelRequestFields.inferenceConfig.topK ({top_k}) is not "
            f"valid: it must be an integer from 1 to {MAX_TOP_K}."
        )


def applied(body: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata fields that report the options the call ran with (empty if it set none)."""
    reported: dict[str, Any] = {}
    performance = body.get("performanceConfig")
    if isinstance(performance, Mapping) and performance.get("latency") is not None:
        reported["performanceConfig"] = {"latency": performance["latency"]}
    tier = body.get("serviceTier")
    if isinstance(tier, Mapping) and tier.get("type") is not None:
        reported["serviceTier"] = {"type": tier["type"]}
    return reported
