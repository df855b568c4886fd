"""The Arrow Flight SQL JDBC driver against a gateway that requires authentication.

One JVM (tests/clients/java JdbcScenarios) connects the way DBeaver and DataGrip do: user and password (Basic in
the Handshake, then Bearer on every call), a ``token`` property (a gateway token or an API key), an API key given as
the password; it is refused for a wrong password, expired, forged, ``alg=none`` and wrong-audience tokens and a
revoked key, and locked out after repeated failures. Tokens live 6 s here: a connection that keeps querying past
that gets a fresh token from the answers and keeps working after its first token expired.
"""

from __future__ import annotations

import time

import jwt
import pytest

from nexus_flight.catalog.api_keys import create_key, revoke_key
from nexus_flight.catalog.tokens import signing_keys
from nexus_flight.core.settings import AuthSettings, LockoutSettings
from tests.clients import toolchain
from tests.security.conftest import (
    ALICE_PASSWORD,
    BOB_PASSWORD,
    new_store,
    set_master_key,
    start_secured,
    stop_secured,
)

COUNT = "SELECT count(*) AS n FROM nation"
TTL = 6


def _claims(**overrides) -> dict:
    now = time.time()
    claims = {"iss": "nexus-flight", "aud": "nexus-flight", "sub": "alice", "iat": now, "nbf": int(now),
              "exp": int(now) + 600, "jti": "j", "sid": "jdbc", "roles": [], "amr": "token", "ttl": 600}
    return {**claims, **overrides}


@pytest.fixture(scope="module")
def jdbc(tmp_path_factory, demo_data_dir):
    """Every scenario in one JVM run (one start of the JVM and the driver), read by each test."""
    root = tmp_path_factory.mktemp("jdbc-sign-in")
    with pytest.MonkeyPatch.context() as monkeypatch:
        set_master_key(monkeypatch)
        store = new_store(root / "data")
        lockout = LockoutSettings(user_throttle_after=3, user_lockout_after=3, lockout_seconds=120)
        secured = start_secured(store, demo_data_dir, AuthSettings(enabled=True, lockout=lockout))
        try:
            return _run_scenarios(secured, store, root)
        finally:
            stop_secured(secured)
            store.close()


def _run_scenarios(secured, store, tmp_path) -> dict:
    authenticator = secured.security.authenticator
    authenticator.ttl, authenticator.tokens.leeway_seconds = TTL, 0
    key = signing_keys(store)[0]
    sign = lambda claims, secret=key.secret: jwt.encode(claims, secret, algorithm="HS256",  # noqa: E731
                                                        headers={"kid": key.kid})
    now = int(time.time())
    service_token = authenticator.issue_service_token("alice", 600)[0]
    _, api_key = create_key(store, "alice", "bi")
    revoked, revoked_key = create_key(store, "alice", "gone")
    revoke_key(store, revoked.id)
    authenticator.identities.refresh()
    url = f"jdbc:arrow-flight-sql://127.0.0.1:{secured.gateway.port}/?useEncryption=false"
    scenarios = [
        ("service_token", "connect", url, f"token={service_token}"),  # also warms the JVM up
        ("service_token_query", "query", COUNT),
        ("password", "connect", url, "user=alice", f"password={ALICE_PASSWORD}"),
        ("password_query", "query", COUNT),
        ("refresh_pause_1", "pause", "3500"),
        ("refresh_query_1", "query", COUNT),  # past half of the 6 s: the answer carries a fresh token
        ("refresh_pause_2", "pause", "3500"),
        ("refresh_query_2", "query", COUNT),  # the first token expired about a second ago
        ("wrong_password", "connect", url, "user=alice", "password=not-her-password"),
        ("api_key", "connect", url, f"token={api_key}"),
        ("api_key_query", "query", COUNT),
        ("api_key_as_password", "connect", url, "user=alice", f"password={api_key}"),
        ("api_key_as_password_query", "query", COUNT),
        ("revoked_key", "connect", url, f"token={revoked_key}"),
        ("expired", "connect", url, f"token={sign(_claims(iat=now - 700, nbf=now - 700, exp=now - 60))}"),
        ("forged", "connect", url, f"token={sign(_claims(), b'x' * 32)}"),
        ("alg_none", "connect", url, "token=" + jwt.encode(_claims(), None, algorithm="none")),
        ("wrong_audience", "connect", url, f"token={sign(_claims(aud='someone-else'))}"),
        *[(f"bob_wrong_{i}", "connect", url, "user=bob", "password=guess-guess-guess") for i in range(3)],
        ("bob_locked_out", "connect", url, "user=bob", f"password={BOB_PASSWORD}"),
    ]
    path = tmp_path / "jdbc-auth.tsv"
    path.write_text("\n".join("\t".join(s) for s in scenarios) + "\n", encoding="utf-8")
    return toolchain.run_lines([*toolchain.java_command("JdbcScenarios"), str(path)])


def _error(record) -> str:
    assert not record["ok"], record
    return f"{record['error']['message']} {record['error'].get('cause', '')}"


def _rows(record):
    assert record["ok"], record
    return [[cell["value"] for cell in row] for row in record["result"]["rows"]]


def test_user_and_password_then_bearer_with_refresh_past_expiry(jdbc):
    assert _rows(jdbc["password_query"]) == [[25]]
    assert _rows(jdbc["refresh_query_1"]) == [[25]]
    assert _rows(jdbc["refresh_query_2"]) == [[25]]


def test_tokens_and_api_keys(jdbc):
    for name in ("service_token_query", "api_key_query", "api_key_as_password_query"):
        assert _rows(jdbc[name]) == [[25]], name


@pytest.mark.parametrize("scenario, text", [
    ("wrong_password", "invalid user name or password"),
    ("revoked_key", "invalid or revoked credentials"),
    ("expired", "the token has expired"),
    ("forged", "invalid or revoked credentials"),
    ("alg_none", "invalid or revoked credentials"),
    ("wrong_audience", "invalid or revoked credentials"),
    ("bob_locked_out", "too many failed sign-ins: this user is locked out"),
])
def test_refusals_reach_the_driver_as_unauthenticated(jdbc, scenario, text):
    message = _error(jdbc[scenario])
    assert text in message and "UNAUTHENTICATED" in message.upper(), message
