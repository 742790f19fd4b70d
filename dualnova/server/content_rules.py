"""Rules for a turn's content blocks, as Bedrock's Converse states them, checked before Bedrock.

dualnova.server.conversation applies them to each message (validate_messages);
they live here so that module stays about the conversation's shape. Each
failure is an InvalidRequest naming the proto field ("messages[0].content[1].
image.format: ..."), never repeating the caller's bytes or text. The limits are
Bedrock's: an image at most 3.75 MB and 20 per request, a document at most
4.5 MB and 5 per request, a document name of letters, digits, single spaces,
hyphens, parentheses and square brackets.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from dualnova.chat.v1 import chat_pb2

__all__ = [
    "DOCUMENT_FORMATS",
    "GUARD_QUALIFIERS",
    "IMAGE_FORMATS",
    "InvalidRequest",
    "KNOWLEDGE_BASE_ID",
    "MAX_DOCUMENTS",
    "MAX_DOCUMENT_BYTES",
    "MAX_IMAGES",
    "MAX_IMAGE_BYTES",
    "MediaCount",
    "TOOL_NAME",
    "TOOL_NAME_RULE",
    "block_texts",
    "check_results_answer",
    "image_format_of",
    "media_in",
    "parse_json",
    "tool_input",
    "tool_uses",
    "validate_block",
    "validate_document",
    "validate_image",
    "validate_tool_use_id",
]

MAX_IMAGE_BYTES = 3_932_160  # 3.75 MB
MAX_DOCUMENT_BYTES = 4_718_592  # 4.5 MB
MAX_IMAGES = 20
MAX_DOCUMENTS = 5

# Proto enum value -> Bedrock's name for it.
IMAGE_FORMATS = {
    chat_pb2.IMAGE_FORMAT_PNG: "png",
    chat_pb2.IMAGE_FORMAT_JPEG: "jpeg",
    chat_pb2.IMAGE_FORMAT_GIF: "gif",
    chat_pb2.IMAGE_FORMAT_WEBP: "webp",
}
DOCUMENT_FORMATS = {
    chat_pb2.DOCUMENT_FORMAT_PDF: "pdf",
    chat_pb2.DOCUMENT_FORMAT_CSV: "csv",
    chat_pb2.DOCUMENT_FORMAT_DOC: "doc",
    chat_pb2.DOCUMENT_FORMAT_DOCX: "docx",
    chat_pb2.DOCUMENT_FORMAT_XLS: "xls",
    chat_pb2.DOCUMENT_FORMAT_XLSX: "xlsx",
    chat_pb2.DOCUMENT_FORMAT_HTML: "html",
    chat_pb2.DOCUMENT_FORMAT_TXT: "txt",
    chat_pb2.DOCUMENT_FORMAT_MD: "md",
}
# Bedrock's tool name: a letter, then letters, digits, underscores, hyphens; 64 at most.
TOOL_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_-]{0,63}")
_TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_DOCUMENT_NAME = re.compile(r"[A-Za-z0-9()\[\]-]+( [A-Za-z0-9()\[\]-]+)*")
_MAX_DOCUMENT_NAME = 200
# Bedrock's knowledge base id, as its API's pattern states it: ten letters or digits.
KNOWLEDGE_BASE_ID = re.compile(r"[0-9a-zA-Z]{10}")
_S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+")
_ACCOUNT_ID = re.compile(r"[0-9]{12}")


class InvalidRequest(ValueError):
    """A request field breaks a rule; maps to INVALID_ARGUMENT with `str(error)` as the message."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class MediaCount:
    """Images and documents seen so far in one request, against Bedrock's per-request caps."""

    def __init__(self) -> None:
        self.images = 0
        self.documents = 0

    def image(self, where: str) -> None:
        self.images += 1
        if self.images > MAX_IMAGES:
            raise InvalidRequest(where, f"more than {MAX_IMAGES} images in one request")

    def document(self, where: str) -> None:
        self.documents += 1
        if self.documents > MAX_DOCUMENTS:
            raise InvalidRequest(where, f"more than {MAX_DOCUMENTS} documents in one request")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: it would go to Bedrock as Infinity, which is not JSON
        raise ValueError(f"{text[:20]} is out of range")
    return value


def parse_json(text: str, where: str) -> Any:
    """JSON text as a value; InvalidRequest (naming `where`) when it is not strict JSON."""
    try:
        # NaN and Infinity are Python's extension, not JSON: Bedrock would refuse them.
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc) or "too deep"
        raise InvalidRequest(where, f"is not valid JSON ({reason})") from None


