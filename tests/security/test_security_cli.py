"""The ``users``, ``roles``, ``keys``, ``tokens`` and ``audit`` commands, checked by signing in with what they make.

The commands run in-process (``nexus-flight``'s own ``main``) on the catalog a gateway requiring authentication
serves; pyarrow.flight then signs in with the users, keys and tokens they made, and is refused once they are
disabled, revoked or removed. No secret given to or printed by a command ever shows up again.
"""

from __future__ import annotations

import io
import json

import pyarrow.flight as flight
import pytest

from nexus_flight.catalog.grants import add_grant
from nexus_flight.server.app.cli import main
from tests.security.conftest import bearer, sign_in
from tests.security.test_sign_in import count, refused

CAROL_PASSWORD = "carol-secret-password-1"


@pytest.fixture
def cli(tmp_path, capsys, monkeypatch):
    def run(*argv: str, stdin: str | None = None) -> tuple[int, dict | list | None, str]:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main([*argv, "--data-dir", str(tmp_path / "data"), "--json"])
        out, err = capsys.readouterr()
        return code, json.loads(out) if out.strip() else None, err

    return run


def test_users_roles_and_passwords(cli, secure_gateway, monkeypatch):
    secured = secure_gateway()
    monkeypatch.setenv("CAROL_PW", CAROL_PASSWORD)
    code, shown, _ = cli("users", "add", "carol", "--password", "${env:CAROL_PW}", "--role", "analyst",
                         "--attribute", "region=EUROPE")
    assert code == 0 and shown["roles"] == ["analyst"] and shown["attributes"] == {"region": "EUROPE"}
    assert CAROL_PASSWORD not in json.dumps(shown)
    code, _, err = cli("users", "add", "dave", "--password", "dave-literal-password")
    assert code == 2 and "CV-007: --password" in err and "dave-literal-password" not in err
    secured.security.authenticator.identities.refresh()
    client = secured.client()
    token = sign_in(client, "carol", CAROL_PASSWORD)
    with pytest.raises(flight.FlightUnauthorizedError, match="no SELECT privilege on table demo.main.nation"):
        count(client, bearer(token))  # a new user may read nothing
    code, granted, _ = cli("grants", "add", "analyst", "demo.main.nation")
    assert code == 0 and granted["target"] == "demo.main.nation"
    secured.security.authenticator.identities.refresh()
    assert count(client, bearer(token)) == 25
    _, listed, _ = cli("grants", "list", "--role", "analyst")
    assert [g["id"] for g in listed] == [granted["id"]]
    cli("grants", "revoke", granted["id"])
    secured.security.authenticator.identities.refresh()
    with pytest.raises(flight.FlightUnauthorizedError):
        count(client, bearer(token))
    cli("grants", "add", "analyst", "demo")
    secured.security.authenticator.identities.refresh()

    code, _, _ = cli("users", "passwd", "carol", "--password", "-", stdin="carol-new-password-22\n")
    assert code == 0
    code, _, _ = cli("users", "disable", "carol")
    secured.security.authenticator.identities.refresh()
    refused(lambda: sign_in(client, "carol", "carol-new-password-22"))
    cli("users", "enable", "carol")
    secured.security.authenticator.identities.refresh()
    assert sign_in(client, "carol", "carol-new-password-22")

    code, _, _ = cli("roles", "add", "auditors", "--description", "read the audit trail")
    code, shown, _ = cli("roles", "assign", "auditors", "carol")
    assert code == 0 and sorted(shown["roles"]) == ["analyst", "auditors"]
    code, shown, _ = cli("roles", "show", "auditors")
    assert shown["members"] == ["carol"]
    code, shown, _ = cli("roles", "unassign", "auditors", "carol")
    assert shown["roles"] == ["analyst"]
    code, listed, _ = cli("users", "list")
    assert [u["name"] for u in listed] == ["alice", "bob", "carol"]
    assert all("password_hash" not in u and "hash" not in json.dumps(u) for u in listed)

    code, _, _ = cli("users", "remove", "carol")
    secured.security.authenticator.identities.refresh()
    refused(lambda: sign_in(client, "carol", "carol-new-password-22"))
    code, _, err = cli("users", "show", "carol")
    assert code == 2 and "carol" in err


def test_keys_are_shown_once_then_listed_without_their_secret_and_revoked(cli, secure_gateway, store):
    add_grant(store, "analyst", "demo")
    secured = secure_gateway()
    code, created, _ = cli("keys", "create", "bob", "nightly-etl", "--role", "analyst", "--expires", "30d")
    assert code == 0 and created["key"].startswith(f"nfk_{created['id']}_") and created["roles"] == ["analyst"]
    secured.security.authenticator.identities.refresh()
    client = secured.client()
    assert count(client, bearer(created["key"])) == 25
    _, listed, _ = cli("keys", "list", "--owner", "bob")
    secret = created["key"].split("_", 2)[2]
    assert [k["id"] for k in listed] == [created["id"]] and secret not in json.dumps(listed)
    code, _, err = cli("keys", "create", "bob", "too-much", "--role", "admin")
    assert code == 2 and "AU-005" in err
    cli("keys", "revoke", created["id"])
    secured.security.authenticator.identities.refresh()
    refused(lambda: count(client, bearer(created["key"])))
    _, events, _ = cli("audit", "--kind", "key_created")
    assert [e["subject"] for e in events] == [created["id"]] and secret not in json.dumps(events)


def test_service_tokens_are_issued_and_revoked(cli, secure_gateway, monkeypatch, store):
    add_grant(store, "analyst", "demo")
    secured = secure_gateway()
    client = secured.client()
    code, issued, _ = cli("tokens", "issue", "bob", "--ttl", "600")
    assert code == 0 and issued["user"] == "bob"
    _, second, _ = cli("tokens", "issue", "bob", "--ttl", "600")
    assert count(client, bearer(issued["token"])) == 25 and count(client, bearer(second["token"])) == 25
    code, _, err = cli("tokens", "issue", "bob", "--role", "admin")
    assert code == 2 and "does not hold" in err
    monkeypatch.setenv("THE_TOKEN", issued["token"])
    code, revoked, _ = cli("tokens", "revoke", "--token", "${env:THE_TOKEN}")
    assert code == 0 and revoked["id"] == issued["id"]
    secured.security.authenticator.identities.refresh()
    refused(lambda: count(client, bearer(issued["token"])))
    assert count(client, bearer(second["token"])) == 25  # another sign-in of the same user
    cli("tokens", "revoke", "--user", "bob")
    secured.security.authenticator.identities.refresh()
    refused(lambda: count(client, bearer(second["token"])))
    _, events, _ = cli("audit")
    assert issued["token"] not in json.dumps(events) and second["token"] not in json.dumps(events)


def test_auth_failures_and_lockouts_are_in_the_audit_trail_without_the_secret(cli, secure_gateway):
    secured = secure_gateway()
    client = secured.client()
    with pytest.raises(flight.FlightUnauthenticatedError):
        client.authenticate_basic_token("bob", "bob-wrong-guess-password")
    secured.security.audit.flush()
    code, events, _ = cli("audit", "--kind", "auth_failure")
    assert code == 0 and [(e["actor"], e["auth_method"]) for e in events] == [("bob", "password")]
    assert "bob-wrong-guess-password" not in json.dumps(events)
