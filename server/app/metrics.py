"""Prometheus metrics of one gateway, in a registry of its own (several gateways may share a process in tests).

Counters and histograms are fed by ``observe`` (a ``QueryObserver``) as each query ends; gauges are read when
``/metrics`` is scraped, from the live objects (running queries, open handles, sources by health status).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from nexus_flight.catalog.history_writer import WriterCounts
from nexus_flight.catalog.reachability import CatalogWatch
from nexus_flight.core.settings import ServerSettings
from nexus_flight.server.query.principal_limits import AdmissionCounts
from nexus_flight.server.query.service import QueryEvent

#: Query durations from a millisecond metadata answer to a 10-minute scan.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class _SourceHealth:
    """Collects ``nexus_sources{status}`` from a callable that lists the sources' statuses when scraped."""

    def __init__(self, statuses: Callable[[], Iterable[str]]) -> None:
        self._statuses = statuses

    def collect(self):
        family = GaugeMetricFamily("nexus_sources", "Configured sources by health status", labels=["status"])
        counts: dict[str, int] = {}
        for status in self._statuses():
            counts[status] = counts.get(status, 0) + 1
        for status, count in sorted(counts.items()):
            family.add_metric([status], count)
        yield family


class _Admission:
    """Collects what the principals' limits decided (``nexus_admission_*``) from a callable read when scraped."""

    def __init__(self, counts: Callable[[], AdmissionCounts]) -> None:
        self._counts = counts

    def collect(self):
        counts = self._counts()
        admitted = CounterMetricFamily("nexus_admission_admitted", "Queries admitted under a principal's limits")
        admitted.add_metric([], counts.admitted)
        queued = CounterMetricFamily("nexus_admission_queued", "Queries that waited for a concurrency slot")
        queued.add_metric([], counts.queued)
        refused = CounterMetricFamily("nexus_admission_refused", "Queries refused by a principal's limit, by limit",
                                      labels=["limit"])
        for limit, count in sorted(counts.refused.items()):
            refused.add_metric([limit], count)
        waiting = GaugeMetricFamily("nexus_admission_waiting", "Queries waiting for a concurrency slot now")
        waiting.add_metric([], counts.waiting)
        holding = GaugeMetricFamily("nexus_admission_slots", "Concurrency slots held by running queries now")
        holding.add_metric([], counts.running)
        yield from (admitted, queued, refused, waiting, holding)


class _PoolSizes:
    """Collects ``nexus_pool_connections{source,state}`` from the open backends' connection pools when scraped."""

    def __init__(self, opened: Callable[[], Mapping[str, Any]]) -> None:
        self._opened = opened

    def collect(self):
        family = GaugeMetricFamily("nexus_pool_connections", "Connections of each source's pool, in use and idle",
                                   labels=["source", "state"])
        for name, backend in sorted(self._opened().items()):
            sizes = backend.pool_sizes()
            if sizes is not None:
                family.add_metric([name, "in_use"], sizes[0])
                family.add_metric([name, "idle"], sizes[1])
        yield family


class _CatalogWriters:
    """Collects ``nexus_catalog_rows{log,state}`` (history and audit rows written, dropped, pending) when scraped."""

    def __init__(self, writers: Mapping[str, Callable[[], WriterCounts]]) -> None:
        self._writers = writers

    def collect(self):
        done = CounterMetricFamily("nexus_catalog_rows", "History and audit rows written to the catalog or dropped",
                                   labels=["log", "state"])
        pending = GaugeMetricFamily("nexus_catalog_rows_pending", "History and audit rows waiting for the catalog",
                                    labels=["log"])
        journaled = GaugeMetricFamily("nexus_catalog_rows_journaled", "History and audit rows kept on disk until "
                                      "the catalog takes them", labels=["log"])
        for name, counts_of in sorted(self._writers.items()):
            counts = counts_of()
            done.add_metric([name, "written"], counts.written)
            done.add_metric([name, "dropped"], counts.dropped)
            pending.add_metric([name], counts.pending)
            journaled.add_metric([name], counts.journaled)
        yield from (done, pending, journaled)