def validate_block(block: chat_pb2.ContentBlock, where: str, role: int, media: MediaCount) -> None:
    """One block of a turn whose role is `role`; `where` is its field path."""
    kind = block.WhichOneof("block")
    if kind is None:
        raise InvalidRequest(
            where,
            "must set one block kind: text, image, document, tool_use, tool_result,"
            " guard_content or cache_point",
        )
    path = f"{where}.{kind}"
    if kind == "text":
        if not block.text.strip():
            raise InvalidRequest(path, "must not be empty or blank")
    elif kind == "image":
        media.image(path)
        validate_image(block.image, path)
    elif kind == "document":
        media.document(path)
        validate_document(block.document, path)
    elif kind == "tool_use":
        if role != chat_pb2.ROLE_ASSISTANT:
            raise InvalidRequest(path, "a tool call belongs in an assistant turn")
        _validate_tool_use(block.tool_use, path)
    elif kind == "tool_result":
        if role != chat_pb2.ROLE_USER:
            raise InvalidRequest(path, "a tool result belongs in a user turn")
        _validate_tool_result(block.tool_result, path, media)
    elif kind == "guard_content":
        _validate_guard_content(block.guard_content, path)


def validate_image(image: chat_pb2.ImageBlock, where: str) -> None:
    """Format set and matching the bytes' magic number, bytes or an S3 location, within size."""
    name = IMAGE_FORMATS.get(image.format)
    if name is None:
        raise InvalidRequest(
            f"{where}.format", f"must be one of {', '.join(IMAGE_FORMATS.values())}"
        )
    data = _validate_source(image.source, f"{where}.source", MAX_IMAGE_BYTES, "an image")
    if data is not None and image_format_of(data) != name:
        raise InvalidRequest(
            f"{where}.source.bytes",
            f"do not look like a {name} image (checked by its magic number)",
        )


def validate_document(document: chat_pb2.DocumentBlock, where: str) -> None:
    """Format known, a name of Bedrock's characters, bytes or an S3 location, within size."""
    if document.format not in DOCUMENT_FORMATS:
        raise InvalidRequest(
            f"{where}.format", f"must be one of {', '.join(DOCUMENT_FORMATS.values())}"
        )
    name = document.name
    if not 1 <= len(name) <= _MAX_DOCUMENT_NAME or _DOCUMENT_NAME.fullmatch(name) is None:
        raise InvalidRequest(
            f"{where}.name",
            f"must be 1-{_MAX_DOCUMENT_NAME} characters of letters, digits, hyphens,"
            " parentheses, square brackets and single spaces between them",
        )
    _validate_source(document.source, f"{where}.source", MAX_DOCUMENT_BYTES, "a document")


def _validate_source(
    source: chat_pb2.MediaSource, where: str, max_bytes: int, what: str
) -> bytes | None:
    """The inline bytes (None for S3) once the source is valid."""
    kind = source.WhichOneof("source")
    if kind is None:
        raise InvalidRequest(where, "must set bytes or s3_location")
    if kind == "s3_location":
        location = source.s3_location
        if _S3_URI.fullmatch(location.uri) is None:
            raise InvalidRequest(f"{where}.s3_location.uri", "must be s3://bucket/key")
        owner = location.bucket_owner
        if owner and _ACCOUNT_ID.fullmatch(owner) is None:
            raise InvalidRequest(
                f"{where}.s3_location.bucket_owner", "must be a 12-digit AWS account id"
            )
        return None
    data = source.bytes
    if not data:
        raise InvalidRequest(f"{where}.bytes", "must not be empty")
    if len(data) > max_bytes:
        raise InvalidRequest(
            f"{where}.bytes",
            f"{len(data)} bytes, more than Bedrock's limit of {max_bytes} bytes for {what}",
        )
    return data


def image_format_of(data: bytes) -> str | None:
    """Bedrock's name of the image format the bytes start like (png, jpeg, gif, webp), or None."""
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"GIF8"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _validate_tool_use(tool_use: chat_pb2.ToolUseBlock, where: str) -> None:
    validate_tool_use_id(tool_use.tool_use_id, f"{where}.tool_use_id")
    if TOOL_NAME.fullmatch(tool_use.name) is None:
        raise InvalidRequest(f"{where}.name", TOOL_NAME_RULE)
    tool_input(tool_use.input_json, f"{where}.input_json")


TOOL_NAME_RULE = (
    "must be 1-64 characters of letters, digits, underscores and hyphens, starting with a letter"
)


