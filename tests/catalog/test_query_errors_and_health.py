"""A query's mistakes never mark its source down; only a source that cannot be reached is UNAVAILABLE and marked.

Served from the catalog (its ``system.main.sources`` table shows each source's status), queried with ADBC: a table
dropped after the gateway described it, a view over that table, a table the source's login may not read. Sources
that are away (a SQLite file removed, a PostgreSQL port nobody listens on) are UNAVAILABLE, and marked in error.
"""

from __future__ import annotations

import sqlite3

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import psycopg
import pytest

from nexus_flight.catalog.directory import CatalogSourceDirectory
from nexus_flight.catalog.health import check_source
from nexus_flight.core.settings import ServerSettings
from nexus_flight.server.app.gateway import Gateway
from tests.support.services import free_port


@pytest.fixture
def lite_file(tmp_path):
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE orders (id INTEGER)")
        con.execute("INSERT INTO orders VALUES (1)")
        con.execute("CREATE VIEW recent AS SELECT id FROM orders")
    return path


@pytest.fixture
def pg_tables(postgres_server):
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS orders, salaries")
        con.execute("CREATE TABLE orders (id int)")
        con.execute("CREATE TABLE salaries (id int)")
        con.execute(f"REVOKE SELECT ON salaries FROM {postgres_server.reader}")
    return postgres_server


@pytest.fixture
def served(sqlite_store, lite_file, pg_tables, tmp_path):
    sqlite_store.add_source("lite", "sqlite", {"path": str(lite_file)})
    sqlite_store.add_source("pg", "postgresql", pg_tables.options())
    sqlite_store.add_source("pg_away", "postgresql", {**pg_tables.options(), "port": free_port()})
    away_file = tmp_path / "away" / "gone.db"  # removed once the gateway serves it
    away_file.parent.mkdir()
    sqlite3.connect(away_file).close()
    sqlite_store.add_source("lite_away", "sqlite", {"path": str(away_file)})
    for name in ("lite", "pg"):
        assert check_source(sqlite_store, name).status == "active"
    directory = CatalogSourceDirectory(sqlite_store, refresh_seconds=0, schema_ttl_seconds=0)
    gateway = Gateway(ServerSettings(port=0, data_dir=tmp_path, demo_scale=None), sources=directory).start()
    yield sqlite_store, gateway, away_file
    gateway.shutdown()


def refusal(conn, sql: str) -> tuple[str, str]:
    with conn.cursor() as cur, pytest.raises(adbc_driver_manager.Error) as failure:
        cur.execute(sql)
        cur.fetch_arrow_table()
    message = str(failure.value)
    return message.rsplit("(", 1)[1].split(";")[0], message


def statuses(conn) -> dict[str, tuple[str, str | None]]:
    with conn.cursor() as cur:
        cur.execute("SELECT name, status, last_error FROM system.main.sources")
        return {r["name"]: (r["status"], r["last_error"]) for r in cur.fetch_arrow_table().to_pylist()}


def test_mistakes_leave_the_source_healthy_and_only_an_absent_source_is_unavailable(served, lite_file, pg_tables):
    _, gateway, away_file = served
    with flightsql.connect(gateway.location, autocommit=True) as conn:
        for sql in ("SELECT * FROM lite.main.orders", "SELECT * FROM lite.main.recent",
                    "SELECT * FROM pg.public.orders"):
            with conn.cursor() as cur:
                cur.execute(sql)
                cur.fetch_arrow_table()
        conn.adbc_get_objects(depth="columns", catalog_filter="lite").read_all()  # the schema is cached
        with sqlite3.connect(lite_file) as con:
            con.execute("DROP TABLE orders")
        with psycopg.connect(pg_tables.dsn(), autocommit=True) as con:
            con.execute("DROP TABLE orders")

        for sql, status, named in (
            ("SELECT * FROM lite.main.orders", "NotFound", "no such table: main.orders"),
            ("SELECT * FROM lite.main.recent", "NotFound", "no such table: main.orders"),
            ("SELECT * FROM pg.public.orders", "NotFound", 'relation "public.orders" does not exist'),
            ("SELECT * FROM pg.public.salaries", "PermissionDenied", "permission denied for table salaries"),
        ):
            got, message = refusal(conn, sql)
            assert got == status, message
            assert named in message and f"source={sql.split()[3].split('.')[0]}" in message
        # The view whose table is gone is still listed, without columns.
        objects = conn.adbc_get_objects(depth="columns", catalog_filter="lite").read_all().to_pylist()
        tables = {t["table_name"] for t in objects[0]["catalog_db_schemas"][0]["db_schema_tables"]}
        assert tables == {"recent"}
        healthy = statuses(conn)
        assert healthy["lite"] == healthy["pg"] == ("active", None)

        away_file.unlink()
        for source in ("lite_away", "pg_away"):
            got, message = refusal(conn, f"SELECT 1 FROM {source}.main.t")
            assert got == "Unavailable", message
            assert f"source={source}" in message and str(away_file.parent) not in message
        after = statuses(conn)
    assert after["lite_away"][0] == after["pg_away"][0] == "error"
    assert after["lite"] == after["pg"] == ("active", None)
