"""Image, document, video and guard-content blocks: what each model takes, and Bedrock's limits.

Nova Micro reads text only: an image, document or video block anywhere in
the messages (tool results included) is refused with the capability message.
Lite and Pro read them, within Bedrock's limits: an image's bytes must be the
format it claims (by magic bytes), at most MAX_IMAGE_BYTES each and
MAX_IMAGES per request; a document at most MAX_DOCUMENT_BYTES each and
MAX_DOCUMENTS per request, its name in Bedrock's character rules. Videos are
checked for their format only. The answer to what was read is `describe()`.

Wording: the document-name rule and the coral-style constraints are
Bedrock's; the capability message is the project contract's (Bedrock's own
ends "Update the content block and try again." instead); the image and
document size and count messages are the emulator's (no Bedrock text on
record), each naming its limit.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bedrock_emulator.catalog import ModelSpec
from bedrock_emulator.errors import constraint, validation

IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
DOCUMENT_FORMATS = ("pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md")
VIDEO_FORMATS = ("mkv", "mov", "mp4", "webm", "flv", "mpeg", "mpg", "wmv", "three_gp")
GUARD_QUALIFIERS = ("grounding_source", "query", "guard_content")
MAX_IMAGE_BYTES = 3_932_160  # 3.75 MB
MAX_IMAGES = 20
MAX_DOCUMENT_BYTES = 4_718_592  # 4.5 MB
MAX_DOCUMENTS = 5
MAX_DOCUMENT_NAME = 200
MEDIA_MEMBERS = ("image", "document", "video")

# Bedrock's own wording for a name outside its character rules.
DOCUMENT_NAME_RULE = (
    "The document file name can only contain alphanumeric characters, whitespace characters, "
    "hyphens, parentheses, and square brackets. The name can't contain more than one "
    "consecutive whitespace character. Check that the file name conforms to these "
    "restrictions and retry your request."
)
_DOCUMENT_NAME = re.compile(r"[A-Za-z0-9\-()\[\]]+( [A-Za-z0-9\-()\[\]]+)*")
_PNG_IHDR = b"IHDR"


def unsupported(kind: str) -> str:
    """The capability message of a model that does not read `kind` blocks."""
    return (
        f"This model doesn't support the {kind} content block that you provided. "
        "Try again with a different model."
    )


def _magic_matches(image_format: str, data: bytes) -> bool:
    if image_format == "png":
        return data.startswith(b"\x89PNG")
    if image_format == "jpeg":
        return data.startswith(b"\xff\xd8\xff")
    if image_format == "gif":
        return data.startswith(b"GIF8")
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk, or None if it has none where PNG puts it."""
    if len(data) < 24 or data[12:16] != _PNG_IHDR:
        return None
    width, height = struct.unpack("!II", data[16:24])
    return width, height


def source_bytes(source: Any) -> bytes | None:
    """The decoded bytes of a `bytes` source (None for S3 and the rest); Malformed if not base64."""
    if not isinstance(source, Mapping) or "bytes" not in source:
        return None
    raw = source["bytes"]
    if not isinstance(raw, str):
        raise validation("Malformed input request, please reformat your input and try again.")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise validation(
            "Malformed input request, please reformat your input and try again."
        ) from None


