"""A statement's schemas are worked out once where they cannot change, and afresh where they can.

A DuckDB database file is held open read-only (DuckDB's lock keeps writers out), so the same text prepared again
is not bound again; files on disk can be rewritten at any time, so a files source asks DuckDB every time and
announces what the file holds now (compared with DuckDB's own reading of it).
"""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from nexus_flight.core.source import SourceSpec


def _prepare_and_run(location: str, sql: str, times: int) -> list[pa.Table]:
    results = []
    with flightsql.connect(location, autocommit=True) as conn:
        for _ in range(times):
            with conn.cursor() as cur:  # a new cursor: a new prepared statement for the same text
                cur.execute(sql)
                results.append(cur.fetch_arrow_table())
    return results


def test_a_database_file_binds_a_text_once_and_answers_like_duckdb(make_gateway, tmp_path):
    path = tmp_path / "shop.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE orders AS SELECT range AS id, (range * 1.25)::DECIMAL(12, 2) AS amount, "
                   "CASE WHEN range % 3 = 0 THEN NULL ELSE 'o-' || range END AS note FROM range(50)")
    sql = "SELECT id, amount, note FROM shop.main.orders WHERE note LIKE 'o-1%' ORDER BY id"
    with duckdb.connect(str(path), read_only=True) as own:
        expected = own.execute(sql.replace("shop.main.", "")).to_arrow_table()
    gw = make_gateway(sources=(SourceSpec(name="shop", kind="duckdb", options={"path": str(path)}),))
    backend = gw.service.sources.backend("shop")
    binds = []
    schema_of = backend._engine.schema_of
    backend._engine.schema_of = lambda *args, **kwargs: binds.append(args[0]) or schema_of(*args, **kwargs)
    results = _prepare_and_run(gw.location, sql, 3)
    assert [r.to_pylist() for r in results] == [expected.to_pylist()] * 3
    assert all(r.schema.equals(expected.schema) for r in results)
    assert len(binds) == 1  # the three prepared statements of one text: DuckDB bound it once


def test_a_rewritten_file_is_announced_with_its_new_types(make_gateway, tmp_path):
    """A file rewritten in place (types and length changed) is read as it is now, not through its old listing."""
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": pa.array([1, 2], pa.int32()), "v": ["a", "b"]}), path)
    gw = make_gateway(sources=(SourceSpec(name="files", kind="files",
                                          options={"tables": [{"name": "t", "location": str(path)}],
                                                   "listing_seconds": 0}),))
    sql = "SELECT id, v FROM files.main.t ORDER BY id"
    first = _prepare_and_run(gw.location, sql, 1)[0]
    pq.write_table(pa.table({"id": pa.array([1, 2, 3], pa.int64()), "v": [1.5, None, 2.5]}), path)
    second = _prepare_and_run(gw.location, sql, 1)[0]
    with duckdb.connect() as own:
        before = pa.table({"id": pa.array([1, 2], pa.int32()), "v": ["a", "b"]})
        after = own.execute(f"SELECT id, v FROM read_parquet('{path}') ORDER BY id").to_arrow_table()
    assert first.to_pylist() == before.to_pylist() and first.schema.types == before.schema.types
    assert second.to_pylist() == after.to_pylist() and second.schema.types == after.schema.types


def test_files_added_to_and_removed_from_a_directory_table_are_seen_by_the_next_query(make_gateway, tmp_path):
    folder = tmp_path / "sales"
    folder.mkdir()
    pq.write_table(pa.table({"id": [1, 2]}), folder / "a.parquet")
    gw = make_gateway(sources=(SourceSpec(name="files", kind="files",
                                          options={"tables": [{"name": "s", "location": str(folder)}],
                                                   "listing_seconds": 0}),))
    sql = "SELECT sum(id) AS total, count(*) AS n FROM files.main.s"
    assert _prepare_and_run(gw.location, sql, 1)[0].to_pylist() == [{"total": 3, "n": 2}]
    pq.write_table(pa.table({"id": [10]}), folder / "b.parquet")
    assert _prepare_and_run(gw.location, sql, 1)[0].to_pylist() == [{"total": 13, "n": 3}]
    (folder / "a.parquet").unlink()
    assert _prepare_and_run(gw.location, sql, 1)[0].to_pylist() == [{"total": 10, "n": 1}]
