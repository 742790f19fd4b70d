"""OpenTelemetry for both services: providers from the standard OTEL_* variables, set up once.

What an operator can rely on:
- Nothing configured, nothing exported: an exporter is built only when an
  OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or the per-signal
  OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT) is set, or when
  OTEL_{TRACES,METRICS}_EXPORTER names one (otlp, console, none).
  OTEL_SDK_DISABLED=true turns every exporter off.
- Spans still get ids when nothing is exported, so the trace id a caller is
  given (and the one in every log line) is always real and always the same.
- Exporting never slows a request: spans go through the batch processor's
  bounded in-memory queue and metrics are read periodically, both on their own
  threads; a collector that cannot be reached costs dropped telemetry, never
  a late or failed call. shutdown() is bounded for the same reason.
- W3C trace context is the propagator (OTEL_PROPAGATORS overrides it).

The OTLP exporters read the rest themselves: endpoint, headers, timeout,
compression, certificates; OTEL_BSP_* and OTEL_METRIC_EXPORT_INTERVAL tune
batching. OTEL_EXPORTER_OTLP_PROTOCOL is grpc (the default) or http/protobuf.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dualnova.server.settings import ConfigError, read_bool

__all__ = [
    "INSTRUMENTATION_NAME",
    "ROUTE_ATTRIBUTE",
    "ROUTE_METADATA_KEY",
    "WORKER_ATTRIBUTE",
    "build_resource",
    "Telemetry",
    "format_span_id",
    "format_trace_id",
    "setup",
]

logger = logging.getLogger(__name__)

# Tracer and meter name of DualNova's own spans and instruments.
INSTRUMENTATION_NAME = "dualnova"
# gRPC metadata the gateway sends upstream: which DualChat route a Chat call serves.
ROUTE_METADATA_KEY = "x-dualnova-route"
# Span and metric attribute holding that route.
ROUTE_ATTRIBUTE = "dualnova.route"
# Resource attribute: which worker process of a service (INFERENCE_WORKERS, GATEWAY_WORKERS).
WORKER_ATTRIBUTE = "dualnova.worker"

_PROTOCOLS = ("grpc", "http/protobuf")
_EXPORTERS = ("otlp", "console", "none")
# How long shutdown may wait for the last export, so SIGTERM never hangs on a lost collector.
DEFAULT_SHUTDOWN_TIMEOUT_S = 2.0


def format_trace_id(trace_id: int) -> str:
    """The W3C form: 32 lowercase hex digits."""
    return format(trace_id, "032x")


def format_span_id(span_id: int) -> str:
    """The W3C form: 16 lowercase hex digits."""
    return format(span_id, "016x")


@dataclass
class Telemetry:
    """The installed providers and what they export to; shutdown() flushes within a bound."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    # What each signal exports to ("otlp", "console"), and the exporters themselves.
    span_exporters: list[str] = field(default_factory=list)
    metric_exporters: list[str] = field(default_factory=list)
    exporters: list[SpanExporter | MetricExporter] = field(default_factory=list)

    def shutdown(self, timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S) -> bool:
        """Export what is buffered and stop; gives up after `timeout_s`. True when it finished.

        The final flush runs on a daemon thread: an exporter retrying a lost
        collector would otherwise hold the process past its SIGTERM grace (the
        SDK waits up to 30 s). Past the bound the exporters are shut down,
        which ends their retries and closes their connections.
        """
        done = threading.Event()

        def stop() -> None:
            try:
                self.tracer_provider.shutdown()
                self.meter_provider.shutdown(timeout_millis=timeout_s * 1000)
            finally:
                done.set()

        threading.Thread(target=stop, name="otel-shutdown", daemon=True).start()
        if done.wait(timeout_s):
            return True
        logger.warning(f"telemetry export did not finish within {timeout_s:g} s; dropping the rest")
        for exporter in self.exporters:
            exporter.shutdown()
        return False