def tool_input(input_json: str, where: str) -> dict[str, Any]:
    """A tool call's input as an object; empty text is the empty object (a call of no input)."""
    if not input_json:
        return {}
    value = parse_json(input_json, where)
    if not isinstance(value, dict):
        raise InvalidRequest(where, "must be a JSON object")
    return value


def validate_tool_use_id(tool_use_id: str, where: str) -> None:
    if _TOOL_USE_ID.fullmatch(tool_use_id) is None:
        raise InvalidRequest(
            where, "must be 1-64 characters of letters, digits, underscores and hyphens"
        )


def _validate_tool_result(result: chat_pb2.ToolResultBlock, where: str, media: MediaCount) -> None:
    validate_tool_use_id(result.tool_use_id, f"{where}.tool_use_id")
    if not result.content:
        raise InvalidRequest(f"{where}.content", "must contain at least one item")
    for index, item in enumerate(result.content):
        _validate_result_item(item, f"{where}.content[{index}]", media)
    if result.status not in chat_pb2.ToolResultStatus.values():
        raise InvalidRequest(f"{where}.status", f"unknown value {result.status}")


def _validate_result_item(item: chat_pb2.ToolResultContent, where: str, media: MediaCount) -> None:
    kind = item.WhichOneof("content")
    if kind is None:
        raise InvalidRequest(where, "must set text, json, image or document")
    path = f"{where}.{kind}"
    if kind == "text":
        if not item.text.strip():
            raise InvalidRequest(path, "must not be empty or blank")
    elif kind == "json":
        parse_json(item.json, path)
    elif kind == "image":
        media.image(path)
        validate_image(item.image, path)
    else:
        media.document(path)
        validate_document(item.document, path)


def _validate_guard_content(guarded: chat_pb2.GuardContentBlock, where: str) -> None:
    if not guarded.text.strip():
        raise InvalidRequest(f"{where}.text", "must not be empty or blank")
    for index, qualifier in enumerate(guarded.qualifiers):
        if qualifier not in GUARD_QUALIFIERS:
            raise InvalidRequest(
                f"{where}.qualifiers[{index}]",
                f"must be one of {', '.join(GUARD_QUALIFIERS.values())}",
            )


GUARD_QUALIFIERS = {
    chat_pb2.GUARD_QUALIFIER_GROUNDING_SOURCE: "grounding_source",
    chat_pb2.GUARD_QUALIFIER_QUERY: "query",
    chat_pb2.GUARD_QUALIFIER_GUARD_CONTENT: "guard_content",
}


def tool_uses(message: chat_pb2.Message) -> set[str]:
    """The tool_use_ids of a turn's tool calls."""
    return {b.tool_use.tool_use_id for b in message.content if b.WhichOneof("block") == "tool_use"}


def check_results_answer(
    message: chat_pb2.Message, previous: chat_pb2.Message | None, where: str
) -> None:
    """Each tool result of a user turn answers a tool call of the assistant turn before it."""
    offered = tool_uses(previous) if previous is not None else set()
    for index, block in enumerate(message.content):
        if block.WhichOneof("block") != "tool_result":
            continue
        if block.tool_result.tool_use_id not in offered:
            raise InvalidRequest(
                f"{where}.content[{index}].tool_result.tool_use_id",
                "does not match a tool_use in the previous assistant turn",
            )


def media_in(message: chat_pb2.Message, where: str) -> list[tuple[str, str]]:
    """(field path, "image" or "document") of each medium in a turn, tool results included."""
    found: list[tuple[str, str]] = []
    for index, block in enumerate(message.content):
        kind = block.WhichOneof("block")
        path = f"{where}.content[{index}]"
        if kind in ("image", "document"):
            found.append((f"{path}.{kind}", kind))
        elif kind == "tool_result":
            for item_index, item in enumerate(block.tool_result.content):
                item_kind = item.WhichOneof("content")
                if item_kind in ("image", "document"):
                    found.append(
                        (f"{path}.tool_result.content[{item_index}].{item_kind}", item_kind)
                    )
    return found


def block_texts(blocks: Sequence[chat_pb2.ContentBlock]) -> int:
    """Characters of text in blocks: text, guarded text and tool results' text."""
    chars = 0
    for block in blocks:
        kind = block.WhichOneof("block")
        if kind == "text":
            chars += len(block.text)
        elif kind == "guard_content":
            chars += len(block.guard_content.text)
        elif kind == "tool_result":
            chars += sum(len(item.text) + len(item.json) for item in block.tool_result.content)
    return chars
