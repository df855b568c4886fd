"""What metadata and the ``system`` catalog show a user who may read only part of a source, through each client.

A real catalog (SQLite) serves a DuckDB source ``sales`` and the ``system`` catalog through a gateway requiring
sign-in. bob (role ``analyst``) may read the columns ``id`` and ``amount`` of ``sales.main.orders`` and nothing
else; alice is an admin. Table schemas in GetTables (pyarrow.flight, ADBC ``adbc_get_objects``, the Flight SQL
JDBC driver's ``getColumns``) show bob only those columns; GetSqlInfo does not tell him every table is
selectable; the ``system`` catalog shows him ``query_history`` alone, cut to his own rows, never alice's SQL.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.catalog.directory import CatalogSourceDirectory, history_observer
from nexus_flight.catalog.grants import add_grant
from tests.clients import toolchain
from tests.security.conftest import (
    ALICE_PASSWORD,
    BOB_PASSWORD,
    bearer,
    module_store,
    sign_in,
    start_secured,
    stop_secured,
)
from tests.support import flightsql_raw as raw

ALICE_SECRET = "alice-only-literal-8812"


@pytest.fixture(scope="module")
def secured(tmp_path_factory, demo_data_dir):
    """One catalog and gateway for the module: its tests query them (bob's and alice's history rows accumulate)."""
    root = tmp_path_factory.mktemp("visibility")
    path = root / "sales.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE orders AS SELECT 1 AS id, 9.5 AS amount, 'vip' AS secret_note")
        con.execute("CREATE TABLE hidden AS SELECT 42 AS x")
        con.execute("CREATE TABLE accounts (secret_id INTEGER PRIMARY KEY, label TEXT)")
    with module_store(root / "data") as store:
        store.add_source("sales", "duckdb", {"path": str(path)})
        add_grant(store, "analyst", "sales", "main", "orders", columns=["id", "AMOUNT"])
        add_grant(store, "analyst", "sales", "main", "accounts", columns=["label"])
        history = history_observer(store)
        directory = CatalogSourceDirectory(store, default="sales", refresh_seconds=0, schema_ttl_seconds=0,
                                           history=history)
        served = start_secured(store, demo_data_dir, sources=directory, observers=[history])
        try:
            client = served.client()
            tokens = {"bob": sign_in(client, "bob", BOB_PASSWORD), "alice": sign_in(client, "alice", ALICE_PASSWORD)}
            yield served, client, tokens, history
            client.close()
        finally:
            stop_secured(served)
            history.close()


def _query(client, token, sql):
    return raw.info_and_table(client, pb.CommandStatementQuery(query=sql), bearer(token))[1].to_pylist()


def _schemas(client, token) -> dict[tuple[str, str], list[str]]:
    tables = raw.info_and_table(client, pb.CommandGetTables(include_schema=True), bearer(token))[1].to_pylist()
    return {(t["catalog_name"], t["table_name"]): pa.ipc.read_schema(pa.py_buffer(t["table_schema"])).names
            for t in tables}


def test_get_tables_shows_only_granted_columns_and_system_history(secured):
    _, client, tokens, _ = secured
    assert _schemas(client, tokens["bob"]) == {("sales", "orders"): ["id", "amount"], ("sales", "accounts"): ["label"],
                                               ("system", "query_history"): _schemas(
                                                   client, tokens["alice"])[("system", "query_history")]}
    admin = _schemas(client, tokens["alice"])
    assert admin[("sales", "orders")] == ["id", "amount", "secret_note"] and ("sales", "hidden") in admin
    assert {("system", t) for t in ("audit_events", "sources", "schema_versions")} <= admin.keys()
    catalogs = raw.info_and_table(client, pb.CommandGetCatalogs(), bearer(tokens["bob"]))[1]
    assert catalogs.column("catalog_name").to_pylist() == ["sales", "system"]


def test_key_rows_name_only_granted_columns(secured):
    _, client, tokens, _ = secured
    command = pb.CommandGetPrimaryKeys(catalog="sales", db_schema="main", table="accounts")
    keys = {user: raw.info_and_table(client, command, bearer(tokens[user]))[1].column("column_name").to_pylist()
            for user in ("bob", "alice")}
    assert keys == {"bob": [], "alice": ["secret_id"]}


def test_sql_info_does_not_claim_every_table_is_selectable(secured):
    _, client, tokens, _ = secured

    def selectable(user):
        info = raw.info_and_table(client, pb.CommandGetSqlInfo(info=[506]), bearer(tokens[user]))[1].to_pylist()
        return info[0]["value"]

    assert selectable("bob") is False and selectable("alice") is True
    everything = raw.info_and_table(client, pb.CommandGetSqlInfo(), bearer(tokens["bob"]))[1]
    text = str(everything.to_pylist())
    assert "hidden" not in text and "secret_note" not in text and "alice" not in text


def test_adbc_get_objects_shows_only_granted_columns(secured):
    import adbc_driver_flightsql.dbapi as flightsql

    gateway, _, tokens, _ = secured
    header = {"adbc.flight.sql.authorization_header": f"Bearer {tokens['bob']}"}
    with flightsql.connect(gateway.location, db_kwargs=header, autocommit=True) as conn:
        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    seen = {(c["catalog_name"], t["table_name"]): [col["column_name"] for col in t["table_columns"] or []]
            for c in objects for s in c["catalog_db_schemas"] or [] for t in s["db_schema_tables"] or []}
    assert seen.keys() == {("sales", "orders"), ("sales", "accounts"), ("system", "query_history")}
    assert seen[("sales", "orders")] == ["id", "amount"]


def test_jdbc_get_columns_and_tables_show_only_granted_objects(secured, tmp_path):
    gateway, _, _, _ = secured
    url = f"jdbc:arrow-flight-sql://127.0.0.1:{gateway.gateway.port}/?useEncryption=false"
    scenarios = [
        ("connect", "connect", url, "user=bob", f"password={BOB_PASSWORD}"),
        ("columns", "columns", "sales", "main", "orders", "%"),
        ("tables", "tables", "\\N", "\\N", "%", "\\N"),
        ("catalogs", "catalogs"),
    ]
    path = tmp_path / "jdbc-metadata.tsv"
    path.write_text("\n".join("\t".join(s) for s in scenarios) + "\n", encoding="utf-8")
    records = toolchain.run_lines([*toolchain.java_command("JdbcScenarios"), str(path)])

    def column(name, label):
        record = records[name]
        assert record["ok"], record
        names = [c["name"] for c in record["result"]["columns"]]
        return [row[names.index(label)]["value"] for row in record["result"]["rows"]]

    assert column("columns", "COLUMN_NAME") == ["id", "amount"]
    assert sorted(column("tables", "TABLE_NAME")) == ["accounts", "orders", "query_history"]
    assert column("catalogs", "TABLE_CAT") == ["sales", "system"]


def test_a_user_reads_only_their_own_history_rows(secured):
    _, client, tokens, history = secured
    _query(client, tokens["alice"], f"SELECT '{ALICE_SECRET}' AS s")
    _query(client, tokens["bob"], "SELECT id FROM orders")
    history.flush()
    rows = _query(client, tokens["bob"], "SELECT user_name, sql_text FROM system.main.query_history")
    assert rows and {r["user_name"] for r in rows} == {"bob"} and ALICE_SECRET not in str(rows)
    for sql in ("SELECT count(*) AS n FROM system.main.query_history WHERE user_name = 'alice'",
                f"SELECT count(*) AS n FROM system.main.query_history WHERE sql_text LIKE '%{ALICE_SECRET}%'",
                "SELECT count(*) AS n FROM (SELECT * FROM system.main.query_history) h WHERE user_name <> 'bob'"):
        assert _query(client, tokens["bob"], sql) == [{"n": 0}], sql
    admin = _query(client, tokens["alice"], "SELECT DISTINCT user_name FROM system.main.query_history")
    assert {r["user_name"] for r in admin} == {"alice", "bob"}


@pytest.mark.parametrize("sql, what", [
    ("SELECT * FROM system.main.audit_events", "table system.main.audit_events"),
    ("SELECT * FROM system.main.sources", "table system.main.sources"),
    ("SELECT * FROM system.main.schema_versions", "table system.main.schema_versions"),
    ("SELECT * FROM system.main.no_such_table", "table system.main.no_such_table"),
    ("SELECT * FROM system.information_schema.tables", "table system.information_schema.tables"),
    ("SELECT * FROM system.main.query_history h JOIN system.main.audit_events a ON true",
     "table system.main.audit_events"),
    ("WITH h AS (SELECT * FROM system.main.query_history) SELECT * FROM h, system.main.sources",
     "table system.main.sources"),
    ("SELECT * FROM system.main.query_history UNION ALL SELECT * FROM system.main.query_history, "
     "system.main.audit_events", "table system.main.audit_events"),
])
def test_the_admin_only_system_tables_are_refused_to_others(secured, sql, what):
    _, client, tokens, _ = secured
    with pytest.raises(flight.FlightUnauthorizedError) as info:
        _query(client, tokens["bob"], sql)
    assert str(info.value).startswith(f"permission denied: no SELECT privilege on {what}")
