"""A view naming its own database in a qualified name is looked through like any view; another database's is not.

DuckDB calls a file's database by the file's name (``shop.duckdb`` is ``shop``) and keeps a view's text as it was
written, so ``CREATE VIEW v AS SELECT * FROM shop.main.depts`` reaches the policies with the database in it; so
does ``shop.depts`` (DuckDB reads it as the database's ``main`` schema when no schema is called ``shop``).
Such a view of the open table answers for bob what DuckDB answers through its own client; such a view of the
filtered table is refused naming it, however its name is written; a view of the ``system`` database DuckDB always
attaches stays refused as another database's. An in-memory DuckDB database is ``memory`` (what DuckDB's
``current_database()`` answers, and what a file ``memory.duckdb`` is called too): its views naming
``memory.main.depts`` are looked through the same way, and its views of ``system`` or ``temp`` stay refused.
PostgreSQL accepts ``db.schema.table`` for its current database
only and ``pg_get_viewdef`` prints the view without the database: such a view answers as PostgreSQL does. The
gateway, catalog, files and server are real.
"""

from __future__ import annotations

import duckdb
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.backends.base import TableInfo
from nexus_flight.backends.duckdb import DuckDBBackend
from nexus_flight.backends.profile import source_profile
from nexus_flight.catalog.grants import add_grant
from nexus_flight.catalog.policies import PolicySpec, add_policy
from nexus_flight.core.identifiers import rules_of
from nexus_flight.core.source import SourceSpec
from nexus_flight.server.security.policy_views import view_reach
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

#: The in-memory source's setup (DuckDB runs it again in each query's instance) and its views naming ``memory``.
MEMORY_SETUP = (
    "CREATE TABLE staff (id INTEGER, region VARCHAR)",
    "INSERT INTO staff VALUES (1, 'ASIA'), (2, 'EUROPE')",
    "CREATE TABLE depts (region VARCHAR, name VARCHAR)",
    "INSERT INTO depts VALUES ('ASIA', 'Asia'), ('EUROPE', NULL), ('US', 'States')",
    "CREATE TEMP TABLE scratch AS SELECT 1 AS id",
    "CREATE VIEW staff_plain AS SELECT * FROM staff",
)
MEMORY_OPEN = {
    "three_part": "SELECT region, name FROM memory.main.depts",
    "upper_case": "SELECT * FROM MEMORY.MAIN.DEPTS",
    "quoted": 'SELECT * FROM "memory"."main"."depts"',
    "two_part": "SELECT region FROM memory.depts WHERE region <> 'US'",
}
MEMORY_REFUSED = {
    "staff_three_part": ("SELECT * FROM memory.main.staff", "reading mem.main.staff, which has policies"),
    "staff_two_part": ("SELECT id FROM Memory.staff", "reading mem.main.staff, which has policies"),
    "staff_nested": ("SELECT * FROM memory.main.staff_plain", "reading mem.main.staff (through"),
    "system_tables": ("SELECT table_name FROM system.information_schema.tables",
                      "reads system.information_schema.tables, of another database"),
}
#: A view of the ``temp`` database: another database's (each connection has its own, so no query's sees the table).
MEMORY_TEMP = ("temp_scratch", "SELECT id FROM temp.main.scratch")


def memory_setup() -> tuple[str, ...]:
    views = {**MEMORY_OPEN, **{k: v[0] for k, v in MEMORY_REFUSED.items()}, MEMORY_TEMP[0]: MEMORY_TEMP[1]}
    return (*MEMORY_SETUP, *(f"CREATE VIEW {name} AS {sql}" for name, sql in views.items()))


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
    memory_file = root / "memory.duckdb"  # a file DuckDB calls ``memory`` too
    with duckdb.connect(str(memory_file)) as con:
        con.execute("CREATE TABLE depts (region VARCHAR, name VARCHAR)")
        con.execute("INSERT INTO depts VALUES ('ASIA', 'Asia'), ('US', 'States')")
        con.execute("CREATE TABLE staff (id INTEGER, region VARCHAR)")
        con.execute("CREATE VIEW depts_v AS SELECT * FROM memory.main.depts")
        con.execute("CREATE VIEW staff_v AS SELECT * FROM memory.staff")
    (root / "copy" / "memory.duckdb").write_bytes(memory_file.read_bytes())
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
        store.add_source("mem", "duckdb", {"setup_sql": list(memory_setup())})
        store.add_source("memfile", "duckdb", {"path": str(memory_file)})
        for source, schema in (("duck", "main"), ("pg", "public"), ("mem", "main"), ("memfile", "main")):
            add_grant(store, "analyst", source)
            add_policy(store, PolicySpec(f"{source}-asia", "row_filter", f"{source}.{schema}.staff",
                                         expression="region = {user.region}"))
        with serving_catalog(store, demo_data_dir, "duck", {"bob": BOB_PASSWORD}) as (client, tokens):
            yield {"client": client, "token": tokens["bob"], "copy": copy, "pg": postgres_server,
                   "memory_copy": root / "copy" / "memory.duckdb"}


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