class GatewayMetrics:
    """The gateway's metrics and the text ``/metrics`` answers with."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.queries = Counter("nexus_queries", "Queries by source, status and user",
                               ["source", "status", "user"], registry=r)
        self.duration = Histogram("nexus_query_duration_seconds", "Query time, first call to last batch, by source",
                                  ["source"], buckets=_BUCKETS, registry=r)
        self.rows = Counter("nexus_rows_streamed", "Rows streamed to clients, by source", ["source"], registry=r)
        self.bytes = Counter("nexus_bytes_streamed", "Arrow bytes streamed to clients, by source", ["source"],
                             registry=r)
        self.active = Gauge("nexus_active_queries", "Queries streaming now", registry=r)
        self.tickets = Gauge("nexus_open_tickets", "Tickets waiting to be fetched", registry=r)
        self.prepared = Gauge("nexus_open_prepared_statements", "Prepared statements open", registry=r)
        self.draining = Gauge("nexus_draining", "1 while the gateway drains before it stops", registry=r)
        self.memory_budget = Gauge("nexus_memory_budget_bytes", "The gateway-wide memory budget queries are "
                                   "admitted within", registry=r)
        self.memory_used = Gauge("nexus_memory_budget_used_bytes", "Memory reserved by running queries (the sum of "
                                 "their memory limits)", registry=r)
        self.memory_idle = Gauge("nexus_memory_budget_idle_bytes", "Memory idle DuckDB query instances may hold "
                                 "(their last queries' limits), counted in the budget and trimmed to make room",
                                 registry=r)
        self.queued = Gauge("nexus_queued_queries", "Queries waiting for room in the memory budget", registry=r)
        self._users: set[str] = set()
        self._users_lock = threading.Lock()
        self._user_series: Callable[[], int] = lambda: ServerSettings.model_fields["metrics_user_series"].default

    def observe(self, event: QueryEvent) -> None:
        """Count a finished query (a ``QueryObserver``)."""
        source = event.source or ""
        self.queries.labels(source, event.status, self._user_label(event)).inc()
        self.duration.labels(source).observe(event.timings_ms.get("total", 0.0) / 1000.0)
        if event.rows:
            self.rows.labels(source).inc(event.rows)
        if event.bytes:
            self.bytes.labels(source).inc(event.bytes)

    def _user_label(self, event: QueryEvent) -> str:
        # Every label value is a series kept for the life of the process. A caller without sign-in names itself
        # (any name it likes); signed-in users are the catalog's or an SSO issuer's, possibly thousands: the first
        # ``metrics_user_series`` have their own, the rest share one.
        if not event.principal.authenticated:
            return "anonymous"
        with self._users_lock:
            if event.user not in self._users:
                if len(self._users) >= self._user_series():
                    return "other"
                self._users.add(event.user)
        return event.user

    def bind(self, gateway) -> None:
        """Read the gauges from a gateway's live state at each scrape."""
        self._user_series = lambda: gateway.settings.metrics_user_series  # as the last reload left it
        self.active.set_function(gateway.service.running_count)
        self.tickets.set_function(lambda: len(gateway.server.tickets))
        self.prepared.set_function(lambda: len(gateway.server.prepared))
        self.draining.set_function(lambda: 1.0 if gateway.server.draining else 0.0)
        self.registry.register(_Admission(gateway.service.limiter.counts))
        budget = gateway.service.memory_budget
        self.memory_budget.set_function(lambda: float(budget.total or 0))
        self.memory_used.set_function(lambda: float(budget.used))
        self.memory_idle.set_function(lambda: float(budget.idle))
        self.queued.set_function(lambda: float(budget.queued))
        if gateway.certificate_expires is not None:
            Gauge("nexus_tls_certificate_expiry_timestamp_seconds", "When the served TLS certificate expires (Unix "
                  "time): renew it and restart before", registry=self.registry).set(
                gateway.certificate_expires.timestamp())
        opened = getattr(gateway.sources, "opened", None)
        if opened is not None:
            self.registry.register(_PoolSizes(opened))

    def add_catalog_writers(self, writers: Mapping[str, Callable[[], WriterCounts]]) -> None:
        """Publish what the history and audit writers did (``nexus_catalog_rows{log="history",state="dropped"}`` …)."""
        self.registry.register(_CatalogWriters(writers))

    def add_catalog_watch(self, watch: CatalogWatch) -> None:
        """Publish what the catalog last answered: sources by health status, and how long it has not answered.

        A scrape never waits on the catalog (``CatalogWatch`` asks it in the background).
        """
        self.registry.register(_SourceHealth(lambda: watch.statuses))
        Gauge("nexus_catalog_unanswered_seconds", "How long the catalog has not answered (0 while it does)",
              registry=self.registry).set_function(watch.unanswered_seconds)

    def text(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
