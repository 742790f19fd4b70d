"""The trace id of a DualChat call, as the caller sees it (summary and x-trace-id).

Kept to one function so that bringing in OpenTelemetry changes only this
module: the id comes from the active span when there is one, and is otherwise
made up here in the same W3C format so callers always get something to quote.
"""

from __future__ import annotations

import secrets

try:
    from opentelemetry import trace as _otel_trace
except ImportError:  # OpenTelemetry is optional until the tracing issue lands.
    _otel_trace = None

__all__ = ["TRACE_ID_METADATA_KEY", "current_trace_id", "new_trace_id"]

# Initial response metadata key carrying the trace id, before any event.
TRACE_ID_METADATA_KEY = "x-trace-id"


def current_trace_id() -> str:
    """The recording span's trace id, else a fresh one: 32 lowercase hex digits, not all zero."""
    if _otel_trace is not None:
        span = _otel_trace.get_current_span()
        context = span.get_span_context()
        if span.is_recording() and context.is_valid:
            return format(context.trace_id, "032x")
    return new_trace_id()


def new_trace_id() -> str:
    """A random W3C trace id (the all-zero id is invalid in W3C trace context)."""
    while True:
        value = secrets.randbits(128)
        if value:
            return format(value, "032x")
