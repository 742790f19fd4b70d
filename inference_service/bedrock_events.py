"""Bedrock's response event stream (application/vnd.amazon.eventstream), decoded as it arrives.

Framing and checksums are botocore's own decoder (EventStreamBuffer), the
reference the emulator is tested against. Above it, only what ConverseStream
needs: each event's type and JSON payload, and an exception message raised as
the EventStreamError boto3 would raise, so errors.py maps it unchanged.
botocore's generic shape parser is skipped: the payloads are JSON already and
the servicer reads three fields of them.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.eventstream import EventStreamBuffer, ParserError
from botocore.exceptions import EventStreamError, ResponseStreamingError

__all__ = ["EventStreamDecoder"]

DecodedEvent = tuple[str, dict[str, Any]]


class EventStreamDecoder:
    """Feed it the body's chunks; it returns the whole messages each chunk completed.

    An exception message ends the stream: the events before it in the same
    chunk are still returned, and `error` holds what to raise after them.
    """

    def __init__(self, operation: str = "ConverseStream") -> None:
        self._buffer = EventStreamBuffer()
        self._operation = operation
        self.error: Exception | None = None

    def feed(self, chunk: bytes) -> list[DecodedEvent]:
        self._buffer.add_data(chunk)
        events: list[DecodedEvent] = []
        try:
            for message in self._buffer:
                headers = message.headers
                message_type = headers.get(":message-type")
                if message_type == "event":
                    payload = json.loads(message.payload) if message.payload else {}
                    events.append((headers.get(":event-type", ""), payload))
                elif message_type in ("exception", "error"):
                    self.error = self._error(headers, message.payload)
                    break
        except ParserError as exc:  # a corrupt frame: the stream cannot be trusted past it
            self.error = ResponseStreamingError(error=exc)
        return events

    def _error(self, headers: dict[str, Any], payload: bytes) -> EventStreamError:
        """An exception message as botocore's EventStreamError (lowerCamel code, as sent)."""
        if headers.get(":message-type") == "exception":
            code = str(headers.get(":exception-type", ""))
            try:
                body = json.loads(payload) if payload else {}
            except ValueError:
                body = {}
            message = str(body.get("message") or body.get("Message") or "")
        else:
            code = str(headers.get(":error-code", ""))
            message = str(headers.get(":error-message", ""))
        return EventStreamError({"Error": {"Code": code, "Message": message}}, self._operation)
