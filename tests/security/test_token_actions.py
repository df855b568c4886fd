"""Tokens through Flight SQL ``DoAction``: list live ones, revoke one, all of a user's, or issue a service token.

Two gateways (replicas) share one real catalog (SQLite), each with its own identity snapshot refreshed every
0.2 s; clients are pyarrow.flight and ADBC. alice is an admin, bob is not. A revoked token is refused at once by
the replica that revoked it and, from its next identity refresh, by the other; the other tokens of the same user
keep working; no answer ever holds a token, but for the service token ``nexus.tokens.issue`` answers once.
"""

from __future__ import annotations

import contextlib
import json
import time

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.catalog.api_keys import create_key
from nexus_flight.catalog.audit import search_audit
from nexus_flight.core.settings import AuthSettings
from tests.security.conftest import ALICE_PASSWORD, BOB_PASSWORD, bearer, sign_in
from tests.support import flightsql_raw as raw

QUERY = pb.CommandStatementQuery(query="SELECT 1 AS one")


@pytest.fixture
def replicas(secure_gateway, store):
    settings = AuthSettings(enabled=True, refresh_seconds=0.2)
    here, there = secure_gateway(auth=settings), secure_gateway(auth=settings)
    clients = (here.client(), there.client())
    yield here, there, clients
    for client in clients:
        client.close()


def act(client, token, kind, body=None):
    results = list(client.do_action(flight.Action(kind, json.dumps(body or {}).encode()), bearer(token)))
    assert len(results) == 1
    return json.loads(results[0].body.to_pybytes())


def works(client, token) -> bool:
    try:
        return raw.info_and_table(client, QUERY, bearer(token))[1].to_pylist() == [{"one": 1}]
    except flight.FlightUnauthenticatedError as exc:
        assert "invalid or revoked credentials" in str(exc)
        return False


def refused_soon(client, token, seconds: float = 3.0) -> bool:
    """Whether ``token`` is refused within ``seconds`` (another replica's next identity refresh)."""
    deadline = time.monotonic() + seconds
    while works(client, token):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def eventually(check, seconds: float = 3.0):
    """``check()`` once it is truthy, within ``seconds`` (a replica's next refresh)."""
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "not within the refresh interval"
        time.sleep(0.05)
    return found


