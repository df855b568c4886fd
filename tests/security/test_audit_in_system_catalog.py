"""The audit trail in the ``system`` catalog: administrators query it with SQL; nobody else reads it.

A real catalog (SQLite) serves a DuckDB source and the ``system`` catalog through a gateway requiring sign-in;
failed sign-ins, a lockout and a key's creation are then read back by an administrator over Flight SQL.
"""

from __future__ import annotations

import duckdb
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.catalog.api_keys import create_key
from nexus_flight.catalog.directory import CatalogSourceDirectory, history_observer
from nexus_flight.catalog.grants import add_grant
from nexus_flight.core.settings import AuthSettings, LockoutSettings
from tests.security.conftest import ALICE_PASSWORD, BOB_PASSWORD, bearer, sign_in
from tests.support import flightsql_raw as raw


@pytest.fixture
def secured(secure_gateway, store, tmp_path):
    path = tmp_path / "sales.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE orders AS SELECT 1 AS id, 9.5 AS amount")
    store.add_source("sales", "duckdb", {"path": str(path)})
    add_grant(store, "analyst", "sales", "main", "orders")
    history = history_observer(store)
    directory = CatalogSourceDirectory(store, default="sales", refresh_seconds=0, schema_ttl_seconds=0,
                                       history=history)
    lockout = LockoutSettings(user_throttle_after=2, user_lockout_after=2, lockout_seconds=60)
    yield secure_gateway(auth=AuthSettings(enabled=True, lockout=lockout), sources=directory, observers=[history])
    history.close()


def _query(client, token, sql):
    return raw.info_and_table(client, pb.CommandStatementQuery(query=sql), bearer(token))[1].to_pylist()


def test_admins_read_failures_lockouts_and_key_creation_without_secrets(secured, store):
    client = secured.client()
    for _ in range(2):
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.authenticate_basic_token("bob", "bob-wrong-password-1")
    _, key = create_key(store, "bob", "etl", actor="alice")
    secured.security.audit.flush()
    admin = sign_in(client, "alice", ALICE_PASSWORD)
    rows = _query(client, admin, "SELECT kind, actor, auth_method, detail FROM system.main.audit_events "
                                 "WHERE kind IN ('auth_failure', 'lockout', 'key_created') ORDER BY created_at")
    kinds = [(r["kind"], r["actor"]) for r in rows]
    assert kinds.count(("auth_failure", "bob")) == 2
    assert ("lockout", "bob") in kinds and ("key_created", "alice") in kinds
    text = str(rows)
    assert "bob-wrong-password-1" not in text and key.split("_", 2)[2] not in text


def test_other_users_read_no_audit_event(secured, store):
    client = secured.client()
    token = sign_in(client, "bob", BOB_PASSWORD)
    assert _query(client, token, "SELECT id FROM orders") == [{"id": 1}]
    for sql in ("SELECT * FROM system.main.audit_events", "SELECT count(*) FROM system.main.audit_events",
                "SELECT * FROM system.main.query_history, system.main.audit_events"):
        with pytest.raises(flight.FlightUnauthorizedError, match="table system.main.audit_events"):
            _query(client, token, sql)
    tables = raw.info_and_table(client, pb.CommandGetTables(catalog="system"), bearer(token))[1]
    assert tables.column("table_name").to_pylist() == ["query_history"]


def test_history_rows_carry_the_principal_its_sign_in_method_and_address(secured, store):
    client = secured.client()
    _query(client, sign_in(client, "bob", BOB_PASSWORD), "SELECT id FROM orders")
    with pytest.raises(flight.FlightUnauthorizedError):
        _query(client, sign_in(client, "bob", BOB_PASSWORD), "SELECT * FROM secret_table")
    _, key = create_key(store, "bob", "etl")
    secured.security.authenticator.identities.refresh()
    _query(client, key, "SELECT count(*) FROM orders")
    admin = sign_in(client, "alice", ALICE_PASSWORD)
    rows = _query(client, admin, "SELECT user_name, auth_method, client_address, status FROM system.main.query_history "
                                 "WHERE user_name = 'bob' ORDER BY created_at")
    assert [(r["auth_method"], r["status"]) for r in rows] == [("password", "success"), ("password", "rejected"),
                                                               ("api_key", "success")]
    assert all(r["client_address"] and "127.0.0.1" in r["client_address"] for r in rows)
