"""Structured logs: one JSON object per line on stderr.

Every service calls setup() once in its __main__. Call sites pass context as
`extra={...}`; the keys listed in FIELDS are copied into the JSON line, so a
log reader can filter on request_id, route or model without parsing text.
trace_id and span_id come from the current OpenTelemetry span unless the call
site passes them, so a line can be found from its trace and the reverse.

A worker process (INFERENCE_WORKERS, GATEWAY_WORKERS above 1) adds `worker`
(its index) and `pid` to every line, so the lines of N processes sharing one
stderr can be told apart.

Lines never carry prompt or answer text unless the inference service's
DUALNOVA_LOG_CONTENT is on (the "prompt" and "answer" fields), and never
credentials.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from opentelemetry import trace

from dualnova.server.callers import current_caller
from dualnova.server.telemetry import format_span_id, format_trace_id

# Context keys that call sites may pass with `extra=` and that appear in the line.
FIELDS = (
    "service",
    "trace_id",
    "span_id",
    "request_id",
    "route",
    "model",
    "status",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "latency_ms",
    "time_to_first_token_ms",
    "address",
    "peer",
    "error",
    "workers",
    "event_loop",
    # The caller's name (dualnova.server.callers), never its token.
    "caller",
    # Only with DUALNOVA_LOG_CONTENT=true (inference service).
    "prompt",
    "answer",
)


class TraceContextFilter(logging.Filter):
    """Adds the current span's trace_id and span_id, and the current caller, to a record.

    Each only where the record does not carry its own.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "caller", None) is None:
            record.caller = current_caller()
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            if getattr(record, "trace_id", None) is None:
                record.trace_id = format_trace_id(context.trace_id)
            if getattr(record, "span_id", None) is None:
                record.span_id = format_span_id(context.span_id)
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, worker: int | None = None) -> None:
        super().__init__()
        self._service = service
        # The same on every line of this process.
        self._process: dict[str, object] = (
            {} if worker is None else {"worker": worker, "pid": os.getpid()}
        )

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self._service,
            **self._process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def setup(service: str, level: str = "INFO", *, worker: int | None = None) -> None:
    """Route the root logger to stderr as JSON lines tagged with the service name (and worker)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, worker))
    handler.addFilter(TraceContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # botocore logs every request at DEBUG and credentials lookups at INFO.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
