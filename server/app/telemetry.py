"""OpenTelemetry: a span tree per query (validate → plan; query → connect → execute → stream) and metrics.

Spans and metrics go through the global OpenTelemetry API, which is a no-op until a provider is installed:
``configure_telemetry`` installs the SDK's providers (console exporters when ``NEXUS_FLIGHT_OTEL=console``);
an embedding application or test may install its own instead.
"""

from __future__ import annotations

import os

from opentelemetry import metrics, trace

from nexus_flight.server.query.service import QueryEvent

meter = metrics.get_meter("nexus_flight")
_queries = meter.create_counter("nexus.queries", unit="1", description="Queries by source and status")
_duration = meter.create_histogram(
    "nexus.query.duration", unit="ms", description="Query time, first call to last batch"
)


def record_metrics(event: QueryEvent) -> None:
    """Count the query and record its duration, by source and status (a ``QueryObserver``)."""
    attributes = {"nexus.source": event.source or "", "nexus.status": event.status}
    _queries.add(1, attributes)
    _duration.record(event.timings_ms.get("total", 0.0), attributes)


def configure_telemetry() -> None:
    """Install the SDK's tracer and meter providers when ``NEXUS_FLIGHT_OTEL`` asks for them."""
    mode = os.environ.get("NEXUS_FLIGHT_OTEL", "").lower()
    if mode != "console":
        return
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({"service.name": "nexus-flight"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=60_000)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
