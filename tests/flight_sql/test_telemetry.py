"""Each query leaves a span tree and metrics by source (SDK providers with in-memory exporters)."""

from __future__ import annotations

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

SPANS = InMemorySpanExporter()
METRICS = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def providers():
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SPANS))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[METRICS]))
    yield


def test_query_span_tree_and_metrics(adbc):
    SPANS.clear()
    cur = adbc.cursor()
    cur.execute("SELECT count(*) FROM nation")
    assert cur.fetchone()[0] == 25
    cur.close()
    spans = {s.name: s for s in SPANS.get_finished_spans()}
    assert {"validate", "plan", "query", "connect", "execute", "stream"} <= set(spans)
    query = spans["query"]
    for child in ("connect", "execute", "stream"):
        assert spans[child].parent.span_id == query.context.span_id
    assert query.attributes["nexus.source"] == "demo" and query.attributes["nexus.status"] == "success"
    assert query.attributes["nexus.correlation_id"]
    assert query.attributes["nexus.rows"] == 1  # set before the span ends, so it is kept
    data = METRICS.get_metrics_data()
    points = [
        p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == "nexus.queries"
        for p in m.data.data_points
    ]
    assert any(p.attributes == {"nexus.source": "demo", "nexus.status": "success"} and p.value >= 1 for p in points)
