"""A DuckDB file replaced under a serving gateway (written aside, renamed over the path) is read from then on.

While the gateway has a DuckDB file open, DuckDB's lock keeps every writer out, so a pipeline refreshing it writes a
new file and renames it over the old one. The gateway kept reading the old file (its inode) until restarted:
new tables were "not found" and every answer was the old data, for good.
"""

from __future__ import annotations

import os
import sqlite3
import threading

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import pytest

from tests.operations.serving import serving


def _write(path, value: int, rows: int, extra_table: bool = False) -> None:
    aside = path.with_suffix(".new")
    with duckdb.connect(str(aside)) as con:
        con.execute(f"CREATE TABLE t AS SELECT {value} AS v")
        con.execute(f"CREATE TABLE big AS SELECT range AS i, {value} AS v FROM range({rows})")
        if extra_table:
            con.execute("CREATE TABLE added AS SELECT 'new' AS w")
    os.replace(aside, path)  # what a pipeline does: the readers of the old file keep it, new opens see this one


def _engine_answer(path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture
def shop(tmp_path):
    db = tmp_path / "shop.duckdb"
    _write(db, 1, 2_000_000)
    config = tmp_path / "gateway.toml"
    config.write_text(f'[[sources]]\nname = "shop"\ntype = "duckdb"\noptions = {{ path = "{db}" }}\n')
    with serving(tmp_path / "data", "--no-demo", "--config", str(config)) as served:
        yield served, db


def _tables(conn) -> set[str]:
    objects = conn.adbc_get_objects(depth="tables", catalog_filter="shop").read_all().to_pylist()
    return {t["table_name"] for c in objects for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]}


def test_a_file_renamed_over_the_source_is_served_at_once_and_a_stream_under_way_finishes(shop):
    served, db = shop
    with flightsql.connect(served.location, autocommit=True) as conn, conn.cursor() as cur, \
            conn.cursor() as streaming:
        cur.execute("SELECT v FROM shop.main.t")
        assert cur.fetchall() == [(1,)]
        assert "added" not in _tables(conn)
        streaming.execute("SELECT i, v FROM shop.main.big")
        reader = streaming.fetch_record_batch()
        first = reader.read_next_batch()  # a result under way on the old file

        _write(db, 3, 1_000, extra_table=True)

        sql = "SELECT v FROM shop.main.t"
        cur.execute(sql)
        assert cur.fetchall() == _engine_answer(db, sql) == [(3,)]
        cur.execute("SELECT w FROM shop.main.added")
        assert cur.fetchall() == [("new",)]
        assert "added" in _tables(conn)  # metadata too, not after the schema cache's TTL

        rest = reader.read_all()
        assert first.num_rows + rest.num_rows == 2_000_000  # the old file's rows, all of them
        assert set(rest.column("v").to_pylist()) == {1}
        cur.execute("SELECT count(*) FROM shop.main.big")
        assert cur.fetchall() == [(1_000,)]
    assert any("its data was replaced" in line for line in served.err)


def test_a_statement_prepared_before_a_swap_that_changed_its_columns_is_refused_clearly(shop):
    """Its handle announces the old columns: executing it failed INTERNAL with pyarrow's cast message."""
    served, db = shop
    sql = "SELECT * FROM shop.main.t WHERE 1 = ?"
    with flightsql.connect(served.location, autocommit=True) as conn, conn.cursor() as cur:
        cur.adbc_prepare(sql)
        cur.execute(sql, parameters=(1,))
        assert cur.fetchall() == [(1,)]
        aside = db.with_suffix(".new")
        with duckdb.connect(str(aside)) as con:
            con.execute("CREATE TABLE t AS SELECT 'x' AS v, 2 AS w")
        os.replace(aside, db)
        with pytest.raises(flightsql.ProgrammingError) as refused:
            cur.execute(sql, parameters=(1,))
            cur.fetchall()
        message = str(refused.value)
        assert "INVALID_ARGUMENT" in message and "prepare it again" in message, message
        assert "announced v: int32; now v: string, w: int32" in message, message
        with conn.cursor() as again:  # prepared anew, it answers as the engine does
            again.execute(sql, parameters=(1,))
            assert again.fetchall() == _engine_answer(db, "SELECT * FROM t WHERE 1 = 1") == [("x", 2)]


