"""Rules a conversation must follow before it may reach Bedrock.

Both services check requests with these functions, so the inference service
and the gateway reject the same things with the same words, and the gateway
can refuse a bad DualChat before it starts two upstream calls. Bedrock would
reject all of these itself, but only after a paid round trip and with a
message that names its own JSON paths rather than our proto fields.

Converse's full shape is checked here too: each turn's content blocks (the
block rules are content_rules.py's), tool calls only where tools are offered
(validate_tools_offered), the tool config, the guardrail config and Bedrock's
options; media_blocks lists a request's images and documents, for the
services to refuse them to a model that reads text only. Grounding in a
Knowledge Base is checked here too (validate_grounding, validate_retrieval,
last_user_text for the query), so the gateway refuses a bad one before its
Retrieve.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from google.protobuf.message import Message as ProtoMessage

from dualnova.chat.v1 import chat_pb2
from dualnova.server.content_rules import (
    KNOWLEDGE_BASE_ID,
    TOOL_NAME,
    TOOL_NAME_RULE,
    InvalidRequest,
    MediaCount,
    block_texts,
    check_results_answer,
    media_in,
    parse_json,
    validate_block,
)

__all__ = [
    "InvalidRequest",
    "MAX_QUERY_CHARS",
    "MAX_RESULTS",
    "MAX_STOP_SEQUENCES",
    "last_user_text",
    "media_blocks",
    "text_chars",
    "transport_message_limit",
    "validate_grounded_messages",
    "validate_grounding",
    "validate_guardrail_config",
    "validate_inference_config",
    "validate_messages",
    "validate_options",
    "validate_query",
    "validate_retrieval",
    "validate_size",
    "validate_system",
    "validate_tool_config",
    "validate_tools_offered",
]

# Bedrock's Converse API accepts at most four stop sequences.
MAX_STOP_SEQUENCES = 4


def transport_message_limit(max_message_bytes: int) -> int:
    """gRPC's own receive and send limit for a server whose requests may be `max_message_bytes`.

    Twice the limit (within gRPC's int32): a request somewhat over the limit
    reaches validate_size and is refused with words naming the limit and its
    variable, not gRPC's "Received message larger than max"; only one past
    twice the limit is cut off by gRPC itself before it is parsed.
    """
    return min(2 * max_message_bytes, 2**31 - 1)


def validate_size(request: ProtoMessage, max_bytes: int, variable: str) -> None:
    """The serialized request within `max_bytes` (the setting named `variable`)."""
    size = request.ByteSize()
    if size > max_bytes:
        raise InvalidRequest(
            "request",
            f"{size} bytes, more than the limit of {max_bytes} bytes ({variable})",
        )


def text_chars(messages: Sequence[chat_pb2.Message], system: Iterable[str]) -> int:
    """Characters of text a request carries: every message's (its blocks' too) and system's."""
    return sum(len(message.text) + block_texts(message.content) for message in messages) + sum(
        len(text) for text in system
    )


def validate_messages(messages: Sequence[chat_pb2.Message], field: str = "messages") -> None:
    """Non-empty, roles set, turns written, starts and ends with the user, alternates.

    A turn needs a non-blank text or content blocks (then a text, if set, must not be
    blank either); each block follows content_rules, tool calls only in assistant turns,
    tool results only in user turns and each answering a call of the turn before it.
    """
    if not messages:
        raise InvalidRequest(field, "must contain at least one message")
    previous: int | None = None
    media = MediaCount()
    for index, message in enumerate(messages):
        where = f"{field}[{index}]"
        if message.role not in (chat_pb2.ROLE_USER, chat_pb2.ROLE_ASSISTANT):
            raise InvalidRequest(f"{where}.role", "must be ROLE_USER or ROLE_ASSISTANT")
        if message.content:
            if message.text and not message.text.strip():
                raise InvalidRequest(f"{where}.text", "must not be blank (leave it empty)")
        elif not message.text.strip():
            raise InvalidRequest(f"{where}.text", "must not be empty or blank")
        if index == 0 and message.role != chat_pb2.ROLE_USER:
            raise InvalidRequest(f"{where}.role", "the conversation must start with the user")
        if message.role == previous:
            raise InvalidRequest(f"{where}.role", "user and assistant turns must alternate")
        for block_index, block in enumerate(message.content):
            validate_block(block, f"{where}.content[{block_index}]", message.role, media)
        if message.role == chat_pb2.ROLE_USER:
            check_results_answer(message, messages[index - 1] if index else None, where)
        previous = message.role
    if previous != chat_pb2.ROLE_USER:
        raise InvalidRequest(
            f"{field}[{len(messages) - 1}].role", "the conversation must end with the user"
        )


