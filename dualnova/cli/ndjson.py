"""`dualnova chat --json`: one JSON object per DualChat event, a line each (NDJSON).

For scripts: every line parses on its own and is written (and flushed) as the
event arrives. Each object has `type`, the event's kind (start, delta, usage,
stop, error, summary, tool_use_start, tool_input_delta, content_block_stop,
guardrail_trace, retrieval, citation, route_stopped, and any kind the proto
adds later), `route` (micro or pro; absent on the summary and the retrieval),
and the event message's own fields under their proto
names, defaults included. A tool call's input comes as the fragments Bedrock
streamed; joined, a block's fragments are its JSON:

    {"type": "retrieval", "knowledge_base_id": "KBDUALNOVA", "query": "...", "latency_ms": 12.0,
     "passages": [{"text": "...", "score": 3.14, "source_id": "S1",
                   "location_uri": "s3://...", "location_type": "S3", "metadata_json": "{...}"}]}
    {"type": "delta", "route": "micro", "text": "...", "content_block_index": 0}
    {"type": "citation", "route": "pro", "content_block_index": 0, "title": "report",
     "source_text": "...", "location_json": "{...}"}
    {"type": "tool_use_start", "route": "pro", "content_block_index": 1,
     "tool_use_id": "tooluse_...", "name": "get_weather"}
    {"type": "tool_input_delta", "route": "pro", "content_block_index": 1, "input_json": "{\"city"}
    {"type": "content_block_stop", "route": "pro", "content_block_index": 1}
    {"type": "guardrail_trace", "route": "pro", "trace_json": "{...}", "intervened": true}
    {"type": "stop", "route": "pro", "stop_reason": "end_turn", "reason": "STOP_REASON_END_TURN",
     "time_to_first_token_ms": 12.5, "latency_ms": 341.0,
     "applied": {"latency": "LATENCY_UNSPECIFIED", ...}}
    {"type": "summary", "usage_by_route": {"micro": {...}, "pro": {...}}, "total": {...},
     "trace_id": "...", "cost_by_route": {"micro": {"input_usd": ..., "output_usd": ...,
     "cache_read_usd": ..., "cache_write_usd": ..., "total_usd": ..., "estimated": true}, ...},
     "total_cost": {...}}

A grounded call's retrieval is its first line, before any route's. The cost
is an estimate (tokens times the gateway's price table), never the bill.

The summary is the last line of a call that completed. A call that failed
(timeout, interrupted, refused) ends instead with
`{"type": "call_error", "code": "DEADLINE_EXCEEDED", "message": "..."}`;
its one-line explanation still goes to stderr and the exit status says the same.
"""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

from google.protobuf import json_format

from dualnova.gateway.v1 import gateway_pb2

if TYPE_CHECKING:
    # render picks this view and so imports this module; the type is all that is needed here.
    from dualnova.cli.render import ChatState

__all__ = ["JsonView", "event_record"]


def event_record(event: gateway_pb2.DualChatResponse) -> dict[str, Any]:
    """The JSON object for one event: type, route, then the event message's fields."""
    kind = event.WhichOneof("event") or "unknown"
    record: dict[str, Any] = {"type": kind}
    if event.route:
        record["route"] = event.route
    if kind != "unknown":
        record.update(
            json_format.MessageToDict(
                getattr(event, kind),
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            )
        )
    return record


class JsonView:
    """A View writing event_record() lines, and a call_error line when the call failed."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file

    def start(self) -> None:
        pass

    def event(self, event: gateway_pb2.DualChatResponse, state: ChatState) -> None:
        self._write(event_record(event))

    def stop(self, state: ChatState) -> None:
        if state.call_error is not None:
            code, message = state.call_error
            self._write({"type": "call_error", "code": code, "message": message})

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