def test_a_sqlite_file_renamed_over_the_source_is_served_and_writes_in_place_still_are(tmp_path):
    """SQLite's readers see writes in place; the pooled connections kept the old file after a rename."""
    db = tmp_path / "lite.db"

    def make(path, values: list[int], extra_table: bool = False) -> None:
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE t (v INTEGER)")
            con.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values])
            if extra_table:
                con.execute("CREATE TABLE added (w TEXT)")
        con.close()

    make(db, [1])
    config = tmp_path / "gateway.toml"
    config.write_text(f'[[sources]]\nname = "lite"\ntype = "sqlite"\noptions = {{ path = "{db}" }}\n')
    sql = "SELECT v FROM lite.main.t ORDER BY v"
    with serving(tmp_path / "data", "--no-demo", "--config", str(config)) as served, \
            flightsql.connect(served.location, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql)
        assert cur.fetchall() == [(1,)]
        with sqlite3.connect(db) as con:
            con.execute("INSERT INTO t VALUES (2)")
        con.close()
        cur.execute(sql)
        assert cur.fetchall() == [(1,), (2,)]
        make(tmp_path / "lite.new", [3], extra_table=True)
        os.replace(tmp_path / "lite.new", db)
        for _ in range(3):  # every pooled connection, not only a new one
            cur.execute(sql)
            assert cur.fetchall() == [(3,)]
        assert "added" in {t["table_name"] for c in conn.adbc_get_objects(depth="tables", catalog_filter="lite")
                           .read_all().to_pylist() for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]}


def test_a_swap_while_a_call_is_under_way_still_opens_the_new_file(sqlite_store, tmp_path):
    """DuckDB hands a second ``connect`` of a path already open in the process the instance already open: a busy
    gateway always has a call under way on the old backend, so the new one bound schemas and read metadata from the
    old file (its queries, on instances of their own, from the new one) for as long as it lived."""
    from nexus_flight.catalog.directory import CatalogSourceDirectory

    db = tmp_path / "shop.duckdb"
    _write(db, 1, 10)
    sqlite_store.add_source("shop", "duckdb", {"path": str(db)})
    directory = CatalogSourceDirectory(sqlite_store, refresh_seconds=0, system=False)
    try:
        old = directory.backend("shop")
        assert [t.name for t in old.list_tables("main")] == ["big", "t"]
        under_way, release = threading.Event(), threading.Event()

        def long_call() -> None:
            old._call(lambda live: (under_way.set(), release.wait(30)))

        caller = threading.Thread(target=long_call)
        caller.start()
        assert under_way.wait(10)
        _write(db, 3, 10, extra_table=True)
        fresh = directory.backend("shop")
        assert fresh is not old
        assert [t.name for t in fresh.list_tables("main")] == ["added", "big", "t"]
        assert fresh.table_schema("main", "added").names == ["w"]
        release.set()
        caller.join(10)
    finally:
        directory.close()


def test_a_file_a_writer_holds_is_refused_retryably_and_read_once_it_is_released(tmp_path):
    """A pipeline that writes the file in place holds DuckDB's lock: readers are refused until it closes the file.

    The writer is a process of its own, as a pipeline is (DuckDB shares one instance within a process).
    """
    import subprocess
    import sys

    import pyarrow as pa

    db = tmp_path / "held.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS v")
    writer = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1]); con.execute('INSERT INTO t VALUES (2)'); "
        "print('holding', flush=True); sys.stdin.readline()"), str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "holding"
        config = tmp_path / "gateway.toml"
        config.write_text(f'[[sources]]\nname = "held"\ntype = "duckdb"\noptions = {{ path = "{db}" }}\n')
        with serving(tmp_path / "data", "--config", str(config), "--no-demo") as served, \
                flightsql.connect(served.location, autocommit=True) as conn, conn.cursor() as cur:
            with pytest.raises(flightsql.OperationalError) as refused:
                cur.execute("SELECT v FROM held.main.t ORDER BY v")
            text = str(refused.value)
            assert "UNAVAILABLE" in text.upper() and "held by another process that writes it" in text
            assert str(db) not in text and "PID" not in text
            writer.communicate("\n", timeout=30)  # the writer commits and closes the file
            cur.execute("SELECT v FROM held.main.t ORDER BY v")
            assert cur.fetch_arrow_table() == pa.table({"v": pa.array([1, 2], pa.int32())})
            assert _engine_answer(db, "SELECT v FROM t ORDER BY v") == [(1,), (2,)]
    finally:
        writer.kill()
