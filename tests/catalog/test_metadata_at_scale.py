"""Metadata of a source with thousands of tables, as BI tools ask for it on connecting and browsing.

GetTables with schemas (``adbc_get_objects`` to columns, DBeaver's navigator) asks for every table in turn; each
read the source's whole cached schema (megabytes of JSON for 2,000 tables) from the catalog again, so the request
took 45 s for 2,000 PostgreSQL tables, every time. And once the cache was older than its TTL the request that found
it so waited for a new snapshot of the whole source (7 s for those tables), or for a source that was down.
"""

from __future__ import annotations

import socket
import sqlite3
import time

import adbc_driver_flightsql.dbapi as flightsql
import pytest

from tests.operations.serving import serving

TABLES = 1500


def _tables(conn, depth: str = "tables") -> dict[str, list[str]]:
    objects = conn.adbc_get_objects(depth=depth, catalog_filter="lite").read_all().to_pylist()
    return {t["table_name"]: [c["column_name"] for c in (t["table_columns"] or [])]
            for c in objects for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]}


def _timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


@pytest.fixture
def lite(tmp_path):
    db = tmp_path / "lite.db"
    with sqlite3.connect(db) as con:
        for i in range(TABLES):
            con.execute(f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, a TEXT, b REAL, c INTEGER, d BLOB)")
    con.close()
    config = tmp_path / "gateway.toml"
    config.write_text(f'[server]\nschema_cache_ttl_seconds = 2\n\n'
                      f'[[sources]]\nname = "lite"\ntype = "sqlite"\noptions = {{ path = "{db}" }}\n')
    with serving(tmp_path / "data", "--no-demo", "--config", str(config)) as served:
        yield served, db


def test_columns_of_every_table_cost_about_what_the_table_list_does(lite):
    served, db = lite
    with flightsql.connect(served.location, autocommit=True) as conn:
        listed, snapshot = _timed(lambda: _tables(conn))  # the first asks the source itself
        assert len(listed) == TABLES
        _, cached = _timed(lambda: _tables(conn))
        columns, described = _timed(lambda: _tables(conn, "columns"))
    with sqlite3.connect(db) as con:  # the engine's own catalog
        expected = {name: [c[1] for c in con.execute(f"PRAGMA table_info({name})")]
                    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    con.close()
    assert columns == expected
    # Not a measurement (benchmarks/metadata_bench.py is): reading the cache once per table took 40 s here.
    assert described < 5 * cached + 1.0, (snapshot, cached, described)


def test_an_expired_cache_answers_at_once_and_is_refreshed_behind(lite):
    served, db = lite
    with flightsql.connect(served.location, autocommit=True) as conn:
        _tables(conn)
        time.sleep(2.5)  # past the TTL
        with sqlite3.connect(db) as con:
            con.execute("CREATE TABLE added (x INTEGER)")
        con.close()
        assert "added" not in _tables(conn)  # answered from the cache, not after a new snapshot
        deadline = time.monotonic() + 60
        while "added" not in _tables(conn):  # the refresh started by that request lands
            assert time.monotonic() < deadline, "the background refresh never landed"
            time.sleep(0.2)


def test_a_source_that_hangs_and_was_never_described_delays_one_browse_not_every_one(tmp_path, demo_data_dir):
    """A server that accepts connections and never answers: each browse of every catalog waited its connect timeout."""
    from tests.operations.serving import share_demo

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)  # the kernel completes the handshakes; nobody ever answers
    config = tmp_path / "gateway.toml"
    config.write_text('[[sources]]\nname = "hung"\ntype = "postgresql"\n'
                      f'options = {{ host = "127.0.0.1", port = {hung.getsockname()[1]}, database = "x", '
                      'username = "reader", connect_timeout_seconds = 3 }\n')
    with serving(share_demo(tmp_path / "data", demo_data_dir), "--config", str(config)) as served, \
            flightsql.connect(served.location, autocommit=True) as conn:
        def browse() -> set[str]:
            objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
            return {f'{c["catalog_name"]}.{t["table_name"]}' for c in objects
                    for s in c["catalog_db_schemas"] or [] for t in s["db_schema_tables"] or []}

        first, waited = _timed(browse)
        again, answered = _timed(browse)
    hung.close()
    assert "demo.nation" in first and first == again
    assert waited >= 3 and answered < 1.5, (waited, answered)
