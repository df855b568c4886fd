"""Plan, run, cancel and record queries: the protocol-free pipeline between a wire and the backends.

A wire (``server/flight/``) decodes a client's command into a ``QueryRequest``, asks ``QueryService.plan`` for a
``PreparedQuery`` (the routed, validated ``QueryPlan`` with the schemas clients are told about), and later runs
it with ``open``, which returns a ``RunningQuery``: an iterator of record batches and a ``finish`` to call when
the call ends. Everything here raises only the gateway's own errors (``core/errors.py``); the wire maps them to
its statuses, also those raised while batches stream. Nothing here knows Flight, protobuf or handles.

Each query, planned or run, ends as one ``QueryEvent`` handed to the observers (history, metrics).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pyarrow as pa
from opentelemetry import trace

from nexus_flight.backends.base import Backend
from nexus_flight.backends.limits import planning
from nexus_flight.core.errors import (
    BackendUnavailableError,
    ForbiddenError,
    GatewayError,
    NotFoundError,
    QueryCancelledError,
    RetryLaterError,
)
from nexus_flight.core.identifiers import CASE_INSENSITIVE, IdentifierRules, rules_of
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.reading import reading_for
from nexus_flight.core.sizes import parse_size
from nexus_flight.core.source import QueryLimits, SourceProfile, ValidationLimits
from nexus_flight.server.query.access import AccessPolicy, GrantedAccess
from nexus_flight.server.query.authorization import QueryAccess
from nexus_flight.server.query.cancel_watch import CancelWatch, Watchable
from nexus_flight.server.query.directory import SourceDirectory
from nexus_flight.server.query.memory_budget import MemoryBudget, Reservation
from nexus_flight.server.query.principal import Principal, anonymous
from nexus_flight.server.query.principal_limits import PrincipalLimiter, Slot
from nexus_flight.server.query.remote_cancel import RemoteCancel, SharedCancels, key_hash
from nexus_flight.server.query.results import ResultStream, Stop, time_limit_error
from nexus_flight.server.query.sql.cache import LRU
from nexus_flight.server.query.sql.routing import route
from nexus_flight.server.query.table_lookup import resolved_table_schema

log = logging.getLogger("nexus_flight.query")
tracer = trace.get_tracer("nexus_flight")

Rows = Sequence[Sequence[Any]]
_Entry = TypeVar("_Entry")
#: Rewritten plans kept (each holds its trees: a few hundred KB at most for typical queries).
_MAX_DISPATCHED = 2048


@dataclass(frozen=True)
class QueryRequest:
    """One statement a client sends, who sends it, and the choices of its session.

    Attributes:
        sql: The statement as the client wrote it.
        principal: Who asks.
        catalog: The session's current catalog (source), if the client chose one.
        dialect: The dialect the client writes in, when it is not the source's own.
        correlation_id: The client's id for the request, for history and the engine's logs.
        address: The client's address, for history.

    """

    sql: str
    principal: Principal = field(default_factory=anonymous)
    catalog: str | None = None
    dialect: str | None = None
    correlation_id: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class PreparedQuery:
    """A planned query: its plan, the schemas clients are told about, and how long validating and planning took."""

    plan: QueryPlan
    dataset_schema: pa.Schema
    parameter_schema: pa.Schema
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    #: The rate token planning took, which the run it plans spends (``PrincipalLimiter.charge``); None: no rate.
    prepaid: str | None = None


@dataclass(frozen=True)
class QueryRun:
    """What ``open`` runs: a plan, the schema announced for it, its parameter rows, and who runs it.

    Attributes:
        plan: The planned statement.
        schema: The schema the client was told about (batches are conformed to it).
        principal: Who runs it.
        parameters: Bound parameter rows (each runs once, results concatenated), or None.
        correlation_id: The client's id for the request.
        plan_timings: How long validating and planning took (recorded with the run).
        key: What ``cancel`` names this run by (the wire's handle for it); runs may share a key.
        address: The client's address, for history.
        prepaid: The rate credit its planning took (spent instead of a new token), if any.
        client_sql: The statement as the client wrote it, which history records (None: the plan's own text; the
            plan's has the source's catalog qualifier removed).

    """

    plan: QueryPlan
    schema: pa.Schema
    principal: Principal = field(default_factory=anonymous)
    parameters: Rows | None = None
    correlation_id: str | None = None
    plan_timings: Mapping[str, float] = field(default_factory=dict)
    key: bytes = b""
    address: str | None = None
    prepaid: str | None = None
    client_sql: str | None = None


@dataclass
class QueryEvent:
    """What happened to one query, handed to observers (history, metrics) when it ends."""

    query_id: str
    correlation_id: str | None
    principal: Principal
    source: str | None
    sql: str
    status: str  # success | error | timeout | cancelled | rejected
    error: str | None = None
    #: The canonical status of the error (``core/errors.py``: INVALID_ARGUMENT, DEADLINE_EXCEEDED …).
    error_code: str | None = None
    rows: int | None = None
    bytes: int | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    parameters: int = 0
    #: The table versions (lake snapshots) the query read, e.g. ``orders@3``; None for unversioned sources.
    table_version: str | None = None
    #: The client's address (None: not known).
    client_address: str | None = None
    #: Whether a row filter or column mask changed what the source ran.
    policy_rewritten: bool = False
    #: SHA-256 of the ticket the query ran from (None: refused while planning).
    ticket_sha256: str | None = None

    @property
    def auth_method(self) -> str | None:
        """How the caller signed in (``password``, ``token``, ``api_key``, ``oidc``, ``mtls``); None: no sign-in."""
        return self.principal.auth_method if self.principal.authenticated else None

    @property
    def user(self) -> str:
        """The principal's name."""
        return self.principal.name

    @property
    def sql_hash(self) -> str:
        """SHA-256 of the SQL text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


QueryObserver = Callable[[QueryEvent], None]


class RunningQuery:
    """A query that runs: iterate it for its batches, call ``finish`` once when the client's call ends.

    Iterating raises only ``GatewayError``: an engine failure, a stop (cancel, the server's time limit) or a
    result cap, classified once (``server/query/results.py``).
    """

    def __init__(self, stream: ResultStream) -> None:
        self.stream = stream
        self._on_finish: Callable[[GatewayError | None], None] | None = None
        self._finished = False
        self._lock = threading.Lock()
        self._batches: Iterator[pa.RecordBatch] | None = None

    @property
    def schema(self) -> pa.Schema:
        """The schema of the batches."""
        return self.stream.schema

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        """The result's batches."""
        self._batches = iter(self.stream)
        return self._batches

    def cancel(self) -> None:
        """Stop the query in its engine (a cancel request, or a client that went away)."""
        self.stream.stop(Stop.CANCELLED)

    def finish(self, error: GatewayError | None = None) -> None:
        """Release the query and record how it ended; ``error`` is how the wire saw the call end, if it failed.

        Safe to call more than once; only the first call counts.
        """
        with self._lock:
            if self._finished:
                return
            self._finished = True
        _release(self._batches)
        if self._on_finish is not None:
            self._on_finish(error)


class _Canceller:
    """Stops one query in whichever phase it is: waiting to be admitted (for a slot or memory), or running."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._error: GatewayError | None = None
        self._running: RunningQuery | None = None
        #: What the query waits for while it is admitted, named in the error of a cancel that comes then.
        self.waiting_for = "a concurrency slot"
        #: The call's client cancelled it or went away (the cancel watch saw it).
        self.client_left = False
        #: The query waits to be admitted (for a slot or memory), rather than being started.
        self.waiting = False

    def stopped(self) -> GatewayError | None:
        """Why the query should stop waiting (None: it goes on)."""
        return self._error

    def stop(self, error: GatewayError) -> None:
        """Stop the query: a waiting one leaves its queue with ``error``, a running one is cancelled."""
        if self._error is None:
            self._error = error
        running = self._running
        if running is not None:
            running.cancel()
        else:
            self._wake()

    def cancelled(self) -> None:
        """A cancel request (CancelFlightInfo) names the query."""
        self.stop(QueryCancelledError(f"the query was cancelled while it waited for {self.waiting_for}"))

    def client_gone(self) -> None:
        """The client cancelled the call, went away, or its deadline passed."""
        self.client_left = True
        self.stop(QueryCancelledError(
            f"the client cancelled the call or went away while the query waited for {self.waiting_for}"))

    @property
    def reached(self) -> bool:
        """Whether the query's stream runs (a stop cancels it there)."""
        return self._running is not None

    def reaches(self, running: RunningQuery) -> None:
        """From now on a stop cancels ``running`` (at once, if one came while it was being started)."""
        self._running = running
        if self._error is not None:
            running.cancel()


class _Clock:
    """Milliseconds since the clock was made, and named phases between marks."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.phases: dict[str, float] = {}
        self._last = self.started

    def now_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        # A phase marked twice (admission: the caller's limits, then memory) adds up.
        self.phases[phase] = self.phases.get(phase, 0.0) + (now - self._last) * 1000.0
        self._last = now


class QueryService:
    """Routes SQL to a source, asks its backend for schemas and streams, and tracks what runs.

    Args:
        sources: Where sources are found.
        limits: The server's limits on each query (time, message size, result caps).
        validate_sql: False switches the read-only validator off (the backends' own guards still hold).
        observers: Called with a ``QueryEvent`` when each query ends.
        validation_limits: The validator's limits for sources that set none.
        policy: Who may see which sources and read which tables; by default the grants installed as
            ``access`` (``server/security``), and with none (authentication off) everyone everything.
        limiter: Each principal's query rate, concurrency, rows, bytes and time (by default one holding callers
            who did not sign in to no limits).
        memory_budget: The gateway-wide memory budget queries are admitted within (None: no budget).

    """

    def __init__(
        self,
        sources: SourceDirectory,
        limits: QueryLimits,
        validate_sql: bool = True,
        observers: Sequence[QueryObserver] = (),
        validation_limits: ValidationLimits | None = None,
        policy: AccessPolicy | None = None,
        limiter: PrincipalLimiter | None = None,
        memory_budget: MemoryBudget | None = None,
    ) -> None:
        self.sources = sources
        #: Admission by memory: each query reserves its memory limit while it runs (None: no budget).
        self.memory_budget = memory_budget or MemoryBudget(None)
        self.limits = limits
        self.validate_sql = validate_sql
        self.validation_limits = validation_limits or ValidationLimits()
        self.observers = list(observers)
        #: Grants (None: everyone may read everything, as with authentication off).
        self.access: QueryAccess | None = None
        self.policy = policy or GrantedAccess(lambda: self.access, self._default_schema, self._table_columns,
                                              self.identifiers)
        self.limiter = limiter or PrincipalLimiter()
        self._running: dict[bytes, list[RunningQuery]] = {}
        #: Queries being admitted (they may wait for a slot or memory) or started, until their stream is registered,
        #: by key: a cancel or a drain stops their wait, or the query once it runs.
        self._starting_queries: dict[bytes, list[_Canceller]] = {}
        #: Why queries may no longer wait for memory (the gateway drains); None while serving.
        self._closing: Callable[[], GatewayError] | None = None
        #: (id of a plan, the SQL its policies made of it) -> (that plan, the routed rewritten plan)
        self._dispatched: dict[tuple[int, str], tuple[QueryPlan, QueryPlan]] = {}
        #: (id of a backend with stable schemas, SQL, parameter count) -> (that backend, result, parameters)
        self._schemas: LRU[tuple[Backend, pa.Schema, pa.Schema]] = LRU(4096, 4_000_000)
        self._lock = threading.Lock()
        self._watch = CancelWatch()
        #: Cancels between replicas (None: this process alone).
        self._remote: RemoteCancel | None = None

    # -- what a principal may see ----------------------------------------------------------------------------

    def catalogs(self, principal: Principal) -> list[str]:
        """The sources ``principal`` may see, sorted."""
        return self.policy.visible_sources(principal, self.sources.names())

    def default_catalog(self, principal: Principal) -> str | None:
        """The source a query without a catalog runs on, if ``principal`` may see it."""
        default = self.sources.default()
        return default if default is not None and default in self.catalogs(principal) else None

    # -- planning ------------------------------------------------------------------------------------------

    def route(self, request: QueryRequest) -> QueryPlan:
        """Validate the request's SQL and bind it to its source: the plan, not yet looked at by any backend.

        Raises:
            GatewayError: rejected, unparseable, naming an unknown (or invisible) source, or not readable by
                the principal.

        """
        names = self.catalogs(request.principal)
        default = self.sources.default()
        if default is None:
            raise NotFoundError("no data source is configured")
        # Sources the caller may not see are not routed to: naming one reads like naming none. The default stays
        # (a query naming no source goes there, and is then refused by the policy).
        routable = sorted({*names, default})
        profiles = {name: self._limited(self.sources.route_target(name)) for name in routable}
        with tracer.start_as_current_span("validate"):
            plan = route(
                request.sql,
                sources=profiles,
                session_catalog=request.catalog,
                default_source=default,
                client_dialect=request.dialect,
                validate_sql=self.validate_sql,
                tree_wanted=self.policy.reads_plans(request.principal, request.catalog or default),
            )
        self.policy.check_query(request.principal, plan)
        return plan

    def authorize(self, plan: QueryPlan, principal: Principal) -> None:
        """Refuse a planned query ``principal`` may not run (at each execution: grants may have changed).

        Raises:
            ForbiddenError: PERMISSION_DENIED naming the object.

        """
        self.policy.check_query(principal, plan)

    def _default_schema(self, source: str) -> str | None:
        return self.sources.backend(source).default_schema

    def identifiers(self, source: str) -> IdentifierRules:
        """How ``source``'s engine resolves and compares names (case-insensitive for a source not served)."""
        try:
            return rules_of(self.sources.backend(source))
        except GatewayError:
            return CASE_INSENSITIVE

    def dispatched(self, plan: QueryPlan, principal: Principal) -> tuple[QueryPlan, bool]:
        """The plan a backend receives for ``principal``: row filters and column masks applied; True if changed.

        The rewritten SQL is routed afresh, so the read-only validator judges it like any other statement.

        Raises:
            ForbiddenError: the policies cannot be applied with certainty.
            GatewayError: the rewritten statement is refused by the validator.

        """
        access = self.access
        if access is None or not principal.authenticated or principal.is_admin:
            return plan, False
        sql = access.apply_policies(principal, plan, self.sources.backend, self._default_schema(plan.source),
                                    lambda: self._limited(self.sources.route_target(plan.source)))
        if sql is None:
            return plan, False
        # Plans are shared and remade when a source's profile changes: the same plan rewritten the same way is
        # routed once (the entry keeps its plan, so an id is never mistaken for another plan's).
        key = (id(plan), sql)
        kept = self._dispatched.get(key)
        if kept is not None and kept[0] is plan:
            return kept[1], True
        rewritten = self._rewritten(plan, sql)
        # The part of a split result a plan reads is the rewritten plan's too (its rows are the part's rows).
        rewritten = dataclasses.replace(rewritten, file_part=plan.file_part,
                                        upstream_partitions=plan.upstream_partitions,
                                        upstream_whole=plan.upstream_whole)
        if len(self._dispatched) >= _MAX_DISPATCHED:
            self._dispatched = {}
        self._dispatched[key] = (plan, rewritten)
        return rewritten, True

    def _rewritten(self, plan: QueryPlan, sql: str) -> QueryPlan:
        """``sql`` (``plan``'s statement with the caller's policies applied) routed afresh to ``plan``'s source."""
        profile = self._limited(self.sources.route_target(plan.source))
        rewritten = route(sql, sources={plan.source: profile}, session_catalog=plan.source,
                          default_source=plan.source, validate_sql=self.validate_sql)
        if rewritten.parameter_count != plan.parameter_count:
            raise ForbiddenError("permission denied: the query's parameters cannot be kept through its policies")
        return rewritten

    def _table_columns(self, source: str, db_schema: str | None, table: str) -> list[str] | None:
        """A table's column names, from the source's schema cache (None: not found), found as its engine finds it."""
        if db_schema is None:
            return None
        schema = resolved_table_schema(self.sources.backend(source), db_schema, table)
        return None if schema is None else list(schema.names)

    def _limited(self, target: SourceProfile) -> SourceProfile:
        """The server's validation limits apply to sources that do not set their own."""
        if target.limits == ValidationLimits():
            return dataclasses.replace(target, limits=self.validation_limits)
        return target

    def plan(self, request: QueryRequest) -> PreparedQuery:
        """Route the request and return it with its result schema and parameter schema, without running it.

        Raises:
            GatewayError: as ``route``, or the backend cannot describe the query.

        """
        clock = _Clock()
        source = None
        try:
            plan = self.route(request)
            source = plan.source
            clock.mark("validate")
            # The query's work starts here (the engine plans it): its rate token is taken now, once.
            prepaid = self.limiter.charge(request.principal)
            backend = self.sources.backend(plan.source)
            dispatched, _ = self.dispatched(plan, request.principal)
            with tracer.start_as_current_span("plan", attributes={"nexus.source": plan.source}), planning(self.limits):
                # Planning may cost the engine work (constant folding, first rows): it runs under the query's limits.
                dataset, parameters = self._schemas_of(backend, dispatched)
            clock.mark("plan")
            return PreparedQuery(plan, dataset, parameters, clock.phases, prepaid)
        except GatewayError as exc:
            exc.with_context(source=source)
            self._emit_failure(request.sql, request.principal, source, exc, clock,
                               correlation_id=request.correlation_id, address=request.address)
            raise

    def _schemas_of(self, backend: Backend, plan: QueryPlan) -> tuple[pa.Schema, pa.Schema]:
        """A statement's result and parameter schemas; asked once per text where a backend's cannot change."""
        if not backend.capabilities.stable_schemas:
            return backend.get_schema(plan), backend.get_parameter_schema(plan)
        # The entry holds the backend, so its id names no other backend while the entry lives.
        kept = self._schemas.get_or_compute(
            (id(backend), plan.sql, plan.parameter_count), len(plan.sql),
            lambda: (backend, backend.get_schema(plan), backend.get_parameter_schema(plan)),
        )
        return kept[1], kept[2]

    def split(self, plan: QueryPlan, principal: Principal, most: int) -> list[QueryPlan]:
        """The plans of the endpoints ``plan``'s result is served as for ``principal`` (``[plan]``: one).

        The source splits the plan its backend would run (the caller's policies applied); each part keeps
        ``plan`` itself and names its part, so that every execution applies the policies again.
        """
        if most < 2:
            return [plan]
        try:
            dispatched, _ = self.dispatched(plan, principal)
            with planning(self.limits):
                parts = self.sources.backend(plan.source).split(dispatched, most)
        except GatewayError as exc:
            log.debug("serving %s whole: %s", plan.source, exc.message)
            return [plan]  # the one execution reports the problem
        if parts == [dispatched]:
            return [plan]
        return [dataclasses.replace(plan, file_part=part.file_part, upstream_partitions=part.upstream_partitions,
                                    upstream_whole=part.upstream_whole)
                for part in parts]

    def bound_schema(self, plan: QueryPlan, parameters: Rows | None, principal: Principal) -> pa.Schema | None:
        """The result schema of a prepared query once its parameters are bound (None: the prepared one stands).

        Raises:
            GatewayError: the parameters do not bind.

        """
        if not parameters:
            return None
        clock = _Clock()
        try:
            dispatched, _ = self.dispatched(plan, principal)
            return self.sources.backend(plan.source).get_bound_schema(dispatched, parameters)
        except GatewayError as exc:
            exc.with_context(source=plan.source)
            self._emit_failure(plan.sql, principal, plan.source, exc, clock)
            raise

    # -- execution -----------------------------------------------------------------------------------------

    def open(self, run: QueryRun, watch: Watchable | None = None) -> RunningQuery:
        """Start a planned query and wait for its first batch; return it running.

        With ``watch`` (the client's call), the query stops as soon as the client cancels the call or goes away.
        The principal's limits apply here: its rate and concurrency admit the run (a concurrency slot is held
        until ``finish``), its rows, bytes and time lower the server's.

        Raises:
            GatewayError: the query failed to start, or a limit refused it (the failure is recorded).

        """
        query_id = uuid.uuid4().hex
        clock = _Clock()
        plan = run.plan
        span = tracer.start_span(
            "query",
            attributes={"nexus.source": plan.source, "nexus.query_id": query_id,
                        "nexus.correlation_id": run.correlation_id or ""},
        )
        stream: ResultStream | None = None
        reservation: Reservation | None = None
        running: RunningQuery | None = None
        canceller = _Canceller(self._wake_waiting)
        unwatch: Callable[[], None] = _nothing
        rewritten = False
        slot = Slot()
        try:
            with trace.use_span(span, end_on_exit=False):
                self.policy.check_query(run.principal, plan)
                if self._cancelled_before_start(run.key):
                    raise QueryCancelledError("the query was cancelled (CancelFlightInfo) before it started")
                limits = dataclasses.replace(self.limiter.query_limits(run.principal, self.limits),
                                             correlation_id=run.correlation_id)
                # The query's time runs from here: waiting for a slot or for memory counts against it.
                began = time.monotonic()
                waiting = self._waiting_stop(canceller, limits, plan.source, began + limits.timeout_seconds)
                if watch is not None:  # from here the client's cancel stops the query, waiting or running
                    unwatch = self._watch.watch(watch, canceller.client_gone)
                # Until its stream is registered, a cancel (or the drain's) reaches the query through its
                # canceller: one that lands after admission, while the engine opens its cursor, is not lost.
                with self._starting(run.key, canceller):
                    canceller.waiting = True
                    slot = self.limiter.admit(run.principal, plan.source, waiting, prepaid=run.prepaid)
                    clock.mark("admit")
                    dispatched, rewritten = self.dispatched(plan, run.principal)
                    with tracer.start_as_current_span("connect"):
                        backend = self.sources.backend(plan.source)
                    clock.mark("connect")
                    memory = self.memory_limit(backend, run.principal)
                    limits = dataclasses.replace(limits, memory_limit_bytes=memory)
                    canceller.waiting_for = "memory"
                    with tracer.start_as_current_span("admit"):
                        reservation = self.memory_budget.admit(memory, plan.source, waiting)
                    canceller.waiting = False
                    clock.mark("admit")
                    with reading_for(_own_rows_of(run.principal)):
                        execution = backend.execute(dispatched, run.parameters, limits)
                    # The engine took its instance (an idle one, or a fresh one that holds nothing yet): idle
                    # memory now gives way to this query's reservation before the query runs.
                    self.memory_budget.settle()
                    stream = ResultStream(execution, run.schema, limits, plan.source, started=began)
                    running = RunningQuery(stream)
                    self._register(run.key, running)  # before the engine blocks, so that cancel can reach it
                    canceller.reaches(running)
                with tracer.start_as_current_span("execute"):
                    stream.start()
                clock.mark("execute")
        except BaseException as exc:
            # Whatever failed, what the query held is given back: the engine's cursor, the memory reserved.
            unwatch()
            slot.release()
            if running is not None:
                self._forget(run.key, running)
            if stream is not None:
                stream.close()
            if reservation is not None:
                reservation.release()
            if not isinstance(exc, GatewayError):
                span.end()
                raise
            exc.with_context(source=plan.source, query_id=query_id)
            span.set_attribute("nexus.status", _status_of(exc, planning=False))
            span.record_exception(exc)
            span.end()
            # A run refused for now (retryable) has not ended: the client may redeem its ticket again.
            ended = key_hash(run.key) if run.key and not isinstance(exc, RetryLaterError) else None
            self._emit_failure(run.client_sql or plan.sql, run.principal, plan.source, exc, clock, query_id,
                               run.correlation_id,
                               address=run.address, policy_rewritten=rewritten, ticket_sha256=ended)
            raise

        stream_span = tracer.start_span("stream", context=trace.set_span_in_context(span))

        def finished(error: GatewayError | None) -> None:
            stream_span.end()
            unwatch()
            self._forget(run.key, running)
            try:
                stream.close()
            finally:  # whatever the engine says while letting go, the query's slot and memory are given back
                slot.release()
                reservation.release()  # after the engine let go of what it held
            clock.mark("stream")
            ended = stream.error or stream.stop_error() or error
            # gRPC ends the call without an error when the client's connection drops mid-stream; or the cancel
            # watch saw it first and interrupted the engine: either way the record says the client left.
            if (ended is None and not stream.complete) or (
                    canceller.client_left and isinstance(ended, QueryCancelledError)):
                ended = QueryCancelledError(f"the client went away after {stream.stats.rows} rows were sent")
            status = "success" if ended is None else _status_of(ended, planning=False)
            span.set_attribute("nexus.status", status)
            span.set_attribute("nexus.rows", stream.stats.rows)
            span.end()
            timings = {"total": clock.now_ms(), **run.plan_timings, **clock.phases}
            if stream.stats.first_batch_ms is not None:
                timings["first_batch"] = stream.stats.first_batch_ms
            self._emit(QueryEvent(
                query_id=query_id, correlation_id=run.correlation_id, principal=run.principal, source=plan.source,
                sql=run.client_sql or plan.sql, status=status, error=ended.message if ended else None,
                error_code=ended.code if ended else None, rows=stream.stats.rows, bytes=stream.stats.bytes,
                table_version=_versions(stream.execution.read_versions), timings_ms=timings,
                parameters=len(run.parameters or ()), client_address=run.address, policy_rewritten=rewritten,
                ticket_sha256=key_hash(run.key) if run.key else None,
            ))

        running._on_finish = finished
        return running

    def memory_limit(self, backend: Backend, principal: Principal) -> int:
        """Bytes one query may hold: the caller's ``memory_limit_mb``, else the source's own, else the server's."""
        own = principal.limits.get("memory_limit_mb")
        if own:
            return int(own * 2**20)
        source = backend.query_memory_limit
        if source:
            return parse_size(source)
        return self.limits.memory_limit_bytes or 1 << 30

    def _waiting_stop(self, canceller: _Canceller, limits: QueryLimits, source: str,
                      deadline: float) -> Callable[[], GatewayError | None]:
        """Why a query being admitted should stop waiting: a cancel, its client gone, a drain, its time limit."""

        def stopped() -> GatewayError | None:
            error = canceller.stopped() or (self._closing() if self._closing is not None else None)
            if error is None and time.monotonic() >= deadline:
                error = time_limit_error(limits, source, f"while it waited for {canceller.waiting_for}")
            return error

        return stopped

    @contextlib.contextmanager
    def _starting(self, key: bytes, canceller: _Canceller) -> Iterator[None]:
        """While a query is admitted (it may wait in a queue) and started, ``cancel`` and the drain reach it."""
        with self._lock:
            self._starting_queries.setdefault(key, []).append(canceller)
        try:
            yield
        finally:
            with self._lock:
                _drop(self._starting_queries, key, canceller)

    def _wake_waiting(self) -> None:
        """Make every query waiting to be admitted look at once whether it should stop waiting."""
        self.limiter.wake()
        self.memory_budget.wake()

    def stop_waiting(self, refusal: Callable[[], GatewayError]) -> None:
        """From now on, a query that would wait (for a slot or memory) is refused with ``refusal()`` (a drain), at once.

        Queries waiting now leave their queue; a query that is admitted without waiting still starts (a ticket
        handed out before the drain is still served).
        """
        self._closing = refusal
        self._wake_waiting()

    def waiting_count(self) -> int:
        """How many queries are being admitted (waiting for a concurrency slot or for room in the memory budget)."""
        with self._lock:
            return sum(entry.waiting for entries in self._starting_queries.values() for entry in entries)

    def _register(self, key: bytes, running: RunningQuery) -> None:
        with self._lock:
            self._running.setdefault(key, []).append(running)

    def _forget(self, key: bytes, running: RunningQuery) -> None:
        with self._lock:
            _drop(self._running, key, running)

    def cancel(self, key: bytes) -> bool:
        """Stop every running or waiting query of ``key``; True when something was running or waiting."""
        with self._lock:
            entries = list(self._running.get(key, []))
            waiting = list(self._starting_queries.get(key, []))
        for entry in entries:
            entry.cancel()
        for canceller in waiting:
            canceller.cancelled()
        return bool(entries or waiting)

    def share_cancels(self, shared: SharedCancels) -> None:
        """Carry cancels to and from the replicas sharing ``shared`` (the catalog)."""
        self._remote = RemoteCancel(shared, self._running_keys, self.cancel)

    def _cancelled_before_start(self, key: bytes) -> bool:
        """Whether a cancel sent to any replica named ``key`` before its query started (a catalog lookup)."""
        if self._remote is None or not key:
            return False
        try:
            return self._remote.refused_before_start(key)
        except Exception as exc:  # the catalog may be away for a moment: the query runs, cancels reach it later
            log.warning("could not read the cancel requests of other replicas: %s", exc)
            return False

    def _running_keys(self) -> list[bytes]:
        """The keys of queries running here, or being admitted, and not stopped yet.

        A cancel from another replica can still stop them; a waiting query may wait longer than a request stays fresh.
        """
        with self._lock:
            running = {key for key, entries in self._running.items()
                       if key and any(entry.stream.stopped is None for entry in entries)}
            starting = {key for key, cancellers in self._starting_queries.items()
                        if key and any(canceller.stopped() is None for canceller in cancellers)}
        return sorted(running | starting)

    def cancel_elsewhere(self, keys: Sequence[bytes]) -> bool:
        """Stop the queries of ``keys`` on the replica that runs them; True when one was running there.

        Raises:
            BackendUnavailableError: the shared catalog could not carry the request.

        """
        if self._remote is None or not keys:
            return False
        try:
            return self._remote.ask(keys)
        except Exception as exc:
            log.warning("a cancel could not be passed to the other replicas: %s", exc)
            raise BackendUnavailableError("the cancel could not be passed to the other replicas (the catalog "
                                          "does not answer): retry") from None

    def cancel_all(self) -> int:
        """Stop every running query (the end of a drain); return how many there were."""
        with self._lock:
            entries = [entry for running in self._running.values() for entry in running]
            starting = [entry for cancellers in self._starting_queries.values() for entry in cancellers
                        if not entry.reached]
        for entry in entries:
            entry.cancel()
        for canceller in starting:  # admitted before the drain, its stream not registered yet
            canceller.cancelled()
        return len(entries) + len(starting)

    def running_count(self) -> int:
        """How many queries are streaming now."""
        with self._lock:
            return sum(len(v) for v in self._running.values())

    def in_flight_count(self) -> int:
        """How many queries a drain lets finish: those streaming, and those admitted and being started."""
        with self._lock:
            starting = sum(not entry.waiting and not entry.reached
                           for entries in self._starting_queries.values() for entry in entries)
            return starting + sum(len(v) for v in self._running.values())

    # -- recording -----------------------------------------------------------------------------------------

    def _emit_failure(self, sql: str, principal: Principal, source: str | None, exc: GatewayError, clock: _Clock,
                      query_id: str | None = None, correlation_id: str | None = None,
                      address: str | None = None, policy_rewritten: bool = False,
                      ticket_sha256: str | None = None) -> None:
        self._emit(QueryEvent(
            query_id=query_id or uuid.uuid4().hex, correlation_id=correlation_id, principal=principal,
            source=source, sql=sql, status=_status_of(exc, planning=query_id is None), error=exc.message,
            error_code=exc.code, timings_ms={"total": clock.now_ms()}, client_address=address,
            policy_rewritten=policy_rewritten, ticket_sha256=ticket_sha256,
        ))

    def _emit(self, event: QueryEvent) -> None:
        log.debug("query %s source=%s user=%s status=%s total_ms=%.1f", event.query_id, event.source,
                  event.principal.name, event.status, event.timings_ms.get("total", 0.0))
        for observer in self.observers:
            try:
                observer(event)
            except Exception:  # an observer must never fail the query it reports on
                log.exception("query observer failed")


def _release(batches: Iterator[pa.RecordBatch] | None) -> None:
    """Close a stream's generator so its frame lets go of the engine's reader and the batch it was holding.

    A stream whose client went away is never exhausted; the suspended generator keeps the reader alive through a
    cycle via the C++ stream that Python's collector cannot see.
    """
    close = getattr(batches, "close", None)  # a generator's; None before the stream was iterated
    if close is None:
        return
    try:
        close()
    except ValueError:  # still running on another thread
        pass


def _drop(table: dict[bytes, list[_Entry]], key: bytes, entry: _Entry) -> None:
    """Remove ``entry`` from ``table[key]``, and the key once it holds nothing (the caller holds the lock)."""
    entries = table.get(key, [])
    if entry in entries:
        entries.remove(entry)
    if not entries:
        table.pop(key, None)


def _own_rows_of(principal: Principal) -> str | None:
    """Whose rows alone a query of ``principal`` reads where a source holds every user's (None: all rows)."""
    return principal.name if principal.authenticated and not principal.is_admin else None


def _nothing() -> None:
    return None


_STATUS_BY_CODE = {"DEADLINE_EXCEEDED": "timeout", "CANCELLED": "cancelled", "PERMISSION_DENIED": "rejected"}


def _status_of(error: GatewayError, planning: bool) -> str:
    """History's status of a failed query: a refusal while planning (bad SQL, a write) or by a limit is "rejected"."""
    if (planning and error.code == "INVALID_ARGUMENT") or isinstance(error, RetryLaterError):
        return "rejected"
    return _STATUS_BY_CODE.get(error.code, "error")


def _versions(read: Mapping[str, str] | None) -> str | None:
    if not read:
        return None
    return ", ".join(f"{table}@{version}" for table, version in sorted(read.items()) if version is not None) or None