def media_blocks(
    messages: Sequence[chat_pb2.Message], field: str = "messages"
) -> list[tuple[str, str]]:
    """(field path, "image" or "document") of every medium in the messages, in order."""
    return [
        found
        for index, message in enumerate(messages)
        for found in media_in(message, f"{field}[{index}]")
    ]


def validate_system(system: Sequence[str], field: str = "system") -> None:
    """Each system prompt non-blank (Bedrock rejects blank text blocks)."""
    for index, text in enumerate(system):
        if not text.strip():
            raise InvalidRequest(f"{field}[{index}]", "must not be empty or blank")


def validate_inference_config(
    config: chat_pb2.InferenceConfig, field: str = "inference_config"
) -> None:
    """Ranges of the set fields; unset fields are the server's business."""
    if config.HasField("max_tokens") and config.max_tokens < 1:
        raise InvalidRequest(f"{field}.max_tokens", f"must be at least 1, got {config.max_tokens}")
    for name in ("temperature", "top_p"):
        if config.HasField(name):
            value = getattr(config, name)
            if math.isnan(value) or not 0.0 <= value <= 1.0:
                raise InvalidRequest(f"{field}.{name}", f"must be between 0 and 1, got {value:g}")
    if len(config.stop_sequences) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(
            f"{field}.stop_sequences",
            f"at most {MAX_STOP_SEQUENCES} allowed, got {len(config.stop_sequences)}",
        )
    for index, sequence in enumerate(config.stop_sequences):
        if not sequence:
            raise InvalidRequest(f"{field}.stop_sequences[{index}]", "must not be empty")


def validate_tools_offered(
    messages: Sequence[chat_pb2.Message], offered: bool, field: str = "messages"
) -> None:
    """Tool calls and results only in a request that offers tools (`offered`: tool_config set).

    Bedrock refuses them otherwise ("The toolConfig field must be defined when using
    toolUse and toolResult content blocks"): a caller answering a tool call sends the tools
    again.
    """
    if offered:
        return
    for index, message in enumerate(messages):
        for block_index, block in enumerate(message.content):
            kind = block.WhichOneof("block")
            if kind in ("tool_use", "tool_result"):
                raise InvalidRequest(
                    f"{field}[{index}].content[{block_index}].{kind}",
                    "tool calls and results need the request's tool_config (send the tools again)",
                )


def validate_tool_config(config: chat_pb2.ToolConfig, field: str = "tool_config") -> None:
    """At least one tool, names valid and unique, schemas JSON objects of type object, the
    tool choice's mode known and, for a named tool, one of those offered."""
    if not config.tools:
        raise InvalidRequest(f"{field}.tools", "must contain at least one tool")
    names: set[str] = set()
    for index, tool in enumerate(config.tools):
        where = f"{field}.tools[{index}]"
        if TOOL_NAME.fullmatch(tool.name) is None:
            raise InvalidRequest(f"{where}.name", TOOL_NAME_RULE)
        if tool.name in names:
            raise InvalidRequest(f"{where}.name", f"{tool.name!r} is offered twice")
        names.add(tool.name)
        schema = parse_json(tool.input_schema_json, f"{where}.input_schema_json")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise InvalidRequest(
                f"{where}.input_schema_json", 'must be a JSON object whose "type" is "object"'
            )
    choice = config.tool_choice
    if choice.mode not in chat_pb2.ToolChoiceMode.values():
        raise InvalidRequest(f"{field}.tool_choice.mode", f"unknown value {choice.mode}")
    if choice.mode == chat_pb2.TOOL_CHOICE_MODE_TOOL:
        if choice.name not in names:
            raise InvalidRequest(
                f"{field}.tool_choice.name", "must name one of the tools offered in tools"
            )
    elif choice.name:
        raise InvalidRequest(
            f"{field}.tool_choice.name", "must be empty unless mode is TOOL_CHOICE_MODE_TOOL"
        )


