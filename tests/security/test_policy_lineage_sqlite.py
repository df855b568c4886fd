"""Virtual tables that hand out another table's rows on an SQLite file source: FTS5 with external content.

bob's rows of ``staff`` are filtered to his region. ``staff_fts`` is an FTS5 table with ``content='staff'``: reading
it reads ``staff``'s rows, and its shadow tables (``staff_fts_idx``, ``staff_fts_data`` ...) keep what it indexed of
them, every region's. ``sqlite_master`` lists all of them as tables; ``pragma_table_list`` tells virtual and shadow
tables apart, and the gateway refuses them to bob (directly, through a join or a view), reads a virtual table with a
policy of its own through it, and lets alice, an administrator, read them as sqlite3 answers. The gateway, catalog
and file are real.
"""

from __future__ import annotations

import sqlite3

import pyarrow.flight as flight
import pytest

from tests.security.conftest import (
    module_store,
    query_as,
    serving_region_filtered,
    sorted_rows,
)

DDL = [
    "CREATE TABLE staff (id INTEGER PRIMARY KEY, region TEXT, note TEXT)",
    "INSERT INTO staff VALUES (1, 'ASIA', 'tokyo office'), (2, 'EUROPE', 'secret paris deal'), (3, 'ASIA', NULL)",
    "CREATE VIRTUAL TABLE staff_fts USING fts5(region, note, content='staff', content_rowid='id')",
    "INSERT INTO staff_fts(staff_fts) VALUES ('rebuild')",
    "CREATE VIRTUAL TABLE guarded_fts USING fts5(region, note, content='staff', content_rowid='id')",
    "INSERT INTO guarded_fts(guarded_fts) VALUES ('rebuild')",
    "CREATE TABLE depts (region TEXT, name TEXT)",
    "INSERT INTO depts VALUES ('ASIA', 'Asia'), ('EUROPE', 'Europe')",
    "CREATE VIEW fts_v AS SELECT region, note FROM staff_fts",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_data_dir):
    root = tmp_path_factory.mktemp("lite-fts")
    path = root / "shop.sqlite"
    with sqlite3.connect(path) as con:
        for statement in DDL:
            con.execute(statement)
    with module_store(root / "data") as store:
        store.add_source("lite", "sqlite", {"path": str(path)})
        with serving_region_filtered(store, demo_data_dir, "lite", ("main.staff", "main.guarded_fts")) as served:
            client, tokens = served
            yield {"client": client, "tokens": tokens, "path": path}


def run(world, sql: str, user: str = "bob"):
    return query_as(world["client"], world["tokens"][user], sql)


def engine(world, sql: str) -> tuple[list[str], list[tuple]]:
    """SQLite's own answer, through sqlite3 (the file read-only)."""
    with sqlite3.connect(f"file:{world['path']}?mode=ro", uri=True) as con:
        cursor = con.execute(sql)
        return [d[0] for d in cursor.description], [tuple(r) for r in cursor.fetchall()]


@pytest.mark.parametrize(("sql", "table"), [
    ("SELECT * FROM main.staff_fts", "staff_fts"),
    ("SELECT note FROM main.staff_fts WHERE staff_fts MATCH 'paris'", "staff_fts"),
    ("SELECT d.name, f.note FROM main.depts d JOIN main.staff_fts f ON f.region = d.region", "staff_fts"),
    ("SELECT * FROM main.staff_fts_idx", "staff_fts_idx"),
    ("SELECT * FROM main.staff_fts_data", "staff_fts_data"),
    ("SELECT * FROM main.guarded_fts_docsize", "guarded_fts_docsize"),
])
def test_a_virtual_table_or_its_shadow_tables_are_refused(world, sql, table):
    with pytest.raises(flight.FlightUnauthorizedError) as info:
        run(world, sql)
    assert f"lite.main.{table} is a foreign table" in str(info.value)


def test_a_view_over_a_virtual_table_is_refused(world):
    with pytest.raises(flight.FlightUnauthorizedError) as info:
        run(world, "SELECT * FROM main.fts_v")
    assert "lite.main.fts_v is a view" in str(info.value) and "staff_fts" in str(info.value)


def test_a_virtual_table_with_a_policy_of_its_own_is_read_through_it(world):
    got = run(world, "SELECT region, note FROM guarded_fts")
    names, expected = engine(world, "SELECT region, note FROM staff WHERE region = 'ASIA'")
    assert got.column_names == names and sorted_rows(got) == sorted(expected, key=repr)


def test_the_filtered_and_the_open_table_answer_as_sqlite_does(world):
    got = run(world, "SELECT * FROM staff")
    assert sorted_rows(got) == sorted(engine(world, "SELECT * FROM staff WHERE region = 'ASIA'")[1], key=repr)
    got = run(world, "SELECT * FROM depts")
    names, expected = engine(world, "SELECT * FROM depts")
    assert got.column_names == names and sorted_rows(got) == sorted(expected, key=repr)


def test_an_administrator_reads_them_as_sqlite_does(world):
    for sql in ("SELECT region, note FROM staff_fts", "SELECT region, note FROM fts_v",
                "SELECT note FROM staff_fts WHERE staff_fts MATCH 'paris'"):
        names, expected = engine(world, sql)
        got = run(world, sql, user="alice")
        assert got.column_names == names, sql
        assert sorted_rows(got) == sorted(expected, key=repr), sql


def test_an_unqualified_name_is_the_files_own_main_schema(world):
    """SQLite reads ``fts_v`` as ``main.fts_v``: the view check follows it to the virtual table it reads."""
    with pytest.raises(flight.FlightUnauthorizedError) as info:
        run(world, "SELECT * FROM fts_v")
    assert "lite.main.fts_v is a view" in str(info.value) and "lite.main.staff_fts" in str(info.value)
    assert sorted_rows(run(world, "SELECT region FROM staff")) == [("ASIA",), ("ASIA",)]