@contextlib.contextmanager
def adbc_connection(location, **db_kwargs):
    """An ADBC connection that has run one query (its statement closed while its token is still good)."""
    conn = flight_sql.connect(location, db_kwargs=db_kwargs, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    try:
        yield conn
    finally:
        with contextlib.suppress(adbc_driver_manager.Error):
            conn.close()


def adbc_refused(conn) -> bool:
    """Whether the connection's next call is refused as revoked (GetTableTypes: no statement to close after)."""
    try:
        conn.adbc_get_table_types()
    except (adbc_driver_manager.Error, OSError) as exc:  # OSError: refused at DoGet, once its GetFlightInfo passed
        assert "invalid or revoked credentials" in str(exc)
        return True
    return False


def test_a_user_lists_and_revokes_their_current_token_on_every_replica(replicas, store):
    _, _, (here, there) = replicas
    first, second = sign_in(here, "bob", BOB_PASSWORD), sign_in(there, "bob", BOB_PASSWORD)
    # This replica's sign-ins at once, the other's once it has written them (its next refresh).
    listed = eventually(lambda: (found := act(here, first, "nexus.tokens.list")) and len(found) == 2 and found)
    assert len(listed) == 2 and {t["user"] for t in listed} == {"bob"} and {t["method"] for t in listed} == {
        "password"}
    assert first not in json.dumps(listed) and second not in json.dumps(listed)
    assert all(t["expires_at"] > t["issued_at"] for t in listed)

    revoked = act(here, first, "nexus.tokens.revoke")
    assert revoked["revoked"] is True and revoked["user"] == "bob"
    assert not works(here, first)  # at once, where it was revoked
    assert refused_soon(there, first)  # from the other replica's next refresh of the catalog
    assert works(here, second) and works(there, second)
    assert [t["id"] for t in act(there, second, "nexus.tokens.list")] == [
        t["id"] for t in listed if t["id"] != revoked["id"]]
    assert any(e["kind"] == "token_revoked" for e in search_audit(store, actor="flight:bob", limit=10))


def test_a_user_revokes_all_their_tokens_and_can_sign_in_again(replicas):
    _, there_gateway, (here, there) = replicas
    tokens = [sign_in(here, "bob", BOB_PASSWORD) for _ in range(3)]
    with adbc_connection(there_gateway.location, username="bob", password=BOB_PASSWORD) as conn:
        assert not adbc_refused(conn)
        answer = act(here, tokens[0], "nexus.tokens.revoke", {"all": True})
        assert answer["user"] == "bob" and answer["tokens_valid_after"]
        assert not any(works(here, t) for t in tokens)
        assert all(refused_soon(there, t) for t in tokens)
        assert adbc_refused(conn)  # ADBC's own sign-in on the other replica ended too
    fresh = sign_in(there, "bob", BOB_PASSWORD)
    assert works(here, fresh)
    assert len(eventually(lambda: act(here, fresh, "nexus.tokens.list"))) == 1  # written by the other replica


def test_a_user_may_not_touch_another_users_tokens(replicas):
    _, _, (here, _) = replicas
    alice, bob = sign_in(here, "alice", ALICE_PASSWORD), sign_in(here, "bob", BOB_PASSWORD)
    # Sign-ins are recorded off the request path: listed once written (the whole suite may be busy).
    [alice_sign_in] = eventually(lambda: act(here, alice, "nexus.tokens.list"), seconds=10.0)
    for kind, body in (("nexus.tokens.list", {"user": "alice"}), ("nexus.tokens.revoke", {"user": "alice"}),
                       ("nexus.tokens.issue", {"user": "bob", "ttl_seconds": 600})):
        with pytest.raises(flight.FlightUnauthorizedError, match="needs the admin role"):
            act(here, bob, kind, body)
    for made_up in (alice_sign_in["id"], "no-such-sign-in"):  # another's id reads like one that does not exist
        with pytest.raises(KeyError, match="no sign-in with id"):
            act(here, bob, "nexus.tokens.revoke", {"id": made_up})
    assert works(here, alice)


def test_an_admin_revokes_any_users_tokens_and_issues_service_tokens(replicas, store):
    here_gateway, there_gateway, (here, there) = replicas
    alice = sign_in(here, "alice", ALICE_PASSWORD)
    bob = sign_in(there, "bob", BOB_PASSWORD)
    issued = act(here, alice, "nexus.tokens.issue", {"user": "bob", "ttl_seconds": 600, "roles": ["analyst"]})
    assert issued["user"] == "bob" and issued["roles"] == ["analyst"] and issued["token"]
    header = {"adbc.flight.sql.authorization_header": f"Bearer {issued['token']}"}
    with adbc_connection(there_gateway.location, **header) as conn:
        listed = eventually(lambda: (found := act(here, alice, "nexus.tokens.list", {"user": "bob"}))
                            and len(found) == 2 and found)
        assert {t["method"] for t in listed} == {"password", "token"} and issued["token"] not in json.dumps(listed)
        act(here, alice, "nexus.tokens.revoke", {"id": issued["id"]})
        eventually(lambda: adbc_refused(conn))  # the other replica refuses it from its next refresh
    assert works(there, bob)
    act(here, alice, "nexus.tokens.revoke", {"user": "bob"})
    assert refused_soon(there, bob)
    assert act(here, alice, "nexus.tokens.list", {"user": "bob"}) == []
    assert works(here, alice)
    kinds = {e["kind"] for e in search_audit(store, actor="flight:alice", limit=20)}
    assert {"token_revoked", "tokens_revoked"} <= kinds


UNFIT = [
    ("nexus.tokens.revoke", {"all": "yes"}, "field 'all' must be true or false"),
    ("nexus.tokens.revoke", {"all": False}, "field 'all' must be true"),
    ("nexus.tokens.revoke", {"id": "x", "user": "bob"}, "give one of 'id', 'user' or 'all'"),
    ("nexus.tokens.issue", {"user": "bob", "ttl_seconds": 10}, "field 'ttl_seconds': 60 to"),
    ("nexus.tokens.issue", {"user": "bob", "ttl_seconds": True}, "field 'ttl_seconds' must be an integer"),
    ("nexus.tokens.issue", {"user": "bob", "ttl_seconds": 600, "roles": ["admin"]}, "does not hold ['admin']"),
    ("nexus.tokens.list", {"token": "x"}, "unknown field 'token'"),
]


def test_a_body_that_does_not_fit_is_invalid_argument(replicas):
    _, _, (here, _) = replicas
    alice = sign_in(here, "alice", ALICE_PASSWORD)
    for kind, body, message in UNFIT:
        with pytest.raises(pa.ArrowInvalid) as info:
            act(here, alice, kind, body)
        assert message in str(info.value) and "Traceback" not in str(info.value), (kind, body, str(info.value))


def test_an_api_key_call_has_no_current_token_to_revoke(replicas, store):
    _, _, (here, _) = replicas
    _, key = create_key(store, "bob", "etl")
    eventually(lambda: works(here, key))  # the key reaches the replica's snapshot at its next refresh
    with pytest.raises(pa.ArrowInvalid, match="carries no gateway token"):
        act(here, key, "nexus.tokens.revoke")
    assert works(here, key)