# Bedrock's guardrailVersion: a number (no leading zero, 8 digits at most) or DRAFT.
_GUARDRAIL_VERSION = re.compile(r"[1-9][0-9]{0,7}|DRAFT")
_MAX_GUARDRAIL_IDENTIFIER = 2048


def validate_guardrail_config(
    config: chat_pb2.GuardrailConfig, field: str = "guardrail_config"
) -> None:
    """An identifier, a version that is a number or DRAFT, known trace and stream modes."""
    identifier = config.identifier
    if not identifier.strip() or identifier != identifier.strip():
        raise InvalidRequest(f"{field}.identifier", "must be a guardrail id or ARN")
    if len(identifier) > _MAX_GUARDRAIL_IDENTIFIER:
        raise InvalidRequest(
            f"{field}.identifier", f"at most {_MAX_GUARDRAIL_IDENTIFIER} characters"
        )
    if _GUARDRAIL_VERSION.fullmatch(config.version) is None:
        raise InvalidRequest(f"{field}.version", 'must be a version number or "DRAFT"')
    if config.trace not in chat_pb2.GuardrailTraceMode.values():
        raise InvalidRequest(f"{field}.trace", f"unknown value {config.trace}")
    if config.stream_processing_mode not in chat_pb2.GuardrailStreamMode.values():
        raise InvalidRequest(
            f"{field}.stream_processing_mode", f"unknown value {config.stream_processing_mode}"
        )


MAX_METADATA_PAIRS = 16
_MAX_METADATA_CHARS = 256
# Bedrock's requestMetadata characters: letters, digits, whitespace and :_@$#=/+,.-
_METADATA_CHARS = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,.-]*")


def validate_options(options: chat_pb2.BedrockOptions, field: str = "options") -> None:
    """Known latency and tier, request metadata within Bedrock's limits, top_k 1 to 128.

    The messages never repeat a metadata key or value: they are kept out of logs.
    """
    if options.latency not in chat_pb2.Latency.values():
        raise InvalidRequest(f"{field}.latency", f"unknown value {options.latency}")
    if options.service_tier not in chat_pb2.ServiceTier.values():
        raise InvalidRequest(f"{field}.service_tier", f"unknown value {options.service_tier}")
    metadata = options.request_metadata
    if len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidRequest(
            f"{field}.request_metadata",
            f"{len(metadata)} pairs, more than Bedrock's limit of {MAX_METADATA_PAIRS}",
        )
    for key, value in metadata.items():
        if not 1 <= len(key) <= _MAX_METADATA_CHARS:
            raise InvalidRequest(
                f"{field}.request_metadata",
                f"a key of {len(key)} characters; keys are 1-{_MAX_METADATA_CHARS}",
            )
        if len(value) > _MAX_METADATA_CHARS:
            raise InvalidRequest(
                f"{field}.request_metadata",
                f"a value of {len(value)} characters; values are at most {_MAX_METADATA_CHARS}",
            )
        if _METADATA_CHARS.fullmatch(key) is None or _METADATA_CHARS.fullmatch(value) is None:
            raise InvalidRequest(
                f"{field}.request_metadata",
                "keys and values may hold only letters, digits, whitespace and :_@$#=/+,.-",
            )
    if options.HasField("top_k") and not 1 <= options.top_k <= 128:
        raise InvalidRequest(f"{field}.top_k", f"must be between 1 and 128, got {options.top_k}")


