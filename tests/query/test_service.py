"""The protocol-free query service, unit by unit: plan, open, stream, cancel, time out, cap, account, access.

A fake backend and a fake source directory stand in for engines here (the end-to-end tests run the same
service behind Flight against real engines): they let each test drive one decision of the service (a stop, a
failure mid-stream, a slow first batch) in milliseconds. Nothing here builds a Flight message or ticket.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pytest

from nexus_flight.backends.base import Backend, Execution
from nexus_flight.core.errors import (
    BackendUnavailableError,
    ForbiddenError,
    GatewayError,
    InvalidQueryError,
    LimitExceededError,
    NotFoundError,
    QueryCancelledError,
    QueryTimeoutError,
)
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.source import QueryLimits, SourceProfile
from nexus_flight.server.query.access import AccessPolicy
from nexus_flight.server.query.principal import Principal
from nexus_flight.server.query.service import QueryEvent, QueryRequest, QueryRun, QueryService
from nexus_flight.server.query.sql import routing

SCHEMA = pa.schema([("n", pa.int64())])
ALICE = Principal("alice", roles=frozenset({"analyst"}), auth_method="password", authenticated=True)


class FakeExecution(Execution):
    """Batches from a script: a list of batches and exceptions, or a wait for ``cancel`` (``"block"``)."""

    def __init__(self, script: Sequence[Any], start_error: Exception | None = None) -> None:
        self.script = list(script)
        self.start_error = start_error
        self.cancelled = threading.Event()
        self.closed = False
        self._reader: pa.RecordBatchReader | None = None

    @property
    def reader(self) -> pa.RecordBatchReader:
        if self._reader is None:
            if self.start_error is not None:
                raise self.start_error
            self._reader = pa.RecordBatchReader.from_batches(SCHEMA, self._batches())
        return self._reader

    def _batches(self) -> Iterator[pa.RecordBatch]:
        for step in self.script:
            if step == "block":
                if not self.cancelled.wait(10):
                    raise AssertionError("never cancelled")
                raise pa.ArrowCancelled("interrupted")  # what an interrupted engine says
            if isinstance(step, Exception):
                raise step
            yield step

    def cancel(self) -> None:
        self.cancelled.set()

    def close(self) -> None:
        self.closed = True


class FakeBackend(Backend):
    """Answers from a fixed schema; each ``execute`` hands out the next scripted execution."""

    kind = "fake"
    dialect = "duckdb"
    read_only_guard = "none: a test double"

    def __init__(self, name: str = "main") -> None:
        self._name = name
        self.plans: list[QueryPlan] = []
        self.executions: list[FakeExecution] = []

    @property
    def name(self) -> str:
        return self._name

    def get_schema(self, plan: QueryPlan) -> pa.Schema:
        self.plans.append(plan)
        return SCHEMA

    def execute(self, plan: QueryPlan, parameters, limits: QueryLimits) -> Execution:
        self.plans.append(plan)
        return self.executions.pop(0)

    def list_schemas(self) -> list[str]:
        return ["main"]

    def list_tables(self, db_schema=None):
        return []

    def table_schema(self, db_schema: str, table: str) -> pa.Schema:
        return SCHEMA


class FakeDirectory:
    """Two DuckDB-dialect sources, ``main`` (the default) and ``other``."""

    def __init__(self) -> None:
        self.backends = {"main": FakeBackend("main"), "other": FakeBackend("other")}

    def names(self) -> list[str]:
        return sorted(self.backends)

    def default(self) -> str | None:
        return "main"

    def route_target(self, name: str) -> SourceProfile:
        return SourceProfile(dialect="duckdb")

    def backend(self, name: str) -> Backend:
        try:
            return self.backends[name]
        except KeyError:
            raise NotFoundError(f"unknown catalog {name!r}") from None

    def close(self) -> None:
        return None


def batch(*values: int) -> pa.RecordBatch:
    return pa.record_batch([pa.array(values, pa.int64())], schema=SCHEMA)


@pytest.fixture
def events() -> list[QueryEvent]:
    return []


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()


@pytest.fixture
def service(directory, events) -> QueryService:
    return QueryService(directory, QueryLimits(timeout_seconds=5), observers=[events.append])


def run_of(service: QueryService, sql: str, principal: Principal = ALICE, key: bytes = b"k") -> QueryRun:
    prepared = service.plan(QueryRequest(sql, principal))
    return QueryRun(prepared.plan, prepared.dataset_schema, principal, plan_timings=prepared.timings_ms, key=key)


def drain(running) -> list[pa.RecordBatch]:
    try:
        return list(running)
    finally:
        running.finish()


# -- planning ------------------------------------------------------------------------------------------------


def test_plan_carries_the_analysed_tree_to_the_backend(service, directory):
    prepared = service.plan(QueryRequest("SELECT n FROM t WHERE n < ?", ALICE))
    plan = prepared.plan
    assert (plan.source, plan.sql, plan.parameter_count, plan.dialect) == ("main", "SELECT n FROM t WHERE n < ?",
                                                                            1, "duckdb")
    assert plan.validated and plan.tree is not None
    assert [t.name for t in plan.tables] == ["t"]
    assert directory.backends["main"].plans == [plan]  # the backend reads the plan, never the text alone
    assert prepared.dataset_schema == SCHEMA
    assert len(prepared.parameter_schema) == 1


def test_a_query_naming_another_source_is_routed_there(service):
    plan = service.plan(QueryRequest("SELECT n FROM other.main.t", ALICE)).plan
    assert plan.source == "other"
    assert plan.sql == "SELECT n FROM main.t"


def test_the_validator_runs_once_per_statement_and_once_more_on_a_rewrite(service, monkeypatch):
    checks: list[str] = []
    real = routing.analyze

    def counting(sql, *args, **kwargs):
        if kwargs.get("check", True) and len(args) >= 3:
            checks.append(sql)
        return real(sql, *args, **kwargs)

    monkeypatch.setattr(routing, "analyze", counting)
    routing.clear_plans()
    service.plan(QueryRequest("SELECT 41 + 1 AS answer_once", ALICE))
    assert checks == ["SELECT 41 + 1 AS answer_once"]
    checks.clear()
    service.plan(QueryRequest("SELECT n FROM other.main.t -- once more", ALICE))
    assert checks == ["SELECT n FROM other.main.t -- once more", "SELECT n FROM main.t /* once more */"]


def test_a_refused_plan_is_recorded_as_rejected_with_its_principal(service, events):
    with pytest.raises(GatewayError) as refused:
        service.plan(QueryRequest("DELETE FROM t", ALICE))
    assert events[-1].status == "rejected"
    assert events[-1].principal == ALICE and events[-1].user == "alice"
    assert events[-1].error_code == refused.value.code


# -- running ---------------------------------------------------------------------------------------------------


def test_open_streams_counts_and_records_once(service, directory, events):
    execution = FakeExecution([batch(1, 2), batch(3)])
    directory.backends["main"].executions.append(execution)
    running = service.open(run_of(service, "SELECT n FROM t"))
    assert service.running_count() == 1
    assert [b.num_rows for b in drain(running)] == [2, 1]
    running.finish()  # a second finish changes nothing
    assert service.running_count() == 0 and execution.closed
    event = events[-1]
    assert (event.status, event.rows, event.principal, event.source) == ("success", 3, ALICE, "main")
    assert event.bytes == batch(1, 2).nbytes + batch(3).nbytes
    assert {"validate", "plan", "connect", "execute", "stream", "total"} <= set(event.timings_ms)


def test_a_failure_to_start_is_raised_and_recorded(service, directory, events):
    directory.backends["main"].executions.append(FakeExecution([], start_error=InvalidQueryError("no such column")))
    with pytest.raises(InvalidQueryError, match="no such column"):
        service.open(run_of(service, "SELECT n FROM t"))
    assert service.running_count() == 0
    assert (events[-1].status, events[-1].error_code) == ("error", "INVALID_ARGUMENT")


def test_an_engine_failure_mid_stream_is_classified_once(service, directory, events):
    directory.backends["main"].executions.append(FakeExecution([batch(1), OSError("connection reset")]))
    running = service.open(run_of(service, "SELECT n FROM t"))
    with pytest.raises(BackendUnavailableError, match="connection reset"):
        drain(running)
    assert (events[-1].status, events[-1].error_code, events[-1].rows) == ("error", "UNAVAILABLE", 1)


def test_cancel_wins_over_what_the_interrupted_engine_says(service, directory, events):
    directory.backends["main"].executions.append(FakeExecution([batch(1), "block"]))
    running = service.open(run_of(service, "SELECT n FROM t", key=b"handle"))
    batches = iter(running)
    assert next(batches).num_rows == 1
    threading.Timer(0.05, lambda: service.cancel(b"handle")).start()
    with pytest.raises(QueryCancelledError):
        next(batches)
    running.finish()
    assert (events[-1].status, events[-1].error_code) == ("cancelled", "CANCELLED")
    assert service.cancel(b"handle") is False  # nothing runs under that key any more


def test_the_server_time_limit_stops_the_engine_and_says_timeout(directory, events):
    service = QueryService(directory, QueryLimits(timeout_seconds=0.1), observers=[events.append])
    execution = FakeExecution(["block"])
    directory.backends["main"].executions.append(execution)
    started = time.monotonic()
    running = service.open(run_of(service, "SELECT n FROM t"))
    with pytest.raises(QueryTimeoutError, match="query_timeout=0.1s"):
        drain(running)
    assert execution.cancelled.is_set() and time.monotonic() - started < 5
    assert (events[-1].status, events[-1].error_code) == ("timeout", "DEADLINE_EXCEEDED")


def test_a_cancel_that_blocks_in_its_engine_holds_back_no_other_querys_time_limit(directory, events):
    """Every query's time limit fires on one watchdog thread; an engine's cancel may block there (MariaDB's KILL
    opens a connection of its own, to a server busy enough for queries to time out). The moment is forced: the
    first query's cancel is held; the second query's limit must still stop it on time.
    """
    service = QueryService(directory, QueryLimits(timeout_seconds=0.2), observers=[events.append])
    release = threading.Event()

    class HeldCancel(FakeExecution):
        def cancel(self) -> None:
            release.wait(5)  # a cancel request still connecting
            super().cancel()

    held, other = HeldCancel(["block"]), FakeExecution(["block"])
    directory.backends["main"].executions.extend([held, other])
    first = service.open(run_of(service, "SELECT n FROM t", key=b"first"))
    second = service.open(run_of(service, "SELECT n FROM t", key=b"second"))
    try:
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError):
            drain(second)
        assert time.monotonic() - started < 2.5, "the second query's time limit waited for the first's cancel"
    finally:
        release.set()
    with pytest.raises(QueryTimeoutError):
        drain(first)


def test_a_client_that_goes_away_stops_its_query(service, directory, events):
    class Call:
        gone = False

        def is_cancelled(self) -> bool:
            return self.gone

    call = Call()
    execution = FakeExecution(["block"])
    directory.backends["main"].executions.append(execution)
    running = service.open(run_of(service, "SELECT n FROM t"), watch=call)
    call.gone = True
    with pytest.raises(QueryCancelledError):
        drain(running)
    assert execution.cancelled.is_set()
    assert events[-1].status == "cancelled"


@pytest.mark.parametrize(("cap", "value"), [("max_result_rows", 2), ("max_result_bytes", 20)])
def test_a_result_cap_stops_the_query_naming_the_cap(directory, events, cap, value):
    service = QueryService(directory, QueryLimits(**{cap: value}), observers=[events.append])
    execution = FakeExecution([batch(1, 2), batch(3, 4), batch(5)])
    directory.backends["main"].executions.append(execution)
    running = service.open(run_of(service, "SELECT n FROM t"))
    got: list[pa.RecordBatch] = []
    with pytest.raises(LimitExceededError, match=f"{cap}={value}"):
        for b in running:
            got.append(b)
    running.finish()
    assert [b.num_rows for b in got] == [2]  # the batch that would cross the cap is not sent
    assert execution.cancelled.is_set()
    assert (events[-1].status, events[-1].rows) == ("error", 2)


def test_batches_are_conformed_to_the_announced_schema(service, directory):
    announced = pa.schema([pa.field("n", pa.int64(), nullable=False)])
    directory.backends["main"].executions.append(FakeExecution([batch(1)]))
    prepared = service.plan(QueryRequest("SELECT n FROM t", ALICE))
    running = service.open(QueryRun(prepared.plan, announced, ALICE))
    assert [b.schema for b in drain(running)] == [announced]


# -- access ----------------------------------------------------------------------------------------------------


class OnlyMain(AccessPolicy):
    """Alice sees ``main`` only and may not read the table ``secret``."""

    def visible_sources(self, principal, sources):
        return [s for s in sources if s == "main"]

    def may_read(self, principal, source, tables, columns=()):
        return all(t.name != "secret" for t in tables)


def test_access_hides_sources_and_refuses_tables(directory, events):
    service = QueryService(directory, QueryLimits(), observers=[events.append], policy=OnlyMain())
    assert service.catalogs(ALICE) == ["main"]
    with pytest.raises(NotFoundError):
        service.plan(QueryRequest("SELECT n FROM other.main.t", ALICE))
    with pytest.raises(ForbiddenError, match="alice may not read secret"):
        service.plan(QueryRequest("WITH s AS (SELECT * FROM secret) SELECT * FROM s", ALICE))
    assert (events[-1].status, events[-1].error_code) == ("rejected", "PERMISSION_DENIED")
    assert service.plan(QueryRequest("WITH secret AS (SELECT 1 AS n) SELECT n FROM secret", ALICE))

