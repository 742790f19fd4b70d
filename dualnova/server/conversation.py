"""Rules a conversation must follow before it may reach Bedrock.

Both services check requests with these functions, so the inference service
and the gateway reject the same things with the same words, and the gateway
can refuse a bad DualChat before it starts two upstream calls. Bedrock would
reject all of these itself, but only after a paid round trip and with a
message that names its own JSON paths rather than our proto fields.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from google.protobuf.message import Message as ProtoMessage

from dualnova.chat.v1 import chat_pb2

__all__ = [
    "InvalidRequest",
    "MAX_STOP_SEQUENCES",
    "text_chars",
    "transport_message_limit",
    "validate_inference_config",
    "validate_messages",
    "validate_size",
    "validate_system",
]

# Bedrock's Converse API accepts at most four stop sequences.
MAX_STOP_SEQUENCES = 4


class InvalidRequest(ValueError):
    """A request field breaks a rule; maps to INVALID_ARGUMENT with `str(error)` as the message."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


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
    """Characters of text a request carries: every message's and every system prompt's."""
    return sum(len(message.text) for message in messages) + sum(len(text) for text in system)


def validate_messages(messages: Sequence[chat_pb2.Message], field: str = "messages") -> None:
    """Non-empty, roles set, texts not blank, starts and ends with the user, alternates."""
    if not messages:
        raise InvalidRequest(field, "must contain at least one message")
    previous: int | None = None
    for index, message in enumerate(messages):
        where = f"{field}[{index}]"
        if message.role not in (chat_pb2.ROLE_USER, chat_pb2.ROLE_ASSISTANT):
            raise InvalidRequest(f"{where}.role", "must be ROLE_USER or ROLE_ASSISTANT")
        if not message.text.strip():
            raise InvalidRequest(f"{where}.text", "must not be empty or blank")
        if index == 0 and message.role != chat_pb2.ROLE_USER:
            raise InvalidRequest(f"{where}.role", "the conversation must start with the user")
        if message.role == previous:
            raise InvalidRequest(f"{where}.role", "user and assistant turns must alternate")
        previous = message.role
    if previous != chat_pb2.ROLE_USER:
        raise InvalidRequest(
            f"{field}[{len(messages) - 1}].role", "the conversation must end with the user"
        )


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
