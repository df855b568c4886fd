"""API keys: shown once, stored hashed, used as a bearer token or as the password, revoked and expiring."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pyarrow.flight as flight
import pytest

from nexus_flight.catalog.api_keys import create_key, list_keys, revoke_key
from nexus_flight.catalog.audit import search_audit
from nexus_flight.catalog.models import utcnow
from nexus_flight.core.errors import ConfigError
from nexus_flight.core.settings import AuthSettings, LockoutSettings
from tests.security.conftest import bearer, sign_in
from tests.security.test_sign_in import count, refused


def test_a_key_is_shown_once_and_only_its_hash_is_stored(store, tmp_path):
    info, text = create_key(store, "bob", "etl", roles=["analyst"], actor="alice")
    assert text.startswith(f"nfk_{info.id}_") and len(text) > 50
    secret = text.split("_", 2)[2]
    assert info.roles == ("analyst",) and info.owner == "bob"
    listed = list_keys(store)
    assert [k.id for k in listed] == [info.id] and secret not in repr(listed)
    store.close()
    for path in (tmp_path / "data").iterdir():
        assert secret.encode() not in path.read_bytes(), path.name
    events = search_audit(store, kind="key_created")
    assert [(e["actor"], e["subject"]) for e in events] == [("alice", info.id)] and secret not in str(events)


def test_a_key_acts_with_a_subset_of_its_owners_roles(store):
    with pytest.raises(ConfigError, match="^AU-005: 'bob' does not hold the role"):
        create_key(store, "bob", "too-much", roles=["admin"])
    with pytest.raises(ConfigError, match="^AU-008"):
        create_key(store, "bob", "old", expires_at=utcnow() - timedelta(days=1))


def test_a_key_as_bearer_with_pyarrow_and_adbc_and_as_the_password(secure_gateway, store):
    import adbc_driver_flightsql.dbapi as flightsql

    _, text = create_key(store, "alice", "dashboards")
    secured = secure_gateway()
    client = secured.client()
    assert count(client, bearer(text)) == 25
    header = {"adbc.flight.sql.authorization_header": f"Bearer {text}"}
    with flightsql.connect(secured.location, db_kwargs=header, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM region")
        assert cur.fetchone() == (5,)
    token = sign_in(client, "alice", text)  # clients that only know user/password (JDBC) give the key as password
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["amr"] == "api_key" and claims["key"] == text.split("_")[1]
    assert count(client, bearer(token)) == 25


def test_revoked_and_expired_keys_are_refused_with_the_tokens_made_from_them(secure_gateway, store):
    expires = utcnow() + timedelta(seconds=3)
    info, text = create_key(store, "alice", "short", expires_at=expires)
    other, other_text = create_key(store, "alice", "revoked")
    secured = secure_gateway()
    client = secured.client()
    from_key = sign_in(client, "alice", other_text)
    assert count(client, bearer(text)) == 25 and count(client, bearer(from_key)) == 25
    revoke_key(store, other.id, actor="alice")
    secured.security.authenticator.identities.refresh()
    refused(lambda: count(client, bearer(other_text)))
    refused(lambda: count(client, bearer(from_key)))
    time.sleep(max(0.0, (expires - utcnow()).total_seconds()) + 0.2)  # past the key's expiry
    refused(lambda: count(client, bearer(text)))
    secured.security.audit.flush()
    reasons = {e["detail"] for e in search_audit(store, kind="auth_failure")}
    assert any("key revoked" in r for r in reasons) and any("key expired" in r for r in reasons)


def test_guessing_a_keys_secret_is_locked_out(secure_gateway, store):
    info, text = create_key(store, "alice", "guarded")
    lockout = LockoutSettings(user_throttle_after=3, user_lockout_after=3, lockout_seconds=60)
    secured = secure_gateway(auth=AuthSettings(enabled=True, lockout=lockout))
    client = secured.client()
    for _ in range(3):
        refused(lambda: count(client, bearer(f"nfk_{info.id}_wrong-secret")))
    assert refused(lambda: count(client, bearer(text))).startswith("too many failed sign-ins")


def test_last_use_is_recorded(secure_gateway, store):
    info, text = create_key(store, "alice", "used")
    secured = secure_gateway()
    assert count(secured.client(), bearer(text)) == 25
    secured.security.authenticator.identities._write_pending()
    assert list_keys(store)[0].last_used_at is not None


def test_keys_can_be_switched_off(secure_gateway, store):
    _, text = create_key(store, "alice", "off")
    secured = secure_gateway(auth=AuthSettings(enabled=True, methods=["password"]))
    with pytest.raises(flight.FlightUnauthenticatedError):
        count(secured.client(), bearer(text))
