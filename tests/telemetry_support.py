"""What the telemetry tests share: a tiny OTLP collector, their own service processes, DualChat.

The services export through their real OTLP gRPC exporters, configured only
by OTEL_* variables, to a collector this module runs in the test process, so
the tests see exactly what a real collector would receive. The services run
as their own processes (dualnova.dev.stack.ServiceHandle) in front of the
session's emulator, because each test module needs its own variables.
Waits poll with a deadline; none sleeps and hopes.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Mapping
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from opentelemetry.proto.common.v1 import common_pb2
from polling import wait_until
from processes import SERVICE_DEFAULTS

from dualnova.dev.stack import HOST, EmulatorHandle, ServiceHandle, free_port

MICRO = "amazon.nova-micro-v1:0"
PRO = "amazon.nova-pro-v1:0"
# Export fast, so tests wait milliseconds rather than the defaults' seconds.
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_METRIC_EXPORT_INTERVAL": "200"}


# ---- the collector ------------------------------------------------------------------


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: str  # "SERVER", "CLIENT", ...
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    attributes: dict[str, Any]
    status: str  # "UNSET", "OK", "ERROR"
    events: tuple[str, ...]
    # Each event's attributes, in the order of `events`.
    event_attributes: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Point:
    """One metric data point as last exported (cumulative): a sum's value or a histogram's."""

    service: str
    metric: str
    attributes: dict[str, Any]
    value: float  # a sum's value, or a histogram's sum
    count: int  # a histogram's count (1 for a sum)
    unit: str


@dataclass
class OtlpCollector(
    trace_service_pb2_grpc.TraceServiceServicer,
    metrics_service_pb2_grpc.MetricsServiceServicer,
):
    """An OTLP/gRPC receiver for traces and metrics that keeps everything it is sent."""

    port: int = 0
    _spans: list[Span] = field(default_factory=list)
    # (service, metric, sorted attributes) -> the latest cumulative point.
    _points: dict[tuple[str, str, tuple[tuple[str, Any], ...]], Point] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: grpc.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> OtlpCollector:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port(f"{HOST}:0")
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(None)

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            self._take_spans(request)
            return trace_service_pb2.ExportTraceServiceResponse()
        self._take_metrics(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def _take_spans(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        spans = []
        for resource_spans in request.resource_spans:
            service = _attributes(resource_spans.resource.attributes).get("service.name", "")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        Span(
                            service=service,
                            name=span.name,
                            kind=span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes=_attributes(span.attributes),
                            status=span.status.StatusCode.Name(span.status.code).removeprefix(
                                "STATUS_CODE_"
                            ),
                            events=tuple(event.name for event in span.events),
                            event_attributes=tuple(
                                _attributes(event.attributes) for event in span.events
                            ),
                        )
                    )
        with self._lock:
            self._spans.extend(spans)

    def _take_metrics(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        points = []
        for resource_metrics in request.resource_metrics:
            service = _attributes(resource_metrics.resource.attributes).get("service.name", "")
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        if kind == "histogram":
                            value, count = point.sum, point.count
                        else:
                            value = point.as_int if point.HasField("as_int") else point.as_double
                            count = 1
                        points.append(
                            Point(
                                service,
                                metric.name,
                                _attributes(point.attributes),
                                value,
                                count,
                                metric.unit,
                            )
                        )
        with self._lock:
            for point in points:
                key = (
                    point.service,
                    point.metric,
                    tuple(sorted(point.attributes.items())),
                )
                self._points[key] = point

    def spans(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [span for span in self._spans if span.trace_id == trace_id]

    def wait_for_trace(self, trace_id: str, count: int) -> list[Span]:
        """The trace's spans once at least `count` have arrived."""
        return wait_until(
            lambda: (spans := self.spans(trace_id)) and len(spans) >= count and spans,
            f"{count} spans of trace {trace_id}",
        )

    def point(self, service: str, metric: str, attributes: Mapping[str, Any]) -> Point | None:
        """The latest point of the series of `metric` with exactly these attributes."""
        key = (service, metric, tuple(sorted(attributes.items())))
        with self._lock:
            return self._points.get(key)

    def series(self, service: str, metric: str) -> list[Point]:
        """The latest point of every series of `metric`."""
        with self._lock:
            return [p for p in self._points.values() if (p.service, p.metric) == (service, metric)]

    def total(self, service: str, metric: str, attributes: Mapping[str, Any]) -> tuple[float, int]:
        """(value, count) of a series so far; (0, 0) before its first export."""
        point = self.point(service, metric, attributes)
        return (0, 0) if point is None else (point.value, point.count)


# ---- the services ------------------------------------------------------------------


@dataclass
class Pair:
    inference: ServiceHandle
    gateway: ServiceHandle
    # Holds inference_service.log and gateway.log (each process's stderr).
    log_dir: Path
    exit_codes: dict[str, int | None] = field(default_factory=dict)


@contextmanager
def running_pair(
    emulator: EmulatorHandle,
    log_dir: Path,
    *,
    inference_env: Mapping[str, str] = {},
    gateway_env: Mapping[str, str] = {},
) -> Iterator[Pair]:
    """An inference service and a gateway of their own, in front of `emulator`."""
    inference = ServiceHandle(
        "inference service",
        "inference_service",
        "INFERENCE_LISTEN",
        {
            **emulator.aws_env(),
            **SERVICE_DEFAULTS,
            "DUALNOVA_BEDROCK_MAX_ATTEMPTS": "1",
            **inference_env,
        },
        log_path=log_dir / "inference_service.log",
    )
    gateway = ServiceHandle(
        "gateway",
        "gateway",
        "GATEWAY_LISTEN",
        {**SERVICE_DEFAULTS, "INFERENCE_TARGET": inference.address, **gateway_env},
        log_path=log_dir / "gateway.log",
    )
    pair = Pair(inference, gateway, log_dir)
    inference.start()
    try:
        gateway.start()
        yield pair
    finally:
        # Both at once: each may spend its telemetry shutdown bound on a lost collector.
        with futures.ThreadPoolExecutor(2) as pool:
            stopping = {
                "gateway": pool.submit(gateway.stop),
                "inference_service": pool.submit(inference.stop),
            }
        pair.exit_codes.update({name: future.result() for name, future in stopping.items()})


def log_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines a process wrote so far."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused at once."""
    return free_port()


@contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never answers: a hung collector."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        sock.listen(64)
        yield sock.getsockname()[1]