def setup(
    service: str, env: Mapping[str, str] | None = None, *, worker: int | None = None
) -> Telemetry:
    """Install the global tracer and meter providers for `service`; call once, at start.

    `worker` is the index of this process among the service's workers, if it
    is one. Raises ConfigError for a malformed OTEL_* value this module
    interprets, so the service stops at start with one line instead of
    exporting nowhere.
    """
    env = os.environ if env is None else env
    disabled = read_bool(env, "OTEL_SDK_DISABLED", False)
    resource = build_resource(service, env, worker=worker)

    exporters: list[SpanExporter | MetricExporter] = []
    span_exporters = [] if disabled else _exporter_names(env, "TRACES")
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    for name in span_exporters:
        span_exporter = _span_exporter(name, env)
        exporters.append(span_exporter)
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))

    metric_exporters = [] if disabled else _exporter_names(env, "METRICS")
    readers: list[MetricReader] = []
    for name in metric_exporters:
        metric_exporter = _metric_exporter(name, env)
        exporters.append(metric_exporter)
        readers.append(PeriodicExportingMetricReader(metric_exporter))
    meter_provider = MeterProvider(
        resource=resource, metric_readers=readers, shutdown_on_exit=False
    )

    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    if not env.get("OTEL_PROPAGATORS"):
        propagate.set_global_textmap(TraceContextTextMapPropagator())
    if span_exporters or metric_exporters:
        logger.info(
            f"exporting traces to {', '.join(span_exporters) or 'nowhere'},"
            f" metrics to {', '.join(metric_exporters) or 'nowhere'}"
        )
    return Telemetry(tracer_provider, meter_provider, span_exporters, metric_exporters, exporters)


def build_resource(service: str, env: Mapping[str, str], *, worker: int | None = None) -> Resource:
    """service.name, and a service.instance.id that no other process of the service shares.

    The SDK gives each process a random instance id, but an operator's
    OTEL_RESOURCE_ATTRIBUTES (service.instance.id=<pod name>) reaches every
    worker alike; two workers exporting cumulative metrics under one identity
    would overwrite each other's series. So a worker appends its index.
    """
    resource = Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or service})
    if worker is None:
        return resource
    instance = resource.attributes.get(SERVICE_INSTANCE_ID) or service
    return resource.merge(
        Resource({SERVICE_INSTANCE_ID: f"{instance}-worker-{worker}", WORKER_ATTRIBUTE: worker})
    )


def _exporter_names(env: Mapping[str, str], signal: str) -> list[str]:
    """Exporters for TRACES or METRICS: as named, else otlp when an endpoint is set, else none."""
    variable = f"OTEL_{signal}_EXPORTER"
    raw = (env.get(variable) or "").strip()
    if not raw:
        endpoint = env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return ["otlp"] if endpoint and endpoint.strip() else []
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    for name in names:
        if name not in _EXPORTERS:
            raise ConfigError(f"{variable}={raw!r}: expected a list of {', '.join(_EXPORTERS)}")
    return [name for name in dict.fromkeys(names) if name != "none"]


def _protocol(env: Mapping[str, str], signal: str) -> str:
    for variable in (f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        raw = (env.get(variable) or "").strip()
        if raw:
            if raw not in _PROTOCOLS:
                raise ConfigError(f"{variable}={raw!r}: expected grpc or http/protobuf")
            return raw
    return "grpc"


def _span_exporter(name: str, env: Mapping[str, str]) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    # Imported on demand: each OTLP flavour pulls in its own transport.
    exporter: Any
    if _protocol(env, "TRACES") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpSpanExporter,
        )

        exporter = HttpSpanExporter()
    return exporter


def _metric_exporter(name: str, env: Mapping[str, str]) -> MetricExporter:
    if name == "console":
        return ConsoleMetricExporter()
    exporter: Any
    if _protocol(env, "METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpMetricExporter,
        )

        exporter = HttpMetricExporter()
    return exporter
