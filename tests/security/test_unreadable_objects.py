"""One object a source's login cannot read leaves every other table of a catalog source known and queryable.

Four catalog sources, each with a filtered ``staff`` table (bob sees ASIA rows), an open ``depts`` table, a view
over it, and views the engine itself cannot read for the source's login: a DuckDB file and a SQLite file with a
view whose table was dropped (and on DuckDB a view whose macro was dropped), MariaDB with a view of a dropped
table, an invoker's view calling a function the login may not execute, an invoker's view of another database and a
view whose definer no longer exists, PostgreSQL with a view the login lost SELECT on, a view calling a function
whose EXECUTE was revoked, and a view the login may read only one column of.

The schema snapshot records each such object without columns, with the engine's first line, and logs it; bob
(policies apply to him) and alice (an administrator) read the other tables and views as the engine answers them,
and a query naming an unreadable view gets the engine's own error, as the engine's own client sees it for the
same login, with the status of its kind. GetTables lists every object, an unreadable one with an empty schema.
The gateway, catalog, files and servers are real.
"""

from __future__ import annotations

import logging
import sqlite3
from decimal import Decimal

import duckdb
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.catalog.grants import add_grant
from nexus_flight.catalog.policies import PolicySpec, add_policy
from nexus_flight.catalog.schema_cache import cached_schema
from tests.security.conftest import ALICE_PASSWORD, BOB_PASSWORD, bearer, module_store, serving_catalog
from tests.support import flightsql_raw as raw
from tests.support.mysql_reader import READER, READER_PASSWORD, ensure_reader

DATABASE = "unreadable_objects"
STAFF = [(1, "ASIA", Decimal("10.50")), (2, "EUROPE", Decimal("20.25")), (3, "ASIA", None)]
DEPTS = [("ASIA", "Asia"), ("EUROPE", "Europe"), ("US", None)]
SCHEMA = {"duck": "main", "lite": "main", "maria": DATABASE, "pg": "public"}
#: The views of each source the engine cannot read for the source's login, and the status their query gets.
UNREADABLE = {
    ("duck", "gone_v"): pa.ArrowKeyError,
    ("duck", "macro_v"): pa.ArrowInvalid,  # a function that does not exist, as MariaDB's fn_v
    ("lite", "gone_v"): pa.ArrowKeyError,  # a table that does not exist, as DuckDB's gone_v
    ("maria", "gone_v"): pa.ArrowInvalid,
    ("maria", "fn_v"): pa.ArrowInvalid,
    ("maria", "other_v"): pa.ArrowInvalid,
    ("maria", "ghost_v"): flight.FlightUnauthorizedError,
    ("pg", "hidden_v"): flight.FlightUnauthorizedError,
    ("pg", "fn_v"): flight.FlightUnauthorizedError,
    ("pg", "cols_v"): flight.FlightUnauthorizedError,
}
#: Which of them the snapshot cannot describe (PostgreSQL describes a statement without checking privileges).
UNDESCRIBED = sorted(k for k in UNREADABLE if k[0] != "pg")


def _staff_ddl(decimal: str) -> list[str]:
    return [f"CREATE TABLE staff (id INTEGER, region VARCHAR(10), salary {decimal})",
            "CREATE TABLE depts (region VARCHAR(10), name VARCHAR(20))",
            "CREATE VIEW depts_v AS SELECT region, upper(name) AS name FROM depts"]


def _fill(execute, mark: str, cast=lambda v: v) -> None:
    for row in STAFF:
        execute(f"INSERT INTO staff VALUES ({mark}, {mark}, {mark})", (row[0], row[1], cast(row[2])))
    for row in DEPTS:
        execute(f"INSERT INTO depts VALUES ({mark}, {mark})", row)


def _duck(path) -> None:
    with duckdb.connect(str(path)) as con:
        for statement in _staff_ddl("DECIMAL(10, 2)"):
            con.execute(statement)
        _fill(con.execute, "?")
        con.execute("CREATE TABLE gone (a INTEGER)")
        con.execute("CREATE VIEW gone_v AS SELECT a FROM gone")
        con.execute("CREATE MACRO plus_one(x) AS x + 1")
        con.execute("CREATE VIEW macro_v AS SELECT plus_one(length(name)) AS n FROM depts")
        con.execute("DROP TABLE gone")
        con.execute("DROP MACRO plus_one")


def _lite(path) -> None:
    con = sqlite3.connect(str(path))
    for statement in _staff_ddl("NUMERIC"):
        con.execute(statement)
    _fill(con.execute, "?", lambda v: None if v is None else str(v))
    con.executescript("CREATE TABLE gone (a INTEGER); CREATE VIEW gone_v AS SELECT a FROM gone; DROP TABLE gone;")
    con.commit()
    con.close()


