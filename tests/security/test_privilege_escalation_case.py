"""Privilege escalation through the case of a name, on a real PostgreSQL source.

PostgreSQL folds unquoted names to lower case and keeps quoted ones: ``x`` and ``"X"`` are two columns, ``items``
and ``"Items"`` two tables. bob (role ``analyst``) holds the columns ``id`` and ``x`` of ``t`` (not ``"X"``), the
table ``items`` (not ``"Items"``), the table ``"Upper"`` (not ``upper``) and the column ``"Y"`` of ``r`` (not
``y``). Every way of naming the ungranted twin is refused naming it; every way of naming the granted one answers
what PostgreSQL itself answers (asked through psycopg); metadata lists only the granted twins; and policies on one
twin leave the other alone. The gateway, catalog and PostgreSQL are real; clients are pyarrow.flight and ADBC.
"""

from __future__ import annotations

import base64
import os

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.catalog.grants import add_grant
from nexus_flight.catalog.policies import PolicySpec, add_policy
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.users import add_role, add_user
from nexus_flight.catalog.vault import ENV_KEY, ENV_KEY_ID, ENV_OLD_KEYS
from nexus_flight.core.settings import AuthSettings, ServerSettings
from nexus_flight.core.source import SourceSpec
from nexus_flight.server.app.gateway import Gateway
from nexus_flight.server.app.security import start_security
from tests.security.conftest import bearer, sign_in
from tests.support import flightsql_raw as raw

PASSWORD = "case-test-password-1"
DDL = [
    'CREATE TABLE t (id integer, x integer, "X" text PRIMARY KEY)',
    "INSERT INTO t VALUES (1, 10, 'secret-a'), (2, 20, 'secret-b')",
    "CREATE TABLE items (id integer, name text)",
    "INSERT INTO items VALUES (1, 'granted-1'), (2, 'granted-2')",
    'CREATE TABLE "Items" (id integer, name text)',
    """INSERT INTO "Items" VALUES (1, 'hidden-1')""",
    'CREATE TABLE "Upper" (id integer)',
    'INSERT INTO "Upper" VALUES (7)',
    "CREATE TABLE upper (id integer)",
    "INSERT INTO upper VALUES (666)",
    'CREATE TABLE r (y text, "Y" text)',
    "INSERT INTO r VALUES ('hidden-y', 'granted-Y')",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, postgres_server, demo_data_dir):
    import psycopg

    root = tmp_path_factory.mktemp("case")
    database = "identifier_case"
    postgres_server.create_database(database)
    with psycopg.connect(postgres_server.dsn(database), autocommit=True) as con:
        for statement in DDL:
            con.execute(statement)
    postgres_server.reader_grants(database)
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ENV_KEY, base64.b64encode(os.urandom(32)).decode())
        env.delenv(ENV_KEY_ID, raising=False)
        env.delenv(ENV_OLD_KEYS, raising=False)
        store = CatalogStore(data_dir=root / "catalog")
        for role in ("analyst", "masked"):
            add_role(store, role)
        add_user(store, "bob", PASSWORD, roles=["analyst"])
        add_user(store, "mo", PASSWORD, roles=["masked"])
        add_grant(store, "analyst", "pg", "public", "t", columns=["id", "x"])
        add_grant(store, "analyst", "pg", "public", "items")
        add_grant(store, "analyst", "pg", "public", "Upper")
        add_grant(store, "analyst", "pg", "public", "r", columns=["Y"])
        add_grant(store, "masked", "pg")
        add_policy(store, PolicySpec("mask-big-x", "column_mask", "pg.public.t", column="X"))
        add_policy(store, PolicySpec("filter-items", "row_filter", "pg.public.Items", expression="id < 0"))
        security = start_security(store, AuthSettings(enabled=True))
        source = SourceSpec("pg", "postgres", postgres_server.options(database))
        gateway = Gateway(ServerSettings(port=0, data_dir=demo_data_dir, default_source="pg"), [source],
                          authenticator=security.authenticator, access=security.access).start()
        client = flight.FlightClient(gateway.location)
        tokens = {user: sign_in(client, user, PASSWORD) for user in ("bob", "mo")}
        yield {"gateway": gateway, "client": client, "tokens": tokens, "pg": postgres_server.dsn(database)}
        client.close()
        gateway.shutdown()
        security.close()
        store.close()


def run(world, sql: str, user: str = "bob") -> pa.Table:
    _, table = raw.info_and_table(world["client"], pb.CommandStatementQuery(query=sql), bearer(world["tokens"][user]))
    return table


def engine(world, sql: str) -> tuple[list[str], list[tuple]]:
    """PostgreSQL's own answer, through psycopg."""
    import psycopg

    with psycopg.connect(world["pg"]) as con:
        cur = con.execute(sql)
        return [d.name for d in cur.description], [tuple(r) for r in cur.fetchall()]


