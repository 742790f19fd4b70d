"""The emulator's record of what it was asked, what it answered and who hung up.

Tests read it through GET /_emulator/requests to check what a service really
sent to Bedrock (every body as received: its JSON, or its text when it does
not parse, even when the request is refused; credentials; model) and how the
exchange ended (status, error, fault, streamed text, usage, completed or
disconnected).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bedrock_emulator.auth import signing_key


@dataclass
class LogEntry:
    id: str  # also sent as x-amzn-RequestId
    operation: str
    model_id: str | None  # as the caller sent it (URL-decoded)
    received_at: float
    body: Any
    authorization: bool  # an Authorization header was present
    # The SigV4 access key id the request was signed with (never a secret), or None.
    access_key: str | None = None
    resolved_model_id: str | None = None
    status: int | None = None
    error: str | None = None  # exception name, or the :exception-type sent mid-stream
    fault: str | None = None
    response_text: str = ""
    usage: dict[str, int] | None = None
    stop_reason: str | None = None
    # A successful answer was sent in full (the stream through its metadata event,
    # or a 200 JSON body); False for errors, mid-stream errors, hangs and hang-ups.
    completed: bool = False
    # The caller hung up before the response ended.
    disconnected: bool = False
    disconnected_at: float | None = None

    def mark_disconnected(self) -> None:
        if not self.disconnected:
            self.disconnected = True
            self.disconnected_at = time.time()


def logged_body(raw: bytes) -> Any:
    """A request body as the log keeps it: its JSON when it parses, else its text as received."""
    try:
        return json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", errors="replace")


# The newest entries kept: `dualnova up` runs for days and health probes alone
# add a few entries every interval.
MAX_ENTRIES = 10_000


@dataclass
class RequestLog:
    entries: deque[LogEntry] = field(default_factory=lambda: deque(maxlen=MAX_ENTRIES))

    def open(
        self, operation: str, model_id: str | None, body: Any, headers: Mapping[str, str]
    ) -> LogEntry:
        entry = LogEntry(
            id=str(uuid.uuid4()),
            operation=operation,
            model_id=model_id,
            received_at=time.time(),
            body=body,
            authorization="Authorization" in headers,
            access_key=signing_key(headers),
        )
        self.entries.append(entry)
        return entry

    def clear(self) -> None:
        self.entries.clear()

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(entry) for entry in self.entries]