def in_memory(sql: str) -> tuple[list[str], list[tuple]]:
    """DuckDB's own answer in a database of its own in memory, set up as the source is."""
    with duckdb.connect(":memory:") as con:
        for statement in memory_setup():
            con.execute(statement)
        cur = con.execute(sql)
        return [d[0] for d in cur.description], sorted(cur.fetchall(), key=repr)


def test_duckdb_calls_an_in_memory_database_memory():
    assert in_memory("SELECT current_database() AS name") == (["name"], [("memory",)])


@pytest.mark.parametrize("view", sorted(MEMORY_OPEN))
def test_an_in_memory_duckdb_view_naming_memory_answers_as_duckdb_does(world, view):
    got = run(world, f"SELECT * FROM mem.main.{view}")
    names, expected = in_memory(f"SELECT * FROM {view}")
    assert got.column_names == names
    assert sorted((tuple(r.values()) for r in got.to_pylist()), key=repr) == expected


@pytest.mark.parametrize("view", sorted(MEMORY_REFUSED))
def test_an_in_memory_duckdb_view_of_the_filtered_table_or_another_database_is_refused(world, view):
    in_memory(f"SELECT * FROM {view}")  # DuckDB itself reads each of them
    with pytest.raises(flight.FlightUnauthorizedError) as info:
        run(world, f"SELECT * FROM mem.main.{view}")
    assert f"mem.main.{view} is a view" in str(info.value)
    assert MEMORY_REFUSED[view][1] in str(info.value)


def test_an_in_memory_duckdb_view_of_its_temp_database_is_another_database(world):
    """Looked through on the real backend, the view reads another database; served, DuckDB's own error answers
    (the temporary table is the setup connection's alone), and nothing is read."""
    options = {"setup_sql": list(memory_setup())}
    backend = DuckDBBackend(SourceSpec("mem", "duckdb", options))
    try:
        rules = rules_of(backend)
        reach = view_reach("mem", TableInfo("main", MEMORY_TEMP[0], "VIEW"), backend,
                           source_profile(DuckDBBackend, options), rules,
                           lambda schema: {rules.table_key(t.name): t for t in backend.list_tables(schema)})
    finally:
        backend.close()
    assert reach.refusal == "mem.main.temp_scratch reads temp.main.scratch, of another database"
    assert in_memory(f"SELECT * FROM {MEMORY_TEMP[0]}") == (["id"], [(1,)])  # on the connection that made it
    with pytest.raises(KeyError, match="Table with name scratch does not exist"):
        run(world, f"SELECT * FROM mem.main.{MEMORY_TEMP[0]}")


def test_a_duckdb_file_called_memory_is_its_own_database_too(world):
    got = run(world, "SELECT * FROM memfile.main.depts_v")
    with duckdb.connect(str(world["memory_copy"]), read_only=True) as con:
        assert con.execute("SELECT current_database()").fetchone() == ("memory",)
        expected = sorted(con.execute("SELECT * FROM depts_v").fetchall(), key=repr)
    assert sorted((tuple(r.values()) for r in got.to_pylist()), key=repr) == expected
    with pytest.raises(flight.FlightUnauthorizedError, match="reading memfile.main.staff, which has policies"):
        run(world, "SELECT * FROM memfile.main.staff_v")


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
