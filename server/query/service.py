"""Plan, run, cancel and record queries: everything between the Flight SQL handlers and the backends."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from opentelemetry import trace

from nexus_flight.backends.base import Execution
from nexus_flight.backends.limits import planning
from nexus_flight.core.errors import (
    BackendError,
    BackendUnavailableError,
    GatewayError,
    InvalidQueryError,
    NotFoundError,
    QueryCancelledError,
    QueryTimeoutError,
)
from nexus_flight.core.source import QueryLimits, SourceProfile, ValidationLimits
from nexus_flight.server.flight.handles import Ticket
from nexus_flight.server.flight.status import flight_error, status_name
from nexus_flight.server.query.authorization import QueryAccess
from nexus_flight.server.query.batch_sizing import within_message_limit
from nexus_flight.server.query.cancel_watch import CancelWatch
from nexus_flight.server.query.directory import SourceDirectory
from nexus_flight.server.query.session import Session
from nexus_flight.server.query.sql.routing import RoutedQuery, route

log = logging.getLogger("nexus_flight.query")
tracer = trace.get_tracer("nexus_flight")


@dataclass
class QueryEvent:
    """What happened to one query, handed to observers (history, metrics) when it ends."""

    query_id: str
    correlation_id: str | None
    user: str
    source: str | None
    sql: str
    status: str  # success | error | timeout | cancelled | rejected
    error: str | None = None
    error_code: str | None = None
    rows: int | None = None
    bytes: int | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    parameters: int = 0
    #: The table versions (lake snapshots) the query read, e.g. ``orders@3``; None for unversioned sources.
    table_version: str | None = None
    #: How the caller signed in (``password``, ``token``, ``api_key``, ``oidc``, ``mtls``) and its address.
    auth_method: str | None = None
    client_address: str | None = None

    @property
    def sql_hash(self) -> str:
        """SHA-256 of the SQL text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


QueryObserver = Callable[[QueryEvent], None]

_STATUS_BY_CODE = {"DEADLINE_EXCEEDED": "timeout", "CANCELLED": "cancelled", "PERMISSION_DENIED": "rejected"}


@dataclass(frozen=True)
class Plan:
    """A routed query with the schemas clients are told about, and how long validating and planning took."""

    query: RoutedQuery
    dataset_schema: pa.Schema
    parameter_schema: pa.Schema
    timings_ms: dict[str, float]


@dataclass
class _StreamStats:
    rows: int = 0
    bytes: int = 0
    first_batch_ms: float | None = None
    #: The engine's last batch was handed over: a call that ends otherwise without an error lost its client.
    complete: bool = False


def _counted(
    reader: pa.RecordBatchReader,
    schema: pa.Schema,
    stats: _StreamStats,
    started: float,
    stream_error: Callable[[Exception], Exception],
    max_message_bytes: int,
) -> Iterator[pa.RecordBatch]:
    """Yield the engine's batches in the announced schema, counting rows and bytes for history and metrics.

    Every source's batches are cut here to fit the clients' message limit (``server/query/batch_sizing.py``).

    Reading the engine's reader releases the GIL while the engine works; this loop holds it only to add two
    numbers per batch (64k rows), which costs nothing measurable next to serializing the batch
    (benchmarks/RESULTS.md), and batches are not copied. Its other job: an engine failure after the first batch
    leaves as the mapped Flight error (CANCELLED, DEADLINE_EXCEEDED …), which only a Flight generator stream can
    send; a failing reader would reach the client as UNKNOWN.
    """
    conform = not reader.schema.equals(schema)
    try:
        for batch in within_message_limit(reader, max_message_bytes):
            if stats.first_batch_ms is None:
                stats.first_batch_ms = _ms(started)
            stats.rows += batch.num_rows
            stats.bytes += batch.nbytes
            # Clients require the stream's schema to equal the announced one (nullability, types).
            yield batch.cast(schema) if conform else batch
        stats.complete = True
    except Exception as exc:
        raise stream_error(exc) from None


@dataclass
class _Running:
    execution: Execution
    cancelled: bool = False


