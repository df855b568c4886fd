"""Privilege escalation through the case of a table name, on a real MariaDB source.

MariaDB on Linux keeps table names as written and compares them exactly (``lower_case_table_names=0``, the
default, which the test server runs with): ``items`` and ``Items`` are two tables, while column names compare
without regard to case. bob holds the table ``items`` and the column ``Name`` of ``cols``; every way of naming
the twin ``Items`` is refused naming it, every way of naming the granted objects answers what MariaDB itself
answers (asked through pymysql), and metadata lists only what is granted. The gateway, catalog and MariaDB are
real; clients are pyarrow.flight and ADBC.
"""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.catalog.directory import CatalogSourceDirectory
from nexus_flight.catalog.grants import add_grant
from tests.security.conftest import (
    BOB_PASSWORD,
    bearer,
    module_store,
    sign_in,
    start_secured,
    stop_secured,
)
from tests.support import flightsql_raw as raw
from tests.support.mysql_reader import READER_PASSWORD, engine_answer, fresh_database

DATABASE = "identifier_case"
DDL = [
    "CREATE TABLE items (id int, name varchar(20))",
    "INSERT INTO items VALUES (1, 'granted-1'), (2, 'granted-2')",
    "CREATE TABLE Items (id int, name varchar(20))",
    "INSERT INTO Items VALUES (1, 'hidden-1')",
    "CREATE TABLE cols (id int, Name varchar(20), secret varchar(20))",
    "INSERT INTO cols VALUES (1, 'shown', 'hidden')",
]


@pytest.fixture(scope="module")
def twins(mariadb_server):
    with mariadb_server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@lower_case_table_names")
        assert cur.fetchone()[0] == 0, "the test server must tell table names apart by case"
    return fresh_database(mariadb_server, DATABASE, DDL)


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_data_dir, twins, mariadb_server):
    """One catalog and gateway for the module: its tests only query them."""
    with module_store(tmp_path_factory.mktemp("maria-case") / "data") as store:
        store.add_source("maria", "mariadb", twins, {"password": READER_PASSWORD})
        add_grant(store, "analyst", "maria", DATABASE, "items")
        add_grant(store, "analyst", "maria", DATABASE, "cols", columns=["Name"])
        secured = start_secured(store, demo_data_dir,
                                sources=CatalogSourceDirectory(store, default="maria", refresh_seconds=0),
                                demo_scale=None)
        try:
            client = secured.client()
            token = sign_in(client, "bob", BOB_PASSWORD)
            yield {"client": client, "token": token, "location": secured.location, "server": mariadb_server}
            client.close()
        finally:
            stop_secured(secured)


def run(world, sql: str):
    return raw.info_and_table(world["client"], pb.CommandStatementQuery(query=sql), bearer(world["token"]))[1]


def engine(world, sql: str) -> tuple[list[str], list[tuple]]:
    """MariaDB's own answer, through pymysql."""
    return engine_answer(world["server"], DATABASE, sql)


DENIED = [
    "SELECT * FROM Items",
    "SELECT name FROM identifier_case.Items",
    "SELECT count(*) FROM `Items`",
    "SELECT * FROM items JOIN Items USING (id)",
    "SELECT name FROM items UNION SELECT name FROM Items",
    "SELECT * FROM items WHERE id IN (SELECT id FROM Items)",
    "SELECT * FROM ITEMS",  # no such table on this server: refused all the same (no existence oracle)
]


@pytest.mark.parametrize("sql", DENIED)
def test_the_ungranted_twin_is_refused_naming_it(world, sql):
    with pytest.raises(flight.FlightUnauthorizedError) as info:
        run(world, sql)
    named = "ITEMS" if "ITEMS" in sql else "Items"
    assert str(info.value).startswith(f"permission denied: no SELECT privilege on table maria.{DATABASE}.{named}")


ALLOWED = [
    "SELECT * FROM items ORDER BY id",
    "SELECT ID, NAME FROM items ORDER BY Id",
    f"SELECT name FROM {DATABASE}.items ORDER BY id",
    "SELECT name FROM cols",
    "SELECT NAME, cols.name FROM cols",
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_the_granted_objects_answer_as_mariadb_does(world, sql):
    table = run(world, sql)
    names, rows = engine(world, sql)
    assert table.column_names == names
    assert [tuple(r.values()) for r in table.to_pylist()] == rows


def test_a_column_grant_still_compares_column_names_without_case(world):
    with pytest.raises(flight.FlightUnauthorizedError, match=f"column maria.{DATABASE}.cols.SECRET"):
        run(world, "SELECT SECRET FROM cols")
    with pytest.raises(flight.FlightUnauthorizedError, match=f"column maria.{DATABASE}.cols.id"):
        run(world, "SELECT * FROM cols")


def test_metadata_lists_only_the_granted_twin(world):
    _, tables = raw.info_and_table(world["client"], pb.CommandGetTables(catalog="maria", include_schema=True),
                                   bearer(world["token"]))
    listed = {row["table_name"]: raw.read_schema(row["table_schema"]).names for row in tables.to_pylist()}
    assert listed == {"items": ["id", "name"], "cols": ["Name"]}
    with flight_sql.connect(world["location"], db_kwargs={
            "adbc.flight.sql.authorization_header": f"Bearer {world['token']}"}, autocommit=True) as conn:
        objects = conn.adbc_get_objects(depth="tables", catalog_filter="maria").read_all().to_pylist()
    names = {t["table_name"] for c in objects for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]}
    assert names == {"items", "cols"}
