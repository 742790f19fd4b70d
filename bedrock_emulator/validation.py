"""What Bedrock rejects in a Converse / ConverseStream request, with its messages.

Every rejection is a ValidationException (HTTP 400). Messages are Bedrock's own
where known (conversation order, blank text, empty content, missing union
member, maxTokens above the model limit, coral-style range errors). Two are
the emulator's wording because no Bedrock text is on record: a content block
that sets more than one union member, and more than MAX_STOP_SEQUENCES stop
sequences (the limit Nova documents nowhere; 4 is what the emulator enforces).
Media and guard-content blocks are checked by content.py, tool blocks and
toolConfig by tools.py, guardrailConfig by guardrails.py, the per-call
options by options.py; members the emulator does not answer (audio,
reasoningContent, ...) are refused with a message that says so.

boto3 already refuses some of these on the client side (ParamValidationError);
the emulator still checks them for raw HTTP callers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from bedrock_emulator import guardrails, options, tools
from bedrock_emulator.catalog import ModelSpec
from bedrock_emulator.content import MediaChecker
from bedrock_emulator.errors import BedrockError, constraint, validation

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
_MESSAGE_MEMBERS = {
    "text",
    "cachePoint",
    "image",
    "document",
    "video",
    "guardContent",
    "toolUse",
    "toolResult",
}
_SYSTEM_MEMBERS = {"text", "cachePoint", "guardContent"}
_RESULT_KEYS = "text, json, image, document, video"


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
    media = MediaChecker(model)
    _check_messages(body.get("messages"), media)
    _check_system(body.get("system"), media)
    _check_inference_config(body.get("inferenceConfig"), model)
    tools.check_tool_config(body.get("toolConfig"))
    tools.check_pairing(body["messages"])
    guardrails.check_config(body.get("guardrailConfig"))
    options.check_options(body, model)


def _check_messages(messages: Any, media: MediaChecker) -> None:
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
        _check_content(message.get("content"), index, media)


def _check_content(content: Any, message_index: int, media: MediaChecker) -> None:
    where = f"messages.{message_index}"
    if content is None or content == []:
        raise validation(
            f"The content field in the Message object at {where} is empty. "
            "Add a ContentBlock object to the content field and try again."
        )
    if not isinstance(content, list):
        raise validation(MALFORMED)
    for index, block in enumerate(content):
        path = f"messages.{message_index}.member.content.{index}.member"
        member = _check_block(block, f"{where}.content.{index}", "ContentBlock", _CONTENT_KEYS)
        if member not in _MESSAGE_MEMBERS:
            raise _not_answered(member, "ContentBlock", f"{where}.content.{index}")
        _check_member(block, member, path, media)


def _check_member(block: Mapping[str, Any], member: str, path: str, media: MediaChecker) -> None:
    """The checks of one member beyond text and cachePoint (those are checked in _check_block)."""
    if member in ("image", "document", "video", "guardContent"):
        media.check(member, block[member], path)
    elif member == "toolUse":
        tools.check_tool_use(block[member], path)
    elif member == "toolResult":
        for index, item in enumerate(tools.check_tool_result_shape(block[member], path)):
            where = f"{path}.toolResult.content.{index}"
            inner = _check_block(item, where, "ToolResultContentBlock", _RESULT_KEYS)
            if inner in ("image", "document", "video"):
                media.check(inner, item[inner], f"{where}.member")
            elif inner != "text" and inner != "json":
                raise _not_answered(inner, "ToolResultContentBlock", where)


def _not_answered(member: str, kind: str, where: str) -> BedrockError:
    return validation(
        f"The {member} field in the {kind} object at {where} is not supported by the "
        "Bedrock emulator, which does not answer that kind of block."
    )


def _check_system(system: Any, media: MediaChecker) -> None:
    if system is None:
        return
    if not isinstance(system, list):
        raise validation(MALFORMED)
    for index, block in enumerate(system):
        member = _check_block(block, f"system.{index}", "SystemContentBlock", _SYSTEM_KEYS)
        if member not in _SYSTEM_MEMBERS:
            raise _not_answered(member, "SystemContentBlock", f"system.{index}")
        if member == "guardContent":
            media.check(member, block[member], f"system.{index}.member")


def _check_block(block: Any, where: str, kind: str, keys: str) -> str:
    """The one member a union block sets, with text and cachePoint checked here."""
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
    if member == "text":
        text = block["text"]
        if not isinstance(text, str):
            raise validation(MALFORMED)
        if not text.strip():
            raise validation(
                f"The text field in the {kind} object at {where} is blank. "
                "Add text to the text field, and try again."
            )
    elif member == "cachePoint":
        point = block["cachePoint"]
        point_type = point.get("type") if isinstance(point, Mapping) else None
        if point_type != "default":
            raise constraint(
                f"{where}.cachePoint.type",
                point_type,
                "Member must satisfy enum value set: [default]",
            )
    return str(member)


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