def _maria(server) -> dict:
    with server.connect() as con, con.cursor() as cur:
        for statement in (f"DROP DATABASE IF EXISTS {DATABASE}", f"DROP DATABASE IF EXISTS {DATABASE}_other",
                          f"CREATE DATABASE {DATABASE}", f"CREATE DATABASE {DATABASE}_other", f"USE {DATABASE}"):
            cur.execute(statement)
        for statement in _staff_ddl("DECIMAL(10, 2)"):
            cur.execute(statement)
        _fill(cur.execute, "%s")
        for statement in (
            "CREATE TABLE gone (a INT)", "CREATE VIEW gone_v AS SELECT a FROM gone", "DROP TABLE gone",
            "CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
            "CREATE SQL SECURITY INVOKER VIEW fn_v AS SELECT twice(length(name)) AS n FROM depts",
            f"CREATE TABLE {DATABASE}_other.o (a INT)",
            f"CREATE SQL SECURITY INVOKER VIEW other_v AS SELECT a FROM {DATABASE}_other.o",
            "CREATE DEFINER='ghost'@'%' VIEW ghost_v AS SELECT region FROM depts",
        ):
            cur.execute(statement)
    return ensure_reader(server, DATABASE)


def _pg(server) -> None:
    import psycopg

    server.create_database(DATABASE)
    with psycopg.connect(server.dsn(DATABASE), autocommit=True) as con:
        for statement in _staff_ddl("NUMERIC(10, 2)"):
            con.execute(statement)
        _fill(con.execute, "%s")
        for statement in (
            "CREATE VIEW hidden_v AS SELECT region FROM depts",
            "CREATE FUNCTION twice(integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2'",
            "CREATE VIEW fn_v AS SELECT twice(length(name)) AS n FROM depts",
            "CREATE VIEW cols_v AS SELECT region, name FROM depts",
        ):
            con.execute(statement)
        server.reader_grants(DATABASE)
        for statement in (f"REVOKE SELECT ON hidden_v FROM {server.reader}",
                          "REVOKE EXECUTE ON FUNCTION twice(integer) FROM PUBLIC",
                          f"REVOKE SELECT ON cols_v FROM {server.reader}",
                          f"GRANT SELECT (region) ON cols_v TO {server.reader}"):
            con.execute(statement)


class Engines:
    """Each engine's own answer, through its own client, logged in as the source's login."""

    def __init__(self, duck_copy, lite_path, maria, pg) -> None:
        self.duck_copy, self.lite_path, self.maria, self.pg = duck_copy, lite_path, maria, pg

    def ask(self, source: str, sql: str) -> tuple[list[str], list[tuple]]:
        if source == "duck":
            with duckdb.connect(str(self.duck_copy), read_only=True) as con:
                cur = con.execute(sql)
                return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]
        if source == "lite":
            con = sqlite3.connect(f"file:{self.lite_path}?mode=ro", uri=True)
            try:
                cur = con.execute(sql)
                return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]
            finally:
                con.close()
        if source == "maria":
            with self.maria.connect(DATABASE, user=READER, password=READER_PASSWORD) as con, con.cursor() as cur:
                cur.execute(sql)
                return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]
        import psycopg

        with psycopg.connect(self.pg.dsn(DATABASE, user=self.pg.reader)) as con:
            cur = con.execute(sql)
            return [d.name for d in cur.description], [tuple(r) for r in cur.fetchall()]

    def error(self, source: str, sql: str) -> str:
        """The first line of the engine's error for ``sql``."""
        try:
            self.ask(source, sql)
        except Exception as exc:  # noqa: BLE001 - each client's own error class
            text = str(getattr(exc, "args", [exc])[-1] if source == "maria" else exc)
            return text.strip().splitlines()[0]
        raise AssertionError(f"{source} answered {sql!r}")


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_data_dir, mariadb_server, postgres_server):
    root = tmp_path_factory.mktemp("unreadable")
    duck_path, duck_copy, lite_path = root / "sales.duckdb", root / "copy" / "sales.duckdb", root / "sales.sqlite"
    _duck(duck_path)
    duck_copy.parent.mkdir()
    duck_copy.write_bytes(duck_path.read_bytes())  # asked directly while the gateway holds the file
    _lite(lite_path)
    maria_options = _maria(mariadb_server)
    _pg(postgres_server)
    engines = Engines(duck_copy, lite_path, mariadb_server, postgres_server)
    with module_store(root / "data") as store:
        store.add_source("duck", "duckdb", {"path": str(duck_path)})
        store.add_source("lite", "sqlite", {"path": str(lite_path)})
        store.add_source("maria", "mariadb", maria_options, {"password": READER_PASSWORD})
        store.add_source("pg", "postgresql", postgres_server.options(DATABASE))
        for source, schema in SCHEMA.items():
            add_grant(store, "analyst", source)
            add_policy(store, PolicySpec(f"{source}-asia", "row_filter", f"{source}.{schema}.staff",
                                         expression="region = {user.region}"))
        with serving_catalog(store, demo_data_dir, "duck", {"bob": BOB_PASSWORD, "alice": ALICE_PASSWORD}) as served:
            client, tokens = served
            yield {"client": client, "tokens": tokens, "engines": engines, "store": store}


