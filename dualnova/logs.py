"""Structured logs: one JSON object per line on stderr.

Every service calls setup() once in its __main__. Call sites pass context as
`extra={...}`; the keys listed in FIELDS are copied into the JSON line, so a
log reader can filter on request_id, route or model without parsing text.
"""

from __future__ import annotations

import json
import logging
import sys
import time

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
)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self._service,
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


def setup(service: str, level: str = "INFO") -> None:
    """Route the root logger to stderr as JSON lines tagged with the service name."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # botocore logs every request at DEBUG and credentials lookups at INFO.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
