"""A PostgreSQL source's schema snapshot reads each schema's tables together, and answers as describing each would.

``table_schemas`` reads pg_attribute once for a schema and answers for the tables whose column types settle their
Arrow types; the snapshot describes the others one by one (``table_schema``). Against this run's own PostgreSQL, for
a table of each type of a wide list (the differential zoo's and more), views, a materialized view, partitions, a
foreign table, dropped columns and unusual names: the schema read together equals ``table_schema``'s (names, types,
nullability, field metadata) and the schema ``SELECT *`` streams, and the snapshot costs a few statements a schema.
"""

from __future__ import annotations

import contextlib

import psycopg
import pyarrow as pa
import pytest

from nexus_flight.backends import postgres_snapshot
from nexus_flight.backends.postgres import PostgresBackend
from nexus_flight.catalog.schema_cache import snapshot_backend
from nexus_flight.core.errors import InvalidQueryError, NotFoundError
from nexus_flight.core.source import SourceSpec
from tests.differential.family_postgres import ZOO_TYPES
from tests.support.results import run

DATABASE = "snapshot"
#: A second schema, its name mixed-case and not ASCII.
OTHER = "Ventes Ω"

#: The zoo's types whose tables are described alone: an enum, a composite, a range, oid and the arrays whose items
#: are converted (money, oid) or unwrapped (uuid, jsonb).
ZOO_ALONE = {"mood", "pair", "int4range", "oid", "money[]", "oid[]", "uuid[]", "jsonb[]"}
#: More types, and whether the bulk read answers for a table of that type (False: it is described alone).
MORE_TYPES = {
    "time(3)": True,
    "timestamp(3) with time zone": True,
    "interval(2)": True,
    "interval day to second": True,
    "varchar": True,
    "name": True,
    "macaddr8": True,
    "bit varying": True,
    "integer[][]": True,
    "bigint[]": True,
    "varchar(5)[]": True,
    "char(3)[]": True,
    "bytea[]": True,
    "boolean[]": True,
    "date[]": True,
    "time[]": True,
    "timestamptz[]": True,
    "interval[]": True,
    "numeric[]": True,
    "numeric(1000, 2)": False,  # beyond Arrow's decimals: the query's scale rules decide
    "numeric(5, 7)": False,
    "numeric(2, -3)": False,
    '"char"': False,
    "oid": False,
    "tsrange": False,
    "int4multirange": False,
    "point": False,
    "tsvector": False,
    "uuid[]": False,
    "json[]": False,
    "jsonb[]": False,
    "money[]": False,
    "inet[]": False,
    "int4range[]": False,
    "mood[]": False,
    "pair[]": False,
    "positive": False,  # domains
    "positive[]": False,
    "price": False,
    "citext": False,  # extensions' types
    "hstore": False,
}
TYPES = {**{t: t not in ZOO_ALONE for t in ZOO_TYPES}, **MORE_TYPES}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_of(type_name: str) -> str:
    return f"of {type_name}"