def run(world, sql: str, user: str) -> pa.Table:
    return raw.info_and_table(world["client"], pb.CommandStatementQuery(query=sql), bearer(world["tokens"][user]))[1]


def rows(values) -> list[tuple]:
    return sorted((tuple(str(v) if isinstance(v, Decimal) else v for v in r) for r in values), key=repr)


@pytest.mark.parametrize("user", ["bob", "alice"])
@pytest.mark.parametrize("source", sorted(SCHEMA))
def test_the_other_tables_answer_as_the_engine_does(world, source, user):
    schema = SCHEMA[source]
    for table, where in (("staff", " WHERE region = 'ASIA'" if user == "bob" else ""), ("depts", ""),
                         ("depts_v", "")):
        got = run(world, f"SELECT * FROM {source}.{schema}.{table}", user)
        names, expected = world["engines"].ask(source, f"SELECT * FROM {table}{where}")
        assert got.column_names == names, (source, table)
        assert rows(tuple(r.values()) for r in got.to_pylist()) == rows(expected), (source, table)


@pytest.mark.parametrize("user", ["bob", "alice"])
@pytest.mark.parametrize(("source", "view"), sorted(UNREADABLE))
def test_a_query_naming_an_unreadable_view_gets_the_engines_own_error(world, source, view, user):
    expected = world["engines"].error(source, f"SELECT * FROM {view}")
    if (source, view, user) == ("pg", "fn_v", "bob"):
        # PostgreSQL checks EXECUTE only when a statement runs, so the view describes; the policies cannot
        # look through a user-defined function and refuse it, naming it (as for any view calling one)
        expected = "the definition of pg.public.fn_v is refused by the read-only validator: QV-011: twice()"
    with pytest.raises(UNREADABLE[source, view]) as info:
        run(world, f"SELECT * FROM {source}.{SCHEMA[source]}.{view}", user)
    message = str(info.value)
    assert expected in message, (expected, message)
    assert "not a table of the source" not in message
    assert "Traceback" not in message


@pytest.mark.parametrize(("source", "view"), UNDESCRIBED)
def test_the_snapshot_records_an_unreadable_object_with_the_engines_first_line(world, source, view):
    run(world, f"SELECT count(*) FROM {source}.{SCHEMA[source]}.depts", "bob")  # the snapshot is taken by now
    content = cached_schema(world["store"], source).content
    tables = content["schemas"][SCHEMA[source]]
    assert {"staff", "depts", "depts_v"} <= {name for name, spec in tables.items() if spec["columns"]}
    spec = tables[view]
    assert spec["type"] == "VIEW" and spec["columns"] == []
    expected = world["engines"].error(source, f"SELECT * FROM {view}")
    assert expected.split(": ", 1)[-1] in spec["unreadable"], spec
    assert "\n" not in spec["unreadable"] and READER_PASSWORD not in spec["unreadable"]


def test_each_unreadable_object_is_logged_once_per_snapshot_naming_it(tmp_path, caplog):
    from nexus_flight.backends.sqlite import SQLiteBackend
    from nexus_flight.catalog.schema_cache import snapshot_backend
    from nexus_flight.core.source import SourceSpec

    path = tmp_path / "one.sqlite"
    _lite(path)
    backend = SQLiteBackend(SourceSpec("lite", "sqlite", {"path": str(path)}))
    try:
        with caplog.at_level(logging.WARNING, logger="nexus_flight.catalog.schema_cache"):
            content = snapshot_backend(backend)
    finally:
        backend.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "lite.main.gone_v" in warnings[0] and "no such table: main.gone" in warnings[0]
    assert content["schemas"]["main"]["gone_v"]["unreadable"] == "[sqlite] no such table: main.gone"
    assert str(tmp_path) not in warnings[0]


@pytest.mark.parametrize("user", ["bob", "alice"])
def test_get_tables_lists_every_object_an_unreadable_one_with_an_empty_schema(world, user):
    command = pb.CommandGetTables(include_schema=True)
    _, table = raw.info_and_table(world["client"], command, bearer(world["tokens"][user]))
    listed = {(r["catalog_name"], r["table_name"]): raw.read_schema(r["table_schema"]) for r in table.to_pylist()}
    for source in SCHEMA:
        assert listed[source, "depts"].names == ["region", "name"]
        assert listed[source, "staff"].names == ["id", "region", "salary"]
    for source, view in UNDESCRIBED:
        assert listed[source, view].names == [], (source, view)
