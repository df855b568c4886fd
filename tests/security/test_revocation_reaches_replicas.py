"""A revocation made on one replica is refused by every other on its very next call.

Two ``nexus-flight serve`` processes share one SQLite catalog; their periodic identity refresh is set to five
minutes, so only the per-call check of the catalog's security generation can explain a refusal. Clients are
pyarrow.flight and ADBC; the revocations go through the other replica's ``DoAction`` and through the catalog
(as the CLI makes them). On a PostgreSQL catalog (two gateways, each with its own store and connections) the
other replica refuses once the change's notification has arrived, within milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from pathlib import Path

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import pyarrow.flight as flight
import pytest

from nexus_flight.catalog.api_keys import create_key
from nexus_flight.catalog.grants import add_grant
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.users import add_role, add_user, update_user
from nexus_flight.core.settings import AuthSettings
from tests.operations.serving import serve, share_demo
from tests.security.conftest import ALICE_PASSWORD, BOB_PASSWORD, bearer, sign_in
from tests.support import flightsql_raw as raw

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def replicas(store, tmp_path, demo_data_dir):
    config = tmp_path / "gateway.toml"
    config.write_text("[server.auth]\nenabled = true\nrefresh_seconds = 300\n")
    data_dir = share_demo(Path(store.engine.url.database).parent, demo_data_dir)
    started = []
    try:
        for _ in range(2):
            started.append(serve(data_dir, "--config", str(config)))
        yield [flight.FlightClient(s.location) for s in started], [s.location for s in started]
    finally:
        for served in started:
            served.stop()


def one(client, token) -> list:
    query = raw.pb.CommandStatementQuery(query="SELECT 1 AS one")
    return raw.info_and_table(client, query, bearer(token))[1].to_pylist()


def refused(call) -> str:
    with pytest.raises(flight.FlightUnauthenticatedError) as info:
        call()
    return str(info.value)


def act(client, token, kind, body):
    [result] = client.do_action(flight.Action(kind, json.dumps(body).encode()), bearer(token))
    return json.loads(result.body.to_pybytes())


def test_a_token_revoked_on_one_replica_is_refused_by_the_other_on_its_next_call(replicas):
    (here, there), _ = replicas
    bob_here, bob_there = sign_in(here, "bob", BOB_PASSWORD), sign_in(there, "bob", BOB_PASSWORD)
    assert one(there, bob_here) == [{"one": 1}] and one(here, bob_there) == [{"one": 1}]
    act(here, bob_here, "nexus.tokens.revoke", {})
    assert "invalid or revoked credentials" in refused(lambda: one(there, bob_here))
    assert one(there, bob_there) == [{"one": 1}]  # the user's other sign-in stands
    alice = sign_in(there, "alice", ALICE_PASSWORD)
    act(there, alice, "nexus.tokens.revoke", {"user": "bob"})
    assert "invalid or revoked credentials" in refused(lambda: one(here, bob_there))


def test_a_user_disabled_in_the_catalog_is_refused_on_the_next_call(replicas, store):
    (here, there), _ = replicas
    bob = sign_in(here, "bob", BOB_PASSWORD)
    assert one(there, bob) == [{"one": 1}]
    update_user(store, "bob", disabled=True)  # as `nexus-flight users disable` does
    assert "invalid or revoked credentials" in refused(lambda: one(there, bob))
    assert "invalid or revoked credentials" in refused(lambda: one(here, bob))


def test_an_api_key_made_or_revoked_elsewhere_counts_on_the_next_call(replicas, store):
    (here, there), (_, there_location) = replicas
    add_grant(store, "analyst", "system")  # something bob may list
    _, key = create_key(store, "bob", "etl")
    header = {"adbc.flight.sql.authorization_header": f"Bearer {key}"}
    conn = flight_sql.connect(there_location, db_kwargs=header, autocommit=True)  # a key made a moment ago
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        alice = sign_in(here, "alice", ALICE_PASSWORD)
        [listed] = act(here, alice, "nexus.keys.list", {"owner": "bob"})
        act(here, alice, "nexus.keys.revoke", {"id": listed["id"]})
        with pytest.raises(adbc_driver_manager.Error, match="invalid or revoked credentials"):
            conn.adbc_get_table_types()
    finally:
        with contextlib.suppress(adbc_driver_manager.Error):
            conn.close()


@pytest.fixture
def pg_replicas(postgres_server, master_key, secure_gateway):
    """Two gateways, each with its own store on one PostgreSQL catalog, their periodic refresh five minutes."""
    name = f"catalog_{uuid.uuid4().hex[:10]}"
    postgres_server.create_database(name)
    url = f"postgresql+psycopg://{postgres_server.user}@{postgres_server.host}:{postgres_server.port}/{name}"
    stores = [CatalogStore(url), CatalogStore(url)]
    add_role(stores[0], "analyst")
    add_user(stores[0], "alice", ALICE_PASSWORD, roles=["admin"])
    add_user(stores[0], "bob", BOB_PASSWORD, roles=["analyst"])
    settings = AuthSettings(enabled=True, refresh_seconds=300)
    gateways = [secure_gateway(auth=settings, catalog=s) for s in stores]
    clients = [g.client() for g in gateways]
    yield clients, stores
    for client in clients:
        client.close()
    for gateway in gateways:
        gateway.gateway.shutdown()
        gateway.security.close()
    for s in stores:
        s.close()


def refused_within(call, seconds: float) -> float:
    """How long until ``call`` is refused as revoked (at most ``seconds``)."""
    started = time.monotonic()
    while True:
        try:
            call()
        except flight.FlightUnauthenticatedError as exc:
            assert "invalid or revoked credentials" in str(exc)
            return time.monotonic() - started
        assert time.monotonic() - started < seconds, "not refused in time"
        time.sleep(0.005)


def test_on_a_postgresql_catalog_the_other_replica_refuses_once_notified(pg_replicas):
    """The notification races the client's next call by a network hop: refused within milliseconds, not 300 s."""
    (here, there), (store, _) = pg_replicas
    bob_here, bob_there = sign_in(here, "bob", BOB_PASSWORD), sign_in(there, "bob", BOB_PASSWORD)
    assert one(there, bob_here) == [{"one": 1}]
    act(here, bob_here, "nexus.tokens.revoke", {})
    assert refused_within(lambda: one(there, bob_here), 1.0) < 1.0
    assert one(there, bob_there) == [{"one": 1}]
    update_user(store, "bob", disabled=True)
    assert refused_within(lambda: one(there, bob_there), 1.0) < 1.0
