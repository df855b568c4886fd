"""The DuckDB engine every DuckDB-based adapter holds: its guards, its cursors and its empty database."""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa
import pytest

from nexus_flight.backends.duckdb_engine import DuckDBEngine
from nexus_flight.core.errors import NotFoundError, ReadOnlyViolationError
from nexus_flight.core.source import QueryLimits
from tests.support.results import held_then_cancelled, late

LIMITS = QueryLimits(timeout_seconds=30)


def run(engine: DuckDBEngine, sql: str, cursor=None) -> list[dict]:
    execution = engine.execute(sql, None, LIMITS, cursor)
    try:
        return execution.reader.read_all().to_pylist()
    finally:
        execution.close()


@pytest.fixture
def engine():
    engine = DuckDBEngine.empty("lake", memory_limit="64MB", threads=1)
    yield engine
    engine.close()


def test_empty_engine_is_read_only_sealed_and_has_the_sources_settings(engine):
    with pytest.raises(ReadOnlyViolationError):
        run(engine, "CREATE TABLE t AS SELECT 1 AS a")
    with pytest.raises(ReadOnlyViolationError):
        run(engine, "SELECT * FROM read_csv('/etc/hostname')")
    with pytest.raises(Exception, match="(?i)lock"):
        run(engine, "SET memory_limit = '8GB'")
    got = run(
        engine,
        "SELECT current_setting('memory_limit') AS m, current_setting('threads') AS t, "
        "current_setting('enable_external_access') AS e, current_setting('TimeZone') AS z",
    )
    assert got[0].pop("z") in ("UTC", "Etc/UTC")
    assert got == [{"m": "48.8 MiB", "t": 1, "e": False}]  # a query's instance: 80% of 64MB


def test_what_a_cursor_binds_is_that_cursors_alone(engine):
    first, second = engine.cursor(), engine.cursor()
    first.register("t", pa.table({"a": [1, 2]}))
    assert run(engine, "SELECT sum(a) AS s FROM t", first) == [{"s": 3}]
    with pytest.raises(NotFoundError):
        run(engine, "SELECT * FROM t", second)
    assert engine.schema_of("SELECT 1::DECIMAL(9,2) AS d").field("d").type == pa.decimal128(9, 2)


def test_empty_engine_removes_its_database_on_close():
    engine = DuckDBEngine.empty("lake")
    directory = os.path.dirname(engine.rows("SELECT path FROM duckdb_databases() WHERE NOT internal")[0][0])
    assert os.path.exists(os.path.join(directory, "empty.duckdb"))
    engine.close()
    assert not os.path.exists(directory)


@pytest.mark.parametrize("stem", ["memory", "system", "temp", "main", "nexus_query_base"])
def test_a_database_file_named_like_duckdbs_own_is_queried_as_duckdb_names_it(tmp_path, stem):
    """A file named ``memory.duckdb`` (or ``system``, ``temp``, ``main``: names DuckDB reserves) answers as DuckDB
    itself does when it opens that file: the same rows under the same qualified names."""
    path = tmp_path / f"{stem}.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE t AS SELECT 42 AS x, 'a''b' AS s")
    with duckdb.connect(str(path), read_only=True) as own:
        name = own.execute("SELECT current_database()").fetchone()[0]
        queries = ["SELECT * FROM t", f'SELECT x FROM "{name}".main.t', "SELECT current_database() AS db"]
        expected = [own.execute(sql).to_arrow_table() for sql in queries]
    engine = DuckDBEngine("named", str(path))
    try:
        for sql, want in zip(queries, expected, strict=True):
            execution = engine.execute(sql, None, QueryLimits())
            try:
                assert execution.reader.read_all().equals(want), sql
            finally:
                execution.close()
    finally:
        engine.close()


@pytest.fixture
def file_engine(tmp_path):
    path = tmp_path / "shop.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS i FROM range(5)")
    engine = DuckDBEngine("shop", str(path), memory_limit="64MB", threads=1)
    yield engine
    engine.close()


def run_judged(engine: DuckDBEngine, sql: str, validated: bool) -> list[dict]:
    execution = engine.execute(sql, None, LIMITS, validated=validated)
    try:
        return execution.reader.read_all().to_pylist()
    finally:
        execution.close()


def test_validated_queries_share_their_instances_cursor_and_find_the_sources_tables(file_engine):
    """One instance, one cursor for validated statements: no fresh connection and ``USE`` per query."""
    first = file_engine.query_cursor("64MB", validated=True)
    file_engine.close_cursor(first, drained=True)
    second = file_engine.query_cursor("64MB", validated=True)
    assert second is first
    file_engine.close_cursor(second, drained=True)
    assert run_judged(file_engine, "SELECT count(*) AS n FROM t", validated=True) == [{"n": 5}]
    assert run_judged(file_engine, "SELECT count(*) AS n FROM shop.main.t", validated=True) == [{"n": 5}]
    assert file_engine.query_cursor("64MB", validated=True) is first  # read to the end: kept


def test_a_query_stopped_before_its_end_does_not_leave_its_cursor_to_the_next(file_engine):
    """Its result may still be read from another thread: the shared cursor is closed, the next query opens one."""
    execution = file_engine.execute("SELECT range AS i FROM range(100000)", None, LIMITS, validated=True)
    stopped = execution._cursor
    execution.reader.read_next_batch()
    execution.close()
    following = file_engine.query_cursor("64MB", validated=True)
    assert following is not stopped
    file_engine.close_cursor(following, drained=True)
    assert run_judged(file_engine, "SELECT count(*) AS n FROM t", validated=True) == [{"n": 5}]


def test_an_unjudged_statement_gets_a_cursor_of_its_own_so_nothing_it_leaves_reaches_the_next(file_engine):
    """With the validator off, a temporary table (which DuckDB allows on a read-only database) or a variable
    made by one query is gone for the next, whether that one was judged or not."""
    assert run_judged(file_engine, "CREATE TEMP TABLE leak AS SELECT 42 AS secret", validated=False) == [
        {"Count": 1}
    ]
    run_judged(file_engine, "SET VARIABLE leak_var = 42", validated=False)
    for validated in (False, True):
        with pytest.raises(NotFoundError):
            run_judged(file_engine, "SELECT * FROM leak", validated=validated)
        assert run_judged(file_engine, "SELECT getvariable('leak_var') AS v", validated=validated) == [
            {"v": None}
        ]


def test_a_cancelled_query_on_the_shared_cursor_leaves_the_next_one_alone(file_engine):
    execution = file_engine.execute("SELECT count(*) AS n FROM range(100000000000)", None, LIMITS, validated=True)
    execution.cancel()
    execution.close()
    assert run_judged(file_engine, "SELECT count(*) AS n FROM t", validated=True) == [{"n": 5}]


def test_a_cancel_that_arrives_before_duckdb_begins_the_query_still_stops_it(engine):
    """DuckDB forgets an interrupt sent before its query begins; the cancel must not be lost in that gap.

    The real engine and query; only the moment is forced: the reading thread is held between the execution's
    own "cancelled?" check and DuckDB beginning the query (as a busy server's scheduler may hold it), and the
    cancel lands there. The query alone would run for minutes.
    """
    import threading

    probe = duckdb.connect()
    probe.interrupt()  # the engine's own behaviour this guards against: the next query runs uninterrupted
    assert probe.execute("SELECT count(*) FROM range(1000)").fetchone() == (1000,)
    probe.close()

    execution = engine.execute("SELECT count(*) AS n FROM range(100000000000)", None, LIMITS)
    held = threading.Event()
    execution._start = late(execution._start, held)
    held_then_cancelled(execution, held)