class QueryService:
    """Routes SQL to a source, asks its backend for schemas and streams, and tracks what runs."""

    def __init__(
        self,
        sources: SourceDirectory,
        limits: QueryLimits,
        validate_sql: bool = True,
        observers: Sequence[QueryObserver] = (),
        validation_limits: ValidationLimits | None = None,
    ) -> None:
        self.sources = sources
        self.limits = limits
        self.validate_sql = validate_sql
        self.validation_limits = validation_limits or ValidationLimits()
        self.observers = list(observers)
        self._running: dict[bytes, list[_Running]] = {}
        self._lock = threading.Lock()
        self._watch = CancelWatch()
        #: Grants (None: everyone may read everything, as with authentication off).
        self.access: QueryAccess | None = None

    # -- planning ------------------------------------------------------------------------------------------

    def route(self, sql: str, session: Session) -> RoutedQuery:
        """Validate and bind ``sql`` to its source.

        Raises:
            GatewayError: rejected, unparseable, or naming an unknown source.

        """
        names = self.sources.names()
        default = self.sources.default()
        if default is None:
            raise NotFoundError("no data source is configured")
        if self.access is not None and session.principal is not None:
            # Sources the caller may not see are not routed to: naming one reads like naming none. The default
            # stays (a query naming no source goes there, and is then refused by the grants).
            names = sorted(self.access.visible_catalogs(session.principal, names) | {default})
        targets = {name: self._limited(self.sources.route_target(name)) for name in names}
        with tracer.start_as_current_span("validate"):
            return route(
                sql,
                sources=targets,
                session_catalog=session.catalog,
                default_source=default,
                client_dialect=session.dialect,
                validate_sql=self.validate_sql,
            )

    def _limited(self, target: SourceProfile) -> SourceProfile:
        """The server's validation limits apply to sources that do not set their own."""
        if target.limits == ValidationLimits():
            return dataclasses.replace(target, limits=self.validation_limits)
        return target

    def plan(self, sql: str, session: Session) -> Plan:
        """Route ``sql`` and return it with its result schema and parameter schema, without running it."""
        started = time.perf_counter()
        source = None
        try:
            routed = self.route(sql, session)
            source = routed.source
            self.authorize(routed, session)
            validated = _ms(started)
            backend = self.sources.backend(routed.source)
            span = tracer.start_as_current_span("plan", attributes={"nexus.source": routed.source})
            with span, planning(self.limits):
                # Planning may cost the engine work (constant folding, first rows): it runs under the query's limits.
                dataset = backend.get_schema(routed.sql, routed.parameter_count)
                parameters = backend.get_parameter_schema(routed.sql, routed.parameter_count)
            return Plan(routed, dataset, parameters, {"validate": validated, "plan": _ms(started) - validated})
        except GatewayError as exc:
            self._emit_failure(sql, session.user, source, exc, started, **session.caller)
            raise

    def authorize(self, query: RoutedQuery, session: Session) -> None:
        """Refuse a routed query reading what the session's principal may not read (at prepare and each run).

        Raises:
            ForbiddenError: PERMISSION_DENIED naming the object.

        """
        if self.access is None or session.principal is None:
            return
        self.access.check_query(session.principal, query.source, query.sql,
                                self.sources.route_target(query.source).dialect,
                                self.sources.backend(query.source).default_schema)

    def bound_schema(
        self, query: RoutedQuery, parameters: list[tuple[Any, ...]] | None, user: str
    ) -> pa.Schema | None:
        """The result schema of a prepared query once its parameters are bound (None: the prepared one stands)."""
        if not parameters:
            return None
        started = time.perf_counter()
        try:
            return self.sources.backend(query.source).get_bound_schema(query.sql, parameters)
        except GatewayError as exc:
            exc.with_context(source=query.source)
            self._emit_failure(query.sql, user, query.source, exc, started)
            raise

    # -- execution -----------------------------------------------------------------------------------------

    def open(
        self, ticket: Ticket, context=None
    ) -> tuple[Iterator[pa.RecordBatch], Callable[[BaseException | None], None]]:
        """Start the ticket's query; return its batches (in ``ticket.schema``) and the callback for when it ends.

        With a call ``context``, the query is cancelled as soon as the client cancels the call or goes away.
        The stream counts rows and bytes as batches pass (the batches themselves are not copied).
        """
        query_id = uuid.uuid4().hex
        started = time.perf_counter()
        timings: dict[str, float] = {}
        span = tracer.start_span(
            "query",
            attributes={"nexus.source": ticket.query.source, "nexus.query_id": query_id,
                        "nexus.correlation_id": ticket.correlation_id or ""},
        )
        try:
            with trace.use_span(span, end_on_exit=False):
                with tracer.start_as_current_span("connect"):
                    backend = self.sources.backend(ticket.query.source)
                timings["connect"] = _ms(started)
                limits = dataclasses.replace(self.limits, correlation_id=ticket.correlation_id)
                execution = backend.execute(ticket.query.sql, ticket.parameters, limits)
                running = _Running(execution)
                with self._lock:  # registered before the engine blocks, so cancel can reach it
                    self._running.setdefault(ticket.handle, []).append(running)
                unwatch = self._watch.watch(context, execution.cancel) if context is not None else _nothing
                with tracer.start_as_current_span("execute"):
                    execution.reader  # noqa: B018 - starts the query and waits for its first batch
                timings["execute"] = _ms(started) - timings["connect"]
        except GatewayError as exc:
            if "running" in locals():
                unwatch()
                self._forget(ticket.handle, running)
                execution.close()
            span.record_exception(exc)
            span.end()
            exc.with_context(source=ticket.query.source, query_id=query_id)
            self._emit_failure(ticket.query.sql, ticket.user, ticket.query.source, exc, started, query_id,
                               ticket.correlation_id, auth_method=ticket.auth_method,
                               client_address=ticket.client_address)
            raise

        stream_span = tracer.start_span("stream", context=trace.set_span_in_context(span))
        stats = _StreamStats()
        deadline = started + self.limits.timeout_seconds

        def stream_error(exc: Exception) -> Exception:
            """What the client is told when the engine fails after the first batch."""
            error = _mid_stream_error(exc, running.cancelled, time.perf_counter() >= deadline, self.limits)
            return flight_error(error.with_context(source=ticket.query.source, query_id=query_id))

        batches = _counted(
            execution.reader, ticket.schema, stats, started, stream_error, self.limits.max_message_bytes
        )

        def finished(error: BaseException | None) -> None:
            stream_span.end()
            unwatch()
            self._forget(ticket.handle, running)
            _release(batches)
            execution.close()
            execution.drop_stream()
            timings["stream"] = _ms(started) - timings["connect"] - timings["execute"]
            if stats.first_batch_ms is not None:
                timings["first_batch"] = stats.first_batch_ms
            status, message, code = "success", None, None
            if running.cancelled:
                status, code, message = "cancelled", "CANCELLED", "cancelled by the client"
            elif error is None and not stats.complete:
                # gRPC ends the call without an error when the client's connection drops mid-stream.
                status, code = "cancelled", "CANCELLED"
                message = f"the client went away after {stats.rows} rows were sent"
            elif error is not None:
                code = _code_of(error)
                status = _STATUS_BY_CODE.get(code, "error")
                message = str(error).split(". Detail:")[0]
            span.set_attribute("nexus.status", status)
            span.end()
            span.set_attribute("nexus.rows", stats.rows)
            self._emit(QueryEvent(
                query_id=query_id, correlation_id=ticket.correlation_id, user=ticket.user,
                source=ticket.query.source, sql=ticket.query.sql, status=status, error=message, error_code=code,
                rows=stats.rows, bytes=stats.bytes, table_version=_versions(execution.read_versions),
                timings_ms={"total": _ms(started), **ticket.plan_timings, **timings},
                parameters=len(ticket.parameters or ()), auth_method=ticket.auth_method,
                client_address=ticket.client_address,
            ))

        return batches, finished

    def _forget(self, handle: bytes, running: _Running) -> None:
        with self._lock:
            entries = self._running.get(handle, [])
            if running in entries:
                entries.remove(running)
            if not entries:
                self._running.pop(handle, None)

    def cancel(self, handle: bytes) -> bool:
        """Interrupt every running execution of a ticket; True when something was running."""
        with self._lock:
            entries = list(self._running.get(handle, []))
        for entry in entries:
            entry.cancelled = True
            entry.execution.cancel()
        return bool(entries)

    def cancel_all(self) -> int:
        """Interrupt every running execution (the end of a drain); return how many there were."""
        with self._lock:
            entries = [entry for running in self._running.values() for entry in running]
        for entry in entries:
            entry.cancelled = True
            entry.execution.cancel()
        return len(entries)

    def running_count(self) -> int:
        """How many executions are streaming now."""
        with self._lock:
            return sum(len(v) for v in self._running.values())

    # -- recording -----------------------------------------------------------------------------------------

    def _emit_failure(self, sql: str, user: str, source: str | None, exc: GatewayError, started: float,
                      query_id: str | None = None, correlation_id: str | None = None, *,
                      auth_method: str | None = None, client_address: str | None = None) -> None:
        code = status_name(exc)
        self._emit(QueryEvent(
            query_id=query_id or uuid.uuid4().hex, correlation_id=correlation_id, user=user, source=source, sql=sql,
            status="rejected" if code in ("PERMISSION_DENIED", "INVALID_ARGUMENT") else
            _STATUS_BY_CODE.get(code, "error"),
            error=exc.message, error_code=code, timings_ms={"total": _ms(started)}, auth_method=auth_method,
            client_address=client_address,
        ))

    def _emit(self, event: QueryEvent) -> None:
        log.debug("query %s source=%s user=%s status=%s total_ms=%.1f", event.query_id, event.source, event.user,
                 event.status, event.timings_ms.get("total", 0.0))
        for observer in self.observers:
            try:
                observer(event)
            except Exception:  # an observer must never fail the query it reports on
                log.exception("query observer failed")


