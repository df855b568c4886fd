"""A view naming its own database in a qualified name is looked through like any view; another database's is not.

DuckDB calls a file's database by the file's name (``shop.duckdb`` is ``shop``) and keeps a view's text as it was
written, so ``CREATE VIEW v AS SELECT * FROM shop.main.depts`` reaches the policies with the database in it; so
does ``shop.depts`` (DuckDB reads it as the database's ``main`` schema when no schema is called ``shop``).
Such a view of the open table answers for bob what DuckDB answers through its own client; such a view of the
filtered table is refused naming it, however its name is written; a view of the ``system`` database DuckDB always
attaches stays refused as another database's. PostgreSQL accepts ``db.schema.table`` for its current database
only and ``pg_get_viewdef`` prints the view without the database: such a view answers as PostgreSQL does. The
gateway, catalog, files and server are real.
"""

from __future__ import annotations

import duckdb
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.catalog.grants import add_grant
from nexus_flight.catalog.policies import PolicySpec, add_policy
from tests.security.conftest import BOB_PASSWORD, bearer, module_store, serving_catalog
from tests.support import flightsql_raw as raw

PG_DATABASE = "own_database_views"
#: Views over the open table, their database named in the ways DuckDB accepts.
DUCK_OPEN = {
    "three_part": "SELECT region, name FROM shop.main.depts",
    "upper_case": "SELECT * FROM SHOP.MAIN.DEPTS",
    "quoted": 'SELECT * FROM "shop"."main"."depts"',
    "two_part": "SELECT region FROM shop.depts WHERE region <> 'US'",
}
#: Views over the filtered table (or another database): refused, and why.
DUCK_REFUSED = {
    "staff_three_part": ("SELECT * FROM shop.main.staff", "reading duck.main.staff, which has policies"),
    "staff_two_part": ("SELECT id FROM Shop.staff", "reading duck.main.staff, which has policies"),
    "staff_nested": ("SELECT * FROM shop.main.staff_plain", "reading duck.main.staff (through"),
    "system_tables": ("SELECT table_name FROM system.information_schema.tables",
                      "reads system.information_schema.tables, of another database"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_data_dir, postgres_server):
    import psycopg

    root = tmp_path_factory.mktemp("own-database")
    path, copy = root / "shop.duckdb", root / "copy" / "shop.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE staff (id INTEGER, region VARCHAR)")
        con.execute("INSERT INTO staff VALUES (1, 'ASIA'), (2, 'EUROPE')")
        con.execute("CREATE TABLE depts (region VARCHAR, name VARCHAR)")
        con.execute("INSERT INTO depts VALUES ('ASIA', 'Asia'), ('EUROPE', NULL), ('US', 'States')")
        con.execute("CREATE VIEW staff_plain AS SELECT * FROM staff")
        for name, sql in {**DUCK_OPEN, **{k: v[0] for k, v in DUCK_REFUSED.items()}}.items():
            con.execute(f"CREATE VIEW {name} AS {sql}")
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())  # asked directly while the gateway holds the file
    postgres_server.create_database(PG_DATABASE)
    with psycopg.connect(postgres_server.dsn(PG_DATABASE), autocommit=True) as con:
        con.execute("CREATE TABLE staff (id integer, region text)")
        con.execute("CREATE TABLE depts (region text, name text)")
        con.execute("INSERT INTO depts VALUES ('ASIA', 'Asia'), ('EUROPE', NULL)")
        con.execute(f"CREATE VIEW three_part AS SELECT region, name FROM {PG_DATABASE}.public.depts")
        con.execute(f"CREATE VIEW staff_three_part AS SELECT id FROM {PG_DATABASE}.public.staff")
        postgres_server.reader_grants(PG_DATABASE)
    with module_store(root / "data") as store:
        store.add_source("duck", "duckdb", {"path": str(path)})
        store.add_source("pg", "postgresql", postgres_server.options(PG_DATABASE))
        for source, schema in (("duck", "main"), ("pg", "public")):
            add_grant(store, "analyst", source)
            add_policy(store, PolicySpec(f"{source}-asia", "row_filter", f"{source}.{schema}.staff",
                                         expression="region = {user.region}"))
        with serving_catalog(store, demo_data_dir, "duck", {"bob": BOB_PASSWORD}) as (client, tokens):
            yield {"client": client, "token": tokens["bob"], "copy": copy, "pg": postgres_server}


def run(world, sql: str):
    return raw.info_and_table(world["client"], pb.CommandStatementQuery(query=sql), bearer(world["token"]))[1]


def duck(world, sql: str) -> tuple[list[str], list[tuple]]:
    with duckdb.connect(str(world["copy"]), read_only=True) as con:
        cur = con.execute(sql)
        return [d[0] for d in cur.description], sorted(cur.fetchall(), key=repr)


@pytest.mark.parametrize("view", sorted(DUCK_OPEN))
def test_a_duckdb_view_naming_its_own_database_answers_as_duckdb_does(world, view):
    got = run(world, f"SELECT * FROM duck.main.{view}")
    names, expected = duck(world, f"SELECT * FROM {view}")
    assert got.column_names == names
    assert sorted((tuple(r.values()) for r in got.to_pylist()), key=repr) == expected


@pytest.mark.parametrize("view", sorted(DUCK_REFUSED))
def test_a_duckdb_view_reaching_the_filtered_table_or_another_database_is_refused(world, view):
    duck(world, f"SELECT * FROM {view}")  # DuckDB itself reads each of them
    with pytest.raises(flight.FlightUnauthorizedError) as info:
        run(world, f"SELECT * FROM duck.main.{view}")
    assert f"duck.main.{view} is a view" in str(info.value)
    assert DUCK_REFUSED[view][1] in str(info.value)


def test_a_query_writing_the_schema_in_another_case_is_read_as_duckdb_reads_it(world):
    """DuckDB ignores the case of names: ``MAIN.DEPTS`` is ``main.depts``, and ``MAIN.STAFF`` is still filtered."""
    got = run(world, "SELECT * FROM duck.MAIN.DEPTS")
    names, expected = duck(world, "SELECT * FROM MAIN.DEPTS")
    assert got.column_names == names
    assert sorted((tuple(r.values()) for r in got.to_pylist()), key=repr) == expected
    got = run(world, "SELECT * FROM duck.MAIN.STAFF")
    assert got.to_pylist() == [{"id": 1, "region": "ASIA"}]


def test_a_postgresql_view_written_with_its_database_answers_as_postgresql_does(world):
    import psycopg

    got = run(world, "SELECT * FROM pg.public.three_part")
    with psycopg.connect(world["pg"].dsn(PG_DATABASE, user=world["pg"].reader)) as con:
        cur = con.execute("SELECT * FROM three_part")
        names, expected = [d.name for d in cur.description], sorted(cur.fetchall(), key=repr)
        definition = con.execute("SELECT pg_get_viewdef('staff_three_part'::regclass)").fetchone()[0]
    assert got.column_names == names
    assert sorted((tuple(r.values()) for r in got.to_pylist()), key=repr) == expected
    assert PG_DATABASE not in definition
    with pytest.raises(flight.FlightUnauthorizedError, match="reading pg.public.staff, which has policies"):
        run(world, "SELECT * FROM pg.public.staff_three_part")


def test_a_query_naming_the_postgresql_database_as_its_catalog_is_not_that_source(world):
    """The gateway's catalogs are its sources: the database's own name is no catalog of it."""
    with pytest.raises(KeyError, match=f"unknown catalog '{PG_DATABASE}'"):
        run(world, f"SELECT * FROM {PG_DATABASE}.public.depts")
