"""The binary framing of `application/vnd.amazon.eventstream` responses.

Each message: a 12-byte prelude (total length, headers length, CRC32 of those
8 bytes), the headers (name length byte, name, value type 7 = string, 2-byte
value length, value), the payload, and a CRC32 of everything before it.
botocore.eventstream is the reference parser; tests decode these bytes with it.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7


def encode_headers(headers: Mapping[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name = name.encode("utf-8")
        raw_value = value.encode("utf-8")
        out += struct.pack("!B", len(raw_name)) + raw_name
        out += struct.pack("!BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One framed message with both checksums."""
    raw_headers = encode_headers(headers)
    total_length = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack("!II", total_length, len(raw_headers))
    message = prelude + struct.pack("!I", zlib.crc32(prelude)) + raw_headers + payload
    return message + struct.pack("!I", zlib.crc32(message))


def event(event_type: str, payload: Mapping[str, Any]) -> bytes:
    """An event message; its JSON payload is the event member's structure."""
    return encode_message(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
    )


def exception(exception_type: str, message: str) -> bytes:
    """A modeled error inside the stream (botocore raises EventStreamError for it)."""
    return encode_message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": message}).encode("utf-8"),
    )
