"""What Bedrock rejects in a Converse / ConverseStream request, with its messages.

Every rejection is a ValidationException (HTTP 400). Messages are Bedrock's own
where known (conversation order, blank text, empty content, missing union
member, maxTokens above the model limit, coral-style range errors). Two are
the emulator's wording because no Bedrock text is on record: a content block
that sets more than one union member, and more than MAX_STOP_SEQUENCES stop
sequences (the limit Nova documents nowhere; 4 is what the emulator enforces).
The emulator answers text and cachePoint blocks only; other members (image,
document, toolUse, ...) are refused with a message that says so.

boto3 already refuses some of these on the client side (ParamValidationError);
the emulator still checks them for raw HTTP callers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from bedrock_emulator.catalog import ModelSpec
from bedrock_emulator.errors import constraint, validation

MAX_STOP_SEQUENCES = 4
MALFORMED = "Malformed input request, please reformat your input and try again."
MUST_START_WITH_USER = (
    "A conversation must start with a user message. "
    "Try again with a conversation that starts with a user message."
)
MUST_ALTERNATE = (
    "A conversation must alternate between user and assistant roles. "
    "Make sure the conversation alternates between user and assistant roles and try again."
)
_CONTENT_KEYS = "text, image, toolUse, toolResult, document, video"
_SYSTEM_KEYS = "text, guardContent, cachePoint"
_ANSWERED_MEMBERS = {"text", "cachePoint"}


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request JSON object, or the ValidationException for a malformed body."""
    try:
        body = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise validation(MALFORMED) from None
    if not isinstance(body, dict):
        raise validation(MALFORMED)
    return body


def validate_converse(body: Mapping[str, Any], model: ModelSpec) -> None:
    """Raise the ValidationException Bedrock would answer, or return for a valid request."""
    _check_messages(body.get("messages"))
    _check_system(body.get("system"))
    _check_inference_config(body.get("inferenceConfig"), model)


def _check_messages(messages: Any) -> None:
    if messages is None:
        messages = []
    if not isinstance(messages, list):
        raise validation(MALFORMED)
    if not messages:
        raise validation(MUST_START_WITH_USER)
    previous_role = None
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise validation(MALFORMED)
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise constraint(
                f"messages.{index}.member.role",
                role,
                "Member must satisfy enum value set: [user, assistant]",
            )
        if index == 0 and role != "user":
            raise validation(MUST_START_WITH_USER)
        if role == previous_role:
            raise validation(MUST_ALTERNATE)
        previous_role = role
        _check_content(message.get("content"), index)


def _check_content(content: Any, message_index: int) -> None:
    where = f"messages.{message_index}"
    if content is None or content == []:
        raise validation(
            f"The content field in the Message object at {where} is empty. "
            "Add a ContentBlock object to the content field and try again."
        )
    if not isinstance(content, list):
        raise validation(MALFORMED)
    for index, block in enumerate(content):
        _check_block(block, f"{where}.content.{index}", "ContentBlock", _CONTENT_KEYS)


def _check_system(system: Any) -> None:
    if system is None:
        return
    if not isinstance(system, list):
        raise validation(MALFORMED)
    for index, block in enumerate(system):
        _check_block(block, f"system.{index}", "SystemContentBlock", _SYSTEM_KEYS)


def _check_block(block: Any, where: str, kind: str, keys: str) -> None:
    if not isinstance(block, Mapping):
        raise validation(MALFORMED)
    members = [name for name, value in block.items() if value is not None]
    if not members:
        raise validation(f"{kind} object at {where} must set one of the following keys: {keys}.")
    if len(members) > 1:
        raise validation(
            f"{kind} object at {where} must set only one of the following keys: {keys}."
        )
    (member,) = members
    if member not in _ANSWERED_MEMBERS:
        raise validation(
            f"The {member} field in the {kind} object at {where} is not supported by the "
            "Bedrock emulator, which answers text and cachePoint blocks only."
        )
    if member == "text":
        text = block["text"]
        if not isinstance(text, str):
            raise validation(MALFORMED)
        if not text.strip():
            raise validation(
                f"The text field in the {kind} object at {where} is blank. "
                "Add text to the text field, and try again."
            )
    else:
        point = block["cachePoint"]
        point_type = point.get("type") if isinstance(point, Mapping) else None
        if point_type != "default":
            raise constraint(
                f"{where}.cachePoint.type",
                point_type,
                "Member must satisfy enum value set: [default]",
            )


def _check_inference_config(config: Any, model: ModelSpec) -> None:
    if config is None:
        return
    if not isinstance(config, Mapping):
        raise validation(MALFORMED)
    for name in ("temperature", "topP"):
        value = config.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise validation(MALFORMED)
        if value < 0:
            raise constraint(
                f"inferenceConfig.{name}",
                value,
                "Member must have value greater than or equal to 0",
            )
        if value > 1:
            raise constraint(
                f"inferenceConfig.{name}", value, "Member must have value less than or equal to 1"
            )
    _check_max_tokens(config.get("maxTokens"), model)
    _check_stop_sequences(config.get("stopSequences"))


def _check_max_tokens(max_tokens: Any, model: ModelSpec) -> None:
    if max_tokens is None:
        return
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise validation(MALFORMED)
    if max_tokens < 1:
        raise constraint(
            "inferenceConfig.maxTokens",
            max_tokens,
            "Member must have value greater than or equal to 1",
        )
    limit = model.max_output_tokens
    if max_tokens > limit:
        raise validation(
            f"The maximum tokens you requested exceeds the model limit of {limit}. "
            f"Try again with a maximum tokens value that is lower than {limit}."
        )


def _check_stop_sequences(sequences: Any) -> None:
    if sequences is None:
        return
    if not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences):
        raise validation(MALFORMED)
    for index, sequence in enumerate(sequences):
        if not sequence:
            raise constraint(
                f"inferenceConfig.stopSequences.{index}.member",
                sequence,
                "Member must have length greater than or equal to 1",
            )
    if len(sequences) > MAX_STOP_SEQUENCES:
        raise validation(
            f"Too many stop sequences: {len(sequences)} were given and the model accepts at most "
            f"{MAX_STOP_SEQUENCES}. Remove some stop sequences and try again."
        )