# Retrieve's numberOfResults: 1 to 100.
MAX_RESULTS = 100
_SOURCE_ID = re.compile(r"S[1-9][0-9]{0,2}")
# Retrieve's retrievalQuery.text: at most 20,000 characters.
MAX_QUERY_CHARS = 20_000


def validate_grounded_messages(
    messages: Sequence[chat_pb2.Message], field: str = "grounding"
) -> None:
    """A grounded request's query (the last user turn's text) fits Retrieve: some text, at most
    MAX_QUERY_CHARS characters."""
    query = last_user_text(messages)
    if not query.strip():
        raise InvalidRequest(field, "the last user turn has no text to retrieve with (the query)")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidRequest(
            field,
            f"the last user turn's text (the query) is {len(query)} characters, more than"
            f" Retrieve's limit of {MAX_QUERY_CHARS}",
        )


def validate_grounding(grounding: chat_pb2.Grounding, field: str = "grounding") -> None:
    """A knowledge base id of Bedrock's shape (or empty: the server's default), results 0-100
    (0 means 5), a known search type, a filter that is a JSON object.

    Which operators the filter uses is Retrieve's to judge (its ValidationException).
    """
    kb_id = grounding.knowledge_base_id
    if kb_id and KNOWLEDGE_BASE_ID.fullmatch(kb_id) is None:
        raise InvalidRequest(
            f"{field}.knowledge_base_id",
            "must be a knowledge base id (10 letters or digits), or empty for the server's default",
        )
    if not 0 <= grounding.number_of_results <= MAX_RESULTS:
        raise InvalidRequest(
            f"{field}.number_of_results",
            f"must be between 1 and {MAX_RESULTS} (0 for 5), got {grounding.number_of_results}",
        )
    if grounding.search_type not in chat_pb2.SearchType.values():
        raise InvalidRequest(f"{field}.search_type", f"unknown value {grounding.search_type}")
    if grounding.filter_json:
        value = parse_json(grounding.filter_json, f"{field}.filter_json")
        if not isinstance(value, dict) or not value:
            raise InvalidRequest(
                f"{field}.filter_json", 'must be a JSON object such as {"equals": {...}}'
            )


def validate_query(query: str, field: str = "query") -> None:
    """Retrieve's query text: not blank, at most 20,000 characters."""
    if not query.strip():
        raise InvalidRequest(field, "must not be empty or blank")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidRequest(
            field, f"{len(query)} characters, more than Retrieve's limit of {MAX_QUERY_CHARS}"
        )


def validate_retrieval(retrieval: chat_pb2.Retrieval, field: str = "retrieval") -> None:
    """Passages given to ground an answer: each with text and a distinct source id S1, S2, ..."""
    seen: set[str] = set()
    for index, passage in enumerate(retrieval.passages):
        where = f"{field}.passages[{index}]"
        if not passage.text.strip():
            raise InvalidRequest(f"{where}.text", "must not be empty or blank")
        if _SOURCE_ID.fullmatch(passage.source_id) is None:
            raise InvalidRequest(f"{where}.source_id", 'must be "S1", "S2", ... (S and a number)')
        if passage.source_id in seen:
            raise InvalidRequest(f"{where}.source_id", f"{passage.source_id} is given twice")
        seen.add(passage.source_id)
        if passage.metadata_json:
            if not isinstance(parse_json(passage.metadata_json, f"{where}.metadata_json"), dict):
                raise InvalidRequest(f"{where}.metadata_json", "must be a JSON object")


def last_user_text(messages: Sequence[chat_pb2.Message]) -> str:
    """The query a grounded request retrieves with: the last user turn's text and text blocks."""
    for message in reversed(messages):
        if message.role == chat_pb2.ROLE_USER:
            parts = [message.text] if message.text else []
            parts.extend(b.text for b in message.content if b.WhichOneof("block") == "text")
            return "\n".join(parts)
    return ""
