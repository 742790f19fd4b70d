"""What waits for a DualChat caller: both routes' events in order, deltas merged when it is behind.

Every message written to the caller costs the gateway a gRPC write (a
completion-queue round trip, the largest part of relaying a delta). When the
caller reads slower than Bedrock writes, deltas pile up here, and one message
can carry several of them: the caller sees the same text in fewer, larger
deltas.

The rules keep what a caller relies on: a route's first delta always goes
out as its own message (time to first token is never traded for batching),
text is joined exactly, each route's events keep their order, and no delta
moves past a non-delta event (start, a tool call's start or input, a block's
end, a guardrail trace, usage, stop, error) of either route. Only text deltas
of the same route and the same content block are joined (a caller reassembles
blocks by their index); another route's text deltas may be overtaken, and
they keep their own order. Tool input deltas are never merged: each goes out
as Bedrock sent it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from dualnova.gateway.v1 import gateway_pb2

__all__ = ["MAX_MERGED_CHARS", "MERGE_BACKLOG", "Backlog"]

# Events waiting behind the one being sent before the caller counts as behind.
# A normal caller keeps a handful waiting at most, so its stream is what the
# routes sent, message for message.
MERGE_BACKLOG = 16
# A merged delta's text stays under this many characters (4 bytes each at most
# in UTF-8): far below gRPC's 4 MiB default receive limit, and small enough
# that the caller's display never waits on one huge message.
MAX_MERGED_CHARS = 16_384


class Backlog:
    """The events of one DualChat not yet written to its caller, oldest first."""

    def __init__(self) -> None:
        self._events: deque[gateway_pb2.DualChatResponse] = deque()
        self._first_delta_sent: set[str] = set()

    def __len__(self) -> int:
        return len(self._events)

    def extend(self, events: Iterable[gateway_pb2.DualChatResponse]) -> None:
        self._events.extend(events)

    def append(self, event: gateway_pb2.DualChatResponse) -> None:
        self._events.append(event)

    def pop(self) -> gateway_pb2.DualChatResponse:
        """The next message to write: the oldest event, later deltas merged in when behind."""
        event = self._events.popleft()
        if not event.HasField("delta"):
            return event
        route = event.route
        if route not in self._first_delta_sent:
            self._first_delta_sent.add(route)
        elif len(self._events) >= MERGE_BACKLOG:
            self._merge_into(event)
        return event

    def _merge_into(self, event: gateway_pb2.DualChatResponse) -> None:
        """Append the text of the route's waiting deltas of this block, up to any other event."""
        events = self._events
        route = event.route
        block = event.delta.content_block_index
        texts = [event.delta.text]
        size = len(texts[0])
        overtaken: list[gateway_pb2.DualChatResponse] = []
        while events and size < MAX_MERGED_CHARS:
            candidate = events[0]
            if not candidate.HasField("delta"):
                break
            if candidate.route == route:
                if candidate.delta.content_block_index != block:
                    break
                text = candidate.delta.text
                texts.append(text)
                size += len(text)
            else:
                overtaken.append(candidate)
            events.popleft()
        if overtaken:
            events.extendleft(reversed(overtaken))
        if len(texts) > 1:
            event.delta.text = "".join(texts)