def _setup(server) -> None:
    server.create_database(DATABASE)
    together = [t for t, read_together in TYPES.items() if read_together]
    amount, label = (f"c{together.index(t)}" for t in ("numeric(15,2)", "text"))
    statements = [
        "CREATE TYPE mood AS ENUM ('sad', 'ok')",
        "CREATE TYPE pair AS (a integer, b text)",
        "CREATE DOMAIN positive AS integer CHECK (VALUE > 0)",
        "CREATE DOMAIN price AS numeric(8, 3)",
        "CREATE EXTENSION citext",
        "CREATE EXTENSION hstore",
        # a table of each type, named after it; a NOT NULL column beside it
        *(f"CREATE TABLE {_quote(_table_of(t))} (id integer NOT NULL, c {t})" for t in TYPES),
        # every type in one table (described alone), the certain ones in another (read together)
        f"CREATE TABLE zoo (id integer NOT NULL, {', '.join(f'c{i} {t}' for i, t in enumerate(TYPES))})",
        f"CREATE TABLE zoo_plain (id integer PRIMARY KEY, {', '.join(f'c{i} {t}' for i, t in enumerate(together))})",
        # computed columns: numeric without typmod, a sum's and a product's
        f"CREATE VIEW zoo_v AS SELECT id, {amount} * 2 AS twice, {amount}::numeric(20, 4) AS wider, "
        f"upper({label}) AS shout FROM zoo_plain",
        f"CREATE VIEW totals_v AS SELECT count(*) AS n, sum({amount}) AS total, avg(id) AS mean FROM zoo_plain",
        "CREATE MATERIALIZED VIEW zoo_m AS SELECT * FROM zoo_plain",
        "CREATE TABLE parted (id integer NOT NULL, sold date, amount numeric(10, 2)) PARTITION BY RANGE (sold)",
        "CREATE TABLE parted_2024 PARTITION OF parted FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        "CREATE EXTENSION postgres_fdw",
        f"CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '{server.host}', "
        f"port '{server.port}', dbname '{DATABASE}')",
        f"CREATE USER MAPPING FOR {server.reader} SERVER loopback OPTIONS (user 'postgres', password_required 'false')",
        "CREATE FOREIGN TABLE remote (id integer NOT NULL, sold date, amount numeric(10, 2)) SERVER loopback "
        "OPTIONS (schema_name 'public', table_name 'parted')",
        "CREATE TABLE dropped (a integer, b text, c numeric(10, 2) NOT NULL, d date)",
        "ALTER TABLE dropped DROP COLUMN b",
        "ALTER TABLE dropped DROP COLUMN d",
        "ALTER TABLE dropped ADD COLUMN e timestamptz",
        'CREATE TABLE "MixedCase" ("Id" integer NOT NULL, "CamelCol" text, "with ""quote""" bigint)',
        'CREATE TABLE "Größe 表" ("Größe" numeric(8, 2), "名前" text NOT NULL)',
        "CREATE TABLE nothing ()",  # no columns: table_schema reports it missing, the snapshot unreadable
        f"CREATE SCHEMA {_quote(OTHER)}",
        f'CREATE TABLE {_quote(OTHER)}."Commandes" (id integer NOT NULL, total numeric(12, 2), "Client" text)',
        f'CREATE TABLE {_quote(OTHER)}."Retours" (id positive, motif text)',
        f'CREATE VIEW {_quote(OTHER)}.grosses AS SELECT * FROM {_quote(OTHER)}."Commandes" WHERE total > 100',
    ]
    with psycopg.connect(server.dsn(DATABASE), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO zoo_plain (id) VALUES (1)")
        conn.execute("REFRESH MATERIALIZED VIEW zoo_m")
        conn.execute("INSERT INTO parted VALUES (1, '2024-05-05', 1.50)")


class CountingBackend(PostgresBackend):
    """The PostgreSQL backend, counting the statements it sends (catalog reads, descriptions, preparations)."""

    statements = 0

    def _rows(self, sql, params=()):
        self.statements += 1
        return super()._rows(sql, params)

    def _describe(self, statement):
        self.statements += 1
        return super()._describe(statement)

    def _prepare(self, statement):
        self.statements += 1
        return super()._prepare(statement)


class OneByOneBackend(PostgresBackend):
    """The PostgreSQL backend as it snapshotted before: every table described alone."""

    def table_schemas(self, db_schema):
        return {}


class OlderCatalogBackend(PostgresBackend):
    """The PostgreSQL backend on an engine whose pg_type lacks a column the read of a schema's columns needs."""

    def table_schemas(self, db_schema):
        return postgres_snapshot.table_schemas(
            lambda sql, params: self._rows(sql.replace("e.typarray", "e.typarray_elsewhere"), params), db_schema
        )


@pytest.fixture(scope="module")
def backend(postgres_server):
    _setup(postgres_server)
    with CountingBackend(SourceSpec("snap", "postgres", postgres_server.options(DATABASE))) as b:
        yield b


def _tables(backend) -> list[tuple[str, str]]:
    return [(t.db_schema, t.name) for s in backend.list_schemas() for t in backend.list_tables(s)]


def test_the_tables_read_together_are_the_ones_of_certain_types(backend):
    read_together = backend.table_schemas("public")
    assert {t for t in TYPES if _table_of(t) in read_together} == {t for t, certain in TYPES.items() if certain}
    assert {"zoo_plain", "zoo_v", "totals_v", "zoo_m", "parted", "parted_2024", "remote", "dropped", "MixedCase",
            "Größe 表"} <= read_together.keys()
    assert "zoo" not in read_together
    assert "nothing" not in read_together
    assert set(backend.table_schemas(OTHER)) == {"Commandes", "grosses"}  # "Retours" has a domain's column


def test_a_schema_read_together_equals_each_table_described_alone(backend):
    compared = 0
    for db_schema, table in _tables(backend):
        read_together = backend.table_schemas(db_schema).get(table)
        if read_together is None:
            continue
        alone = backend.table_schema(db_schema, table)
        assert read_together.equals(alone, check_metadata=True), (table, read_together, alone)
        compared += 1
    assert compared == len(backend.table_schemas("public")) + len(backend.table_schemas(OTHER))


def test_a_schema_read_together_equals_what_select_star_streams(backend):
    for db_schema, schemas in (("public", backend.table_schemas("public")), (OTHER, backend.table_schemas(OTHER))):
        for table, schema in schemas.items():
            streamed = run(backend, f"SELECT * FROM {_quote(db_schema)}.{_quote(table)}").schema
            # The catalog adds what a result cannot say: NOT NULL, the database's type name, fractional digits.
            expected = pa.schema([f.with_nullable(True).remove_metadata() for f in schema])
            assert streamed.equals(expected, check_metadata=True), (table, streamed, expected)


def test_the_snapshot_is_the_one_each_table_described_alone_gives(backend, postgres_server):
    with OneByOneBackend(SourceSpec("snap", "postgres", postgres_server.options(DATABASE))) as one_by_one:
        alone = snapshot_backend(one_by_one)
    together = snapshot_backend(backend)
    assert together == alone
    assert together["schemas"]["public"]["nothing"]["columns"] == []  # listed, unreadable, as before


def test_an_engine_that_cannot_read_a_schema_together_has_each_table_described_alone(backend, postgres_server):
    with OlderCatalogBackend(SourceSpec("snap", "postgres", postgres_server.options(DATABASE))) as older:
        with pytest.raises(InvalidQueryError, match="typarray_elsewhere"):
            older.table_schemas("public")
        assert snapshot_backend(older) == snapshot_backend(backend)


def test_a_snapshot_asks_a_few_statements_a_schema_not_two_a_table(backend):
    schemas = backend.list_schemas()
    tables = _tables(backend)
    described_alone = [t for t in tables if t[1] not in backend.table_schemas(t[0])]
    backend.statements = 0
    for db_schema, table in described_alone:
        with contextlib.suppress(NotFoundError):  # "nothing": its columns are read, there are none
            backend.table_schema(db_schema, table)
    alone = backend.statements
    backend.statements = 0
    snapshot_backend(backend)
    # the schemas, then each schema's tables and their columns, then the tables described alone
    assert backend.statements == 1 + 2 * len(schemas) + alone
    assert len(described_alone) < len(tables) / 2, (len(described_alone), len(tables))