@dataclass
class MediaChecker:
    """Checks media blocks of one request in order, counting them against the request limits."""

    model: ModelSpec
    images: int = 0
    documents: int = 0

    def check(self, member: str, value: Any, path: str) -> None:
        """`member` is image, document, video or guardContent; `path` the coral-style location."""
        if member in MEDIA_MEMBERS and not self.model.takes(member):
            raise validation(unsupported(member))
        if not isinstance(value, Mapping):
            raise validation("Malformed input request, please reformat your input and try again.")
        if member == "image":
            self._image(value, f"{path}.image")
        elif member == "document":
            self._document(value, f"{path}.document")
        elif member == "video":
            _enum(value.get("format"), f"{path}.video.format", VIDEO_FORMATS)
            _one_source(value.get("source"), f"{path}.video.source")
        else:
            _guard_content(value, f"{path}.guardContent")

    def _image(self, image: Mapping[str, Any], path: str) -> None:
        image_format = image.get("format")
        _enum(image_format, f"{path}.format", IMAGE_FORMATS)
        _one_source(image.get("source"), f"{path}.source")
        self.images += 1
        if self.images > MAX_IMAGES:
            raise validation(
                f"Too many images: the request holds more than {MAX_IMAGES}, "
                f"the most the model accepts. Remove some images and try again."
            )
        data = source_bytes(image["source"])
        if data is None:
            return
        if len(data) > MAX_IMAGE_BYTES:
            raise validation(
                f"The provided image is not valid: it is {len(data)} bytes, more than the "
                f"limit of {MAX_IMAGE_BYTES} bytes (3.75 MB)."
            )
        if not _magic_matches(str(image_format), data):
            raise validation(
                f"The provided image is not valid: its bytes are not a {image_format} image."
            )

    def _document(self, document: Mapping[str, Any], path: str) -> None:
        if document.get("format") is not None:
            _enum(document["format"], f"{path}.format", DOCUMENT_FORMATS)
        _document_name(document.get("name"), f"{path}.name")
        source = document.get("source")
        _one_source(source, f"{path}.source")
        self.documents += 1
        if self.documents > MAX_DOCUMENTS:
            raise validation(
                f"Too many documents: the request holds more than {MAX_DOCUMENTS}, "
                f"the most the model accepts. Remove some documents and try again."
            )
        size = document_size(source)
        if size is not None and size > MAX_DOCUMENT_BYTES:
            raise validation(
                f"The provided document is not valid: it is {size} bytes, more than the "
                f"limit of {MAX_DOCUMENT_BYTES} bytes (4.5 MB)."
            )


def document_size(source: Any) -> int | None:
    """Bytes of a document given inline (bytes or text); None for S3 and structured content."""
    data = source_bytes(source)
    if data is not None:
        return len(data)
    if isinstance(source, Mapping) and isinstance(source.get("text"), str):
        return len(source["text"].encode("utf-8"))
    return None


def _enum(value: Any, path: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise constraint(path, value, f"Member must satisfy enum value set: [{', '.join(allowed)}]")


def _one_source(source: Any, path: str) -> None:
    if not isinstance(source, Mapping):
        raise validation("Malformed input request, please reformat your input and try again.")
    members = [name for name, value in source.items() if value is not None]
    if len(members) != 1:
        raise validation(
            f"The source at {path} must set exactly one member; it sets {len(members)}."
        )
    if "s3Location" in source:
        location = source["s3Location"]
        uri = location.get("uri") if isinstance(location, Mapping) else None
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise constraint(
                f"{path}.s3Location.uri",
                uri,
                "Member must satisfy regular expression pattern: s3://.*",
            )


def _document_name(name: Any, path: str) -> None:
    if not isinstance(name, str) or not name:
        raise constraint(path, name, "Member must have length greater than or equal to 1")
    if len(name) > MAX_DOCUMENT_NAME:
        raise constraint(
            path, name, f"Member must have length less than or equal to {MAX_DOCUMENT_NAME}"
        )
    if not _DOCUMENT_NAME.fullmatch(name):
        raise validation(DOCUMENT_NAME_RULE)


def _guard_content(block: Mapping[str, Any], path: str) -> None:
    text_block = block.get("text")
    if not isinstance(text_block, Mapping) or not isinstance(text_block.get("text"), str):
        raise validation(
            f"The guardContent at {path} must set text; the emulator answers text guard content "
            "only."
        )
    if not text_block["text"].strip():
        raise validation(
            f"The text field in the guardContent object at {path} is blank. "
            "Add text to the text field, and try again."
        )
    for index, qualifier in enumerate(text_block.get("qualifiers") or []):
        _enum(qualifier, f"{path}.text.qualifiers.{index}.member", GUARD_QUALIFIERS)


def describe(blocks: list[Mapping[str, Any]]) -> list[str]:
    """What the model says it read: one sentence per image, document or video block, in order."""
    sentences = []
    for block in blocks:
        if isinstance(block.get("image"), Mapping):
            image = block["image"]
            data = source_bytes(image.get("source"))
            size = png_size(data) if data is not None and image.get("format") == "png" else None
            if size is not None:
                sentences.append(f"I see a {image['format']} image of {size[0]}x{size[1]} pixels.")
            else:
                sentences.append(f"I see a {image.get('format')} image.")
        elif isinstance(block.get("document"), Mapping):
            document = block["document"]
            length = document_size(document.get("source"))
            if length is None:
                sentences.append(f"I read the document {document.get('name')}.")
            else:
                sentences.append(f"I read the document {document.get('name')} ({length} bytes).")
        elif isinstance(block.get("video"), Mapping):
            sentences.append(f"I see a {block['video'].get('format')} video.")
    return sentences
