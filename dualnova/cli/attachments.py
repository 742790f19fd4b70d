"""`dualnova chat --image FILE` and `--document FILE`: files read into content blocks for Pro.

Nova Micro takes text only, so the blocks go to Pro alone (its route's own
messages) while Micro gets the question's text. The format comes from the
file's magic number (images) or its extension (documents); a file of an
unknown format or over Bedrock's limits (dualnova.server.content_rules, the
same numbers the services check) is refused here, naming the file, before
anything is sent. A document's name is its file name made to fit Bedrock's
name rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from dualnova.chat.v1 import chat_pb2
from dualnova.server.content_rules import (
    DOCUMENT_FORMATS,
    IMAGE_FORMATS,
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENTS,
    MAX_IMAGE_BYTES,
    MAX_IMAGES,
    InvalidRequest,
    image_format_of,
    validate_document,
    validate_image,
)

__all__ = ["AttachmentError", "document_block", "document_name", "image_block", "read_attachments"]

# Bedrock's names -> the proto's enum values.
_IMAGE_BY_NAME = {name: value for value, name in IMAGE_FORMATS.items()}
_DOCUMENT_BY_NAME = {name: value for value, name in DOCUMENT_FORMATS.items()}
_EXTENSION_ALIASES = {"htm": "html", "markdown": "md", "text": "txt"}
_NAME_LIMIT = 200
# Characters Bedrock refuses in a document name: all but letters, digits, spaces, -()[].
_NOT_NAME = re.compile(r"[^A-Za-z0-9()\[\] -]+")


_Block = TypeVar("_Block", chat_pb2.ImageBlock, chat_pb2.DocumentBlock)


class AttachmentError(ValueError):
    """A file that cannot be attached; str() is one line naming the option and the file."""


def read_attachments(
    images: Sequence[str], documents: Sequence[str], *, cite: bool = False
) -> list[chat_pb2.ContentBlock]:
    """The images' blocks, then the documents', each in the order given.

    `cite`: each document asks Bedrock for citations (--cite). AttachmentError
    on the first file that cannot go.
    """
    if cite and not documents:
        raise AttachmentError("--cite goes with --document (the documents Pro is to cite)")
    if len(images) > MAX_IMAGES:
        raise AttachmentError(f"--image: {len(images)} images, more than Bedrock's {MAX_IMAGES}")
    if len(documents) > MAX_DOCUMENTS:
        raise AttachmentError(
            f"--document: {len(documents)} documents, more than Bedrock's {MAX_DOCUMENTS}"
        )
    blocks = [chat_pb2.ContentBlock(image=image_block(path)) for path in images]
    for path in documents:
        document = document_block(path)
        document.citations = cite
        blocks.append(chat_pb2.ContentBlock(document=document))
    return blocks


def image_block(path: str) -> chat_pb2.ImageBlock:
    """An image file as a block: format by magic number, at most Bedrock's 3.75 MB."""
    data = _read(path, "--image", MAX_IMAGE_BYTES)
    name = image_format_of(data)
    if name is None:
        raise AttachmentError(
            f"--image {path}: not a {_either(list(IMAGE_FORMATS.values()))} image"
            " (judged by its first bytes)"
        )
    block = chat_pb2.ImageBlock(
        format=_IMAGE_BY_NAME[name], source=chat_pb2.MediaSource(bytes=data)
    )
    _check(validate_image, block, "--image", path)
    return block


def document_block(path: str) -> chat_pb2.DocumentBlock:
    """A document file as a block: format by extension, at most Bedrock's 4.5 MB."""
    extension = Path(path).suffix.lower().removeprefix(".")
    name = _EXTENSION_ALIASES.get(extension, extension)
    if name not in _DOCUMENT_BY_NAME:
        raise AttachmentError(
            f"--document {path}: unknown document format"
            f" {'.' + extension if extension else '(no extension)'};"
            f" Bedrock takes {', '.join(DOCUMENT_FORMATS.values())}"
        )
    data = _read(path, "--document", MAX_DOCUMENT_BYTES)
    block = chat_pb2.DocumentBlock(
        format=_DOCUMENT_BY_NAME[name],
        name=document_name(path),
        source=chat_pb2.MediaSource(bytes=data),
    )
    _check(validate_document, block, "--document", path)
    return block


def document_name(path: str) -> str:
    """The file's name without its extension, made to fit Bedrock's rule.

    Other characters become a hyphen, runs of spaces one space, at most 200
    characters; "document" when no letter or digit is left (a name of other
    scripts only, say).
    """
    name = _NOT_NAME.sub("-", Path(path).stem)
    name = re.sub(" +", " ", name).strip()[:_NAME_LIMIT].strip()
    return name if re.search("[A-Za-z0-9]", name) else "document"


def _either(names: list[str]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}"


def _read(path: str, option: str, limit: int) -> bytes:
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > limit:
            # Said before reading: a large file need not be loaded to be refused.
            raise AttachmentError(
                f"{option} {path}: {size} bytes, more than Bedrock's limit of {limit} bytes"
            )
        data = file.read_bytes()
    except OSError as error:
        raise AttachmentError(f"{option} {path}: {error.strerror or error}") from None
    if not data:
        raise AttachmentError(f"{option} {path}: the file is empty")
    return data


def _check(validate: Callable[[_Block, str], None], block: _Block, option: str, path: str) -> None:
    """The services' own rules, so the CLI refuses exactly what they would."""
    try:
        validate(block, option)
    except InvalidRequest as error:
        raise AttachmentError(f"{option} {path}: {error.reason}") from None
