"""The service's event-stream decoder against botocore's reference, on the emulator's framing."""

from __future__ import annotations

import json
import struct
import uuid
import zlib

import pytest
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import EventStreamError, ResponseStreamingError

from bedrock_emulator.eventstream import event, exception
from inference_service.bedrock.events import EventStreamDecoder

STREAM = b"".join(
    [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "부산까지 "}}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "KTX 🚄"}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("messageStop", {"stopReason": "end_turn"}),
        event("metadata", {"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}}),
    ]
)


def reference(data: bytes) -> list[tuple[str, dict]]:
    """botocore's decoding of the same bytes."""
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return [(m.headers[":event-type"], json.loads(m.payload)) for m in buffer]


def decode_in_chunks(data: bytes, size: int) -> tuple[list[tuple[str, dict]], EventStreamDecoder]:
    decoder = EventStreamDecoder()
    events = []
    for start in range(0, len(data), size):
        events += decoder.feed(data[start : start + size])
    return events, decoder


@pytest.mark.parametrize("size", [1, 5, 64, len(STREAM)])
def test_decodes_like_botocore_however_the_bytes_are_split(size: int) -> None:
    events, decoder = decode_in_chunks(STREAM, size)
    assert events == reference(STREAM)
    assert [kind for kind, _ in events][:2] == ["messageStart", "contentBlockDelta"]
    assert decoder.error is None


def test_every_header_value_type_decodes_like_botocore() -> None:
    ident = uuid.uuid4()
    headers = (
        header(":message-type", 7, struct.pack(">H", 5) + b"event")
        + header(":event-type", 7, struct.pack(">H", 8) + b"metadata")
        + header("yes", 0, b"")
        + header("no", 1, b"")
        + header("byte", 2, struct.pack(">b", -3))
        + header("short", 3, struct.pack(">h", -300))
        + header("int", 4, struct.pack(">i", 70000))
        + header("long", 5, struct.pack(">q", 2**40))
        + header("blob", 6, struct.pack(">H", 3) + b"\x00\x01\x02")
        + header("when", 8, struct.pack(">q", 1_700_000_000_000))
        + header("id", 9, ident.bytes)
    )
    message = frame(headers, b'{"usage": {}}')
    buffer = EventStreamBuffer()
    buffer.add_data(message)
    (expected,) = list(buffer)

    decoder = EventStreamDecoder()
    assert decoder.feed(message) == [("metadata", {"usage": {}})]
    internal = decoder_headers(message)
    for name in ("yes", "no", "byte", "short", "int", "long", "blob", "id"):
        assert internal[name] == expected.headers[name], name
    assert internal["when"] == 1_700_000_000_000


def test_an_exception_message_ends_the_stream_after_the_events_before_it() -> None:
    data = STREAM[: len(event("messageStart", {"role": "assistant"}))] + exception(
        "throttlingException", "slow down"
    )
    decoder = EventStreamDecoder()
    assert decoder.feed(data) == [("messageStart", {"role": "assistant"})]
    assert isinstance(decoder.error, EventStreamError)
    assert decoder.error.response["Error"] == {
        "Code": "throttlingException",
        "Message": "slow down",
    }


@pytest.mark.parametrize("flip", [2, 9, 40, -2])
def test_a_corrupt_frame_is_a_streaming_error_not_garbage(flip: int) -> None:
    corrupt = bytearray(STREAM)
    corrupt[flip] ^= 0x40
    decoder = EventStreamDecoder()
    events = decoder.feed(bytes(corrupt))
    assert isinstance(decoder.error, ResponseStreamingError)
    assert len(events) < len(reference(STREAM))


def header(name: str, value_type: int, value: bytes) -> bytes:
    return bytes([len(name)]) + name.encode() + bytes([value_type]) + value


def frame(headers: bytes, payload: bytes) -> bytes:
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def decoder_headers(message: bytes) -> dict:
    """The decoder's view of one message's headers (through its module's parser)."""
    from inference_service.bedrock import events as bedrock_events

    (headers_length,) = struct.unpack_from(">I", message, 4)
    return bedrock_events._headers(message, 12, 12 + headers_length)
