"""The SQLite backend over real SQLite files (TPC-H sf0.01 loaded into a temporary file)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import sqlglot

from nexus_flight.backends.sqlite import SQLiteBackend
from nexus_flight.core.errors import (
    SOURCE_FAILURES,
    BackendUnavailableError,
    InvalidQueryError,
    NotFoundError,
    QueryCancelledError,
    ReadOnlyViolationError,
    RetryLaterError,
)
from nexus_flight.core.source import QueryLimits, SourceSpec
from tests.backends.conftest import TPCH_QUERIES, normalized
from tests.support.results import plan_for, run


@pytest.fixture(scope="module")
def backend(sqlite_file):
    with SQLiteBackend(SourceSpec("litesrc", "sqlite", {"path": str(sqlite_file)})) as b:
        yield b


def as_floats(table: pa.Table) -> pa.Table:
    return pa.table(
        [c.cast(pa.float64()) if pa.types.is_decimal(c.type) else c for c in table.columns],
        names=table.column_names,
    )


@pytest.mark.parametrize("name", sorted(TPCH_QUERIES))
def test_tpch_matches_duckdb_over_parquet(backend, duckdb_tpch, name):
    expected = as_floats(duckdb_tpch.execute(TPCH_QUERIES[name].format(s="")).to_arrow_table())
    sql = sqlglot.transpile(TPCH_QUERIES[name].format(s=""), read="duckdb", write="sqlite")[0]
    got = run(backend, sql)
    assert got.column_names == expected.column_names
    expected_rows = [tuple(v.isoformat() if hasattr(v, "isoformat") else v for v in r) for r in normalized(expected)]
    assert normalized(got) == expected_rows


def test_type_matrix(backend):
    table = run(backend, "SELECT 1 AS i, 1.5 AS r, 'x' AS t, x'00ff' AS b, NULL AS n")
    assert [f.type for f in table.schema] == [pa.int64(), pa.float64(), pa.utf8(), pa.binary(), pa.utf8()]
    assert table.to_pylist() == [{"i": 1, "r": 1.5, "t": "x", "b": b"\x00\xff", "n": None}]


def test_bound_parameters(backend):
    table = run(backend, "SELECT n_name FROM nation WHERE n_nationkey = ? OR n_name = ?", [[1, "CHINA"]])
    assert sorted(table.column("n_name").to_pylist()) == ["ARGENTINA", "CHINA"]
    schema = backend.get_parameter_schema(plan_for(backend, "SELECT * FROM orders WHERE o_orderkey = ?"))
    assert schema.field(0).type == pa.int64()


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO region VALUES (99, 'X', 'y')",
        "UPDATE region SET r_comment = 'z'",
        "DELETE FROM region",
        "CREATE TABLE written (a)",
        "DROP TABLE region",
    ],
)
def test_writes_refused_by_the_read_only_file(backend, sql):
    with pytest.raises(ReadOnlyViolationError, match="readonly database"):
        run(backend, sql)
    assert run(backend, "SELECT count(*) AS n FROM region").column("n").to_pylist() == [5]


def test_statements_that_create_other_files_are_refused(backend, tmp_path):
    target = tmp_path / "escape.db"
    for sql in (f"ATTACH '{target}' AS x", f"VACUUM INTO '{target}'", "PRAGMA journal_mode = WAL"):
        with pytest.raises(ReadOnlyViolationError):
            run(backend, sql)
    assert not target.exists()


def test_cancel_stops_between_batches(backend):
    # The SQLite driver cannot interrupt a statement; the stream stops at the next batch. (The rows are read once
    # for their types before they stream: 3M of them take a second or two to type and longer to stream.)
    execution = backend.execute(
        plan_for(backend, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3000000) "
                          "SELECT x FROM c"),
        None,
        QueryLimits(batch_rows=1024),
    )
    assert execution.reader.read_next_batch().num_rows > 0
    timer = threading.Timer(0.2, execution.cancel)
    timer.start()
    with pytest.raises(QueryCancelledError):
        for _ in execution.reader:
            pass
    execution.close()


def test_introspection(backend):
    assert backend.list_schemas() == ["main"]
    tables = {t.name: t.table_type for t in backend.list_tables()}
    assert tables["lineitem"] == "TABLE" and tables["nation_names"] == "VIEW"
    assert [k.column for k in backend.primary_keys("main", "lineitem")] == ["l_orderkey", "l_linenumber"]
    [fk] = backend.foreign_keys("main", "nation")
    assert (fk.fk.column, fk.pk.table, fk.pk.column) == ("n_regionkey", "region", "r_regionkey")
    assert (fk.update_rule, fk.delete_rule) == (0, 1)
    with pytest.raises(NotFoundError):
        backend.table_schema("main", "nope")


def test_invalid_sql(backend):
    with pytest.raises(NotFoundError, match="no such table"):
        run(backend, "SELECT * FROM nope")
    with pytest.raises(InvalidQueryError, match="no such column"):
        run(backend, "SELECT nope FROM nation")


def test_a_file_a_writer_holds_is_retry_later_not_a_source_failure(tmp_path):
    path = tmp_path / "held.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (a INTEGER)")
    with SQLiteBackend(SourceSpec("litesrc", "sqlite", {"path": str(path), "busy_timeout_seconds": 0.1})) as held:
        writer.execute("BEGIN EXCLUSIVE")
        with pytest.raises(RetryLaterError, match="database is locked past busy_timeout_seconds") as info:
            run(held, "SELECT * FROM t")
        assert not isinstance(info.value, SOURCE_FAILURES)
        writer.execute("COMMIT")
        assert run(held, "SELECT count(*) AS n FROM t").to_pylist() == [{"n": 0}]
    writer.close()


def test_missing_file_is_unavailable_without_the_path(tmp_path):
    with pytest.raises(BackendUnavailableError) as info:
        SQLiteBackend(SourceSpec("litesrc", "sqlite", {"path": str(tmp_path / "secret-dir" / "x.db")}))
    assert "secret-dir" not in info.value.message


# -- one type per column, decided by every value of the result -------------------------------------------------


@pytest.fixture(scope="module")
def late_types(tmp_path_factory) -> Path:
    """NULLs and integers in the first rows, reals, text and blobs later (a DECIMAL column stores 2.00 as 2)."""
    path = tmp_path_factory.mktemp("sqlite-late") / "late.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, price DECIMAL(15,2), note TEXT, anything, gone DATE)")
    rows = [(i, i, None, i, None) for i in range(10)] + [(10, 2.5, "late", "text", None), (11, 3, "x", b"\x00", None)]
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    return path


def test_columns_that_change_storage_class_after_the_first_batch_stream_whole(late_types):
    with SQLiteBackend(SourceSpec("late", "sqlite", {"path": str(late_types)})) as late:
        sql = "SELECT price, note, anything, gone FROM t ORDER BY id"
        table = run(late, sql, batch_rows=4)
        assert table.schema.types == [pa.float64(), pa.utf8(), pa.binary(), pa.utf8()]
        assert late.get_schema(plan_for(late, sql)) == table.schema
        assert table.column("price").to_pylist() == [float(i) for i in range(10)] + [2.5, 3.0]
        assert table.column("note").to_pylist() == [None] * 10 + ["late", "x"]
        assert table.column("anything").to_pylist() == [str(i).encode() for i in range(10)] + [b"text", b"\x00"]
        assert table.column("gone").null_count == 12


def test_counts_stay_integers_and_sums_reals_with_bound_parameters(backend):
    sql = "SELECT count(*) AS n, sum(l_extendedprice) AS total FROM lineitem WHERE l_orderkey > ?"
    assert backend.get_schema(plan_for(backend, sql)).field("n").type == pa.int64()  # planned with the placeholder NULL
    bound = backend.get_bound_schema(plan_for(backend, sql), [[100]])
    assert bound.types == [pa.int64(), pa.float64()]
    table = run(backend, sql, [[100]])
    assert table.schema == bound and table.column("n")[0].as_py() > 0


@pytest.mark.parametrize(
    ("value", "bound"),
    [
        (Decimal("1.5"), 1.5),
        (True, 1),
        (date(2024, 2, 29), "2024-02-29"),
        (datetime(2024, 1, 1, 12), "2024-01-01 12:00:00"),
    ],
    ids=["decimal", "bool", "date", "datetime"],
)
def test_parameters_bind_as_python_sqlite3_users_pass_them(backend, value, bound):
    assert run(backend, "SELECT ? AS v", [[value]]).column("v").to_pylist() == [bound]


def test_cancel_reaches_the_pass_that_reads_the_types(backend):
    execution = backend.execute(
        plan_for(backend, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3000000) "
                          "SELECT x FROM c"),
        None,
        QueryLimits(),
    )
    execution.cancel()
    with pytest.raises(QueryCancelledError):
        execution.reader.read_all()
    execution.close()


def test_statements_a_view_cannot_hold_keep_the_drivers_types(backend):
    table = run(backend, "EXPLAIN QUERY PLAN SELECT * FROM nation")
    assert "detail" in table.column_names and table.num_rows >= 1
