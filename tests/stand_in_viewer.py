"""A stand-in for `phoenix serve` in tests/test_traces_launcher.py: the same face, no Phoenix.

Run as `python tests/stand_in_viewer.py serve`. Like Phoenix it reads PHOENIX_HOST,
PHOENIX_PORT (HTTP, answering /healthz) and PHOENIX_GRPC_PORT (a real OTLP/gRPC trace
receiver), and stops on SIGINT. What it saw goes to the JSON-lines file named by
STAND_IN_VIEWER_RECORD: first its pid, argv and PHOENIX_* environment, then one line per
span received, then the signal that stopped it. STAND_IN_VIEWER_FAIL=N: exit N at once,
as a viewer that cannot start does.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2

RECORD = os.environ.get("STAND_IN_VIEWER_RECORD", os.devnull)
_lock = threading.Lock()


def record(entry: dict[str, Any]) -> None:
    with _lock, open(RECORD, "a") as file:
        file.write(json.dumps(entry) + "\n")


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in ("string_value", "int_value", "bool_value") else None


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    record(
                        {
                            "span": span.name,
                            "trace_id": span.trace_id.hex(),
                            "service": resource.get("service.name"),
                            "project": resource.get("openinference.project.name"),
                            "route": attributes.get("dualnova.route"),
                        }
                    )
        return trace_service_pb2.ExportTraceServiceResponse()


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        status = 200 if self.path == "/healthz" else 404
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"OK" if status == 200 else b"")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> int:
    if code := int(os.environ.get("STAND_IN_VIEWER_FAIL", "0")):
        print("stand-in viewer: told to fail", file=sys.stderr, flush=True)
        return code
    host = os.environ["PHOENIX_HOST"]
    env = {key: value for key, value in os.environ.items() if key.startswith("PHOENIX_")}
    record({"pid": os.getpid(), "argv": sys.argv[1:], "env": env})
    stopping = threading.Event()
    received: list[int] = []

    def stop(signum: int, frame: object) -> None:
        received.append(signum)
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), server)
    server.add_insecure_port(f"{host}:{os.environ['PHOENIX_GRPC_PORT']}")
    server.start()
    http = ThreadingHTTPServer((host, int(os.environ["PHOENIX_PORT"])), Health)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    stopping.wait()
    http.shutdown()
    server.stop(None)
    record({"stopped_by": signal.Signals(received[0]).name})
    return 0


if __name__ == "__main__":
    sys.exit(main())
