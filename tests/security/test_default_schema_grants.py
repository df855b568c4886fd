"""Schema grants on PostgreSQL and MariaDB sources: an unqualified name resolves where the engine resolves it.

bob (role ``analyst``) holds a grant on one schema of each source. PostgreSQL and MariaDB servers are real (the
run's private instances); each source has a table of the same name in two schemas, with different rows, so the
rows that come back show which one the engine read. The source's default schema is PostgreSQL's ``public`` unless
its ``search_path`` option names another, and MariaDB's the source's database.
"""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flightsql
import pytest

from nexus_flight.catalog.directory import CatalogSourceDirectory
from nexus_flight.catalog.grants import add_grant
from tests.security.conftest import BOB_PASSWORD, sign_in
from tests.support.mysql_reader import READER_PASSWORD, ensure_reader


@pytest.fixture(scope="module")
def pg_schemas(postgres_server):
    import psycopg

    postgres_server.create_database("grants_schemas")
    with psycopg.connect(postgres_server.dsn("grants_schemas"), autocommit=True) as conn:
        conn.execute("CREATE TABLE public.orders (id int, who text)")
        conn.execute("INSERT INTO public.orders VALUES (1, 'public')")
        conn.execute("CREATE SCHEMA sales")
        conn.execute("CREATE TABLE sales.orders (id int, who text)")
        conn.execute("INSERT INTO sales.orders VALUES (2, 'sales')")
        conn.execute(f"GRANT USAGE ON SCHEMA sales TO {postgres_server.reader}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA sales TO {postgres_server.reader}")
        # PostgreSQL's own default search_path ("$user", public) would read this one first: pinned, it does not
        conn.execute(f"CREATE SCHEMA {postgres_server.reader} AUTHORIZATION postgres")
        conn.execute(f"CREATE TABLE {postgres_server.reader}.orders (id int, who text)")
        conn.execute(f"INSERT INTO {postgres_server.reader}.orders VALUES (3, 'reader')")
        conn.execute(f"GRANT USAGE ON SCHEMA {postgres_server.reader} TO {postgres_server.reader}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {postgres_server.reader} TO {postgres_server.reader}")
    return postgres_server


@pytest.fixture(scope="module")
def maria_schemas(mariadb_server):
    with mariadb_server.connect() as conn, conn.cursor() as cur:
        for database, who in (("grants_a", "a"), ("grants_b", "b")):
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {database}.orders (id int, who varchar(10))")
            cur.execute(f"DELETE FROM {database}.orders")
            cur.execute(f"INSERT INTO {database}.orders VALUES (1, '{who}')")
    ensure_reader(mariadb_server, "grants_b")  # the login reads both: only the grants keep grants_b out
    return ensure_reader(mariadb_server, "grants_a")


@pytest.fixture
def served(store, secure_gateway, pg_schemas, maria_schemas):
    store.add_source("pg", "postgresql", pg_schemas.options("grants_schemas"))
    store.add_source("pgsales", "postgresql", pg_schemas.options("grants_schemas", search_path="sales"))
    store.add_source("maria", "mariadb", maria_schemas, {"password": READER_PASSWORD})
    add_grant(store, "analyst", "pg", "public")
    add_grant(store, "analyst", "pgsales", "sales")
    add_grant(store, "analyst", "maria", "grants_a")
    directory = CatalogSourceDirectory(store, default="pg", refresh_seconds=0)
    secured = secure_gateway(sources=directory, demo_scale=None)
    client = secured.client()
    token = sign_in(client, "bob", BOB_PASSWORD)
    client.close()
    header = {"adbc.flight.sql.authorization_header": f"Bearer {token}"}
    with flightsql.connect(secured.location, db_kwargs=header, autocommit=True) as conn:
        def run(sql, catalog):
            conn.adbc_current_catalog = catalog
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetch_arrow_table().to_pylist()
        yield run


def _refused(run, sql, catalog):
    with pytest.raises(Exception) as info:  # noqa: B017 - the driver's error: its text and status are checked
        run(sql, catalog)
    assert "(PermissionDenied;" in str(info.value)
    return str(info.value).split("\n")[0].split(". Detail:")[0].rstrip(".")


def test_postgresql_unqualified_names_resolve_in_public(served):
    assert served("SELECT id, who FROM orders", "pg") == [{"id": 1, "who": "public"}]
    assert served("SELECT * FROM public.orders", "pg") == [{"id": 1, "who": "public"}]
    assert _refused(served, "SELECT * FROM sales.orders", "pg").endswith("table pg.sales.orders")
    assert _refused(served, "SELECT * FROM nexus_reader.orders", "pg").endswith("table pg.nexus_reader.orders")


def test_postgresql_search_path_option_moves_the_default_schema(served):
    assert served("SELECT id, who FROM orders", "pgsales") == [{"id": 2, "who": "sales"}]
    assert _refused(served, "SELECT * FROM public.orders", "pgsales").endswith("table pgsales.public.orders")


def test_mariadb_unqualified_names_resolve_in_the_source_database(served):
    assert served("SELECT id, who FROM orders", "maria") == [{"id": 1, "who": "a"}]
    assert served("SELECT id, who FROM grants_a.orders", "maria") == [{"id": 1, "who": "a"}]
    assert _refused(served, "SELECT * FROM grants_b.orders", "maria").endswith("table maria.grants_b.orders")