DENIED = [
    ('SELECT "X" FROM t', "column pg.public.t.X"),
    ('SELECT t."X" FROM t', "column pg.public.t.X"),
    ('SELECT "X" FROM public.t', "column pg.public.t.X"),
    ('SELECT x FROM t WHERE "X" = \'secret-a\'', "column pg.public.t.X"),
    ('SELECT id FROM t ORDER BY "X"', "column pg.public.t.X"),
    ('SELECT (SELECT max("X") FROM t)', "column pg.public.t.X"),
    ('WITH c AS (SELECT "X" AS v FROM t) SELECT v FROM c', "column pg.public.t.X"),
    ('SELECT x::text FROM t UNION ALL SELECT "X" FROM t', "column pg.public.t.X"),
    ('SELECT upper("X") FROM t', "column pg.public.t.X"),
    ('SELECT count(DISTINCT "X") FROM t', "column pg.public.t.X"),
    ("SELECT * FROM t", "column pg.public.t.X"),
    ("SELECT t.* FROM t", "column pg.public.t.X"),
    ("SELECT s.* FROM (SELECT * FROM t) s", "column pg.public.t.X"),
    ('SELECT * FROM "Items"', "table pg.public.Items"),
    ('SELECT name FROM public."Items"', "table pg.public.Items"),
    ('SELECT count(*) FROM "Items"', "table pg.public.Items"),
    ('SELECT * FROM items JOIN "Items" USING (id)', "table pg.public.Items"),
    ('SELECT name FROM items UNION SELECT name FROM "Items"', "table pg.public.Items"),
    ('SELECT * FROM items WHERE id IN (SELECT id FROM "Items")', "table pg.public.Items"),
    ("SELECT * FROM upper", "table pg.public.upper"),
    ("SELECT * FROM UPPER", "table pg.public.upper"),
    ('SELECT * FROM "upper"', "table pg.public.upper"),
    ("SELECT * FROM Public.Upper", "table pg.public.upper"),
    ("SELECT y FROM r", "column pg.public.r.y"),
    ("SELECT Y FROM r", "column pg.public.r.y"),
    ('SELECT "y" FROM r', "column pg.public.r.y"),
    ("SELECT * FROM r", "column pg.public.r.y"),
]


@pytest.mark.parametrize("sql, what", DENIED, ids=[s for s, _ in DENIED])
def test_the_ungranted_twin_is_refused_naming_it(world, sql, what):
    with pytest.raises(flight.FlightUnauthorizedError) as info:
        run(world, sql)
    assert str(info.value).startswith(f"permission denied: no SELECT privilege on {what}")


ALLOWED = [
    "SELECT x FROM t ORDER BY id",
    "SELECT X FROM t ORDER BY id",
    'SELECT "x", ID FROM t ORDER BY id',
    "SELECT id, x FROM public.t ORDER BY 1",
    "SELECT * FROM items ORDER BY id",
    "SELECT * FROM ITEMS ORDER BY id",
    'SELECT * FROM "items" ORDER BY id',
    'SELECT * FROM "Upper"',
    'SELECT "Y" FROM r',
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_the_granted_twin_answers_as_postgresql_does(world, sql):
    table = run(world, sql)
    names, rows = engine(world, sql)
    assert table.column_names == names
    assert [tuple(r.values()) for r in table.to_pylist()] == rows


def test_metadata_lists_only_the_granted_twins(world):
    _, tables = raw.info_and_table(world["client"], pb.CommandGetTables(include_schema=True),
                                   bearer(world["tokens"]["bob"]))
    listed = {row["table_name"]: raw.read_schema(row["table_schema"]).names for row in tables.to_pylist()}
    assert listed == {"items": ["id", "name"], "Upper": ["id"], "t": ["id", "x"], "r": ["Y"]}
    _, keys = raw.info_and_table(world["client"], pb.CommandGetPrimaryKeys(table="t"), bearer(world["tokens"]["bob"]))
    assert keys.num_rows == 0  # the key is on "X", which bob may not read


def test_adbc_get_objects_shows_the_granted_columns_only(world):
    with flight_sql.connect(world["gateway"].location, db_kwargs={
            "adbc.flight.sql.authorization_header": f"Bearer {world['tokens']['bob']}"}, autocommit=True) as conn:
        objects = conn.adbc_get_objects(depth="columns", catalog_filter="pg").read_all().to_pylist()
    tables = {t["table_name"]: [c["column_name"] for c in t["table_columns"]]
              for catalog in objects for schema in catalog["catalog_db_schemas"] for t in schema["db_schema_tables"]}
    assert tables == {"items": ["id", "name"], "Upper": ["id"], "t": ["id", "x"], "r": ["Y"]}


def test_policies_apply_to_their_own_twin_only(world):
    """A mask on ``"X"`` leaves ``x`` alone; a row filter on ``"Items"`` leaves ``items`` alone."""
    masked = run(world, 'SELECT id, x, "X" FROM t ORDER BY id', "mo").to_pylist()
    assert masked == [{"id": 1, "x": 10, "X": None}, {"id": 2, "x": 20, "X": None}]
    assert run(world, 'SELECT * FROM "Items"', "mo").num_rows == 0
    assert run(world, "SELECT * FROM items ORDER BY id", "mo").to_pylist() == [
        {"id": 1, "name": "granted-1"}, {"id": 2, "name": "granted-2"}]