def _mid_stream_error(exc: Exception, cancelled: bool, past_deadline: bool, limits: QueryLimits) -> GatewayError:
    """Classify an engine failure that surfaced while batches were streaming."""
    if isinstance(exc, GatewayError):
        return exc
    if cancelled:
        return QueryCancelledError("query cancelled")
    if past_deadline:
        limit = f"query_timeout={limits.timeout_seconds:g}s"
        return QueryTimeoutError(f"query stopped at the server's time limit ({limit})")
    text = str(exc).split(". Detail:")[0].strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, OSError | pa.ArrowIOError):
        return BackendUnavailableError(text)
    if isinstance(exc, pa.ArrowInvalid | pa.ArrowTypeError):
        return InvalidQueryError(text)
    return BackendError(text)


def _release(batches: Iterator[pa.RecordBatch]) -> None:
    """Close a stream's generator so its frame lets go of the engine's reader and the batch it was holding.

    A stream whose client went away is never exhausted; the suspended generator keeps the reader alive through a
    cycle via the C++ stream that Python's collector cannot see.
    """
    try:
        batches.close()  # type: ignore[attr-defined]
    except (ValueError, AttributeError):  # still running on another thread, or not a generator
        pass


def _versions(read: dict[str, str] | None) -> str | None:
    if not read:
        return None
    return ", ".join(f"{table}@{version}" for table, version in sorted(read.items()) if version is not None) or None


def _nothing() -> None:
    return None


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


def _code_of(error: BaseException) -> str:
    if isinstance(error, GatewayError):
        return status_name(error)
    name = type(error).__name__
    return {
        "FlightCancelledError": "CANCELLED",
        "FlightTimedOutError": "DEADLINE_EXCEEDED",
        "ArrowCancelled": "CANCELLED",
    }.get(name, "INTERNAL" if "Internal" in name else "UNKNOWN")


def parameter_rows(batch_or_table: pa.Table | None) -> list[tuple[Any, ...]] | None:
    """Bound parameter rows as Python tuples; dense-union columns (flightsql-dbapi) are unwrapped."""
    if batch_or_table is None or batch_or_table.num_columns == 0 or batch_or_table.num_rows == 0:
        return None
    columns = [col.to_pylist() for col in batch_or_table.columns]
    return [tuple(row) for row in zip(*columns, strict=True)]
