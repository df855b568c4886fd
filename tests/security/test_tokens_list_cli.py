"""``nexus-flight tokens list [--user U]``: the live sign-ins in the catalog, never a token.

The real command in its own process, on the catalog a gateway requiring authentication serves; the sign-ins come
from pyarrow.flight's Handshake and from ``tokens issue``, and the list follows ``tokens revoke``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from nexus_flight.core.settings import AuthSettings
from tests.security.conftest import ALICE_PASSWORD, BOB_PASSWORD, sign_in

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def nexus(store):
    data_dir = store.engine.url.database.rsplit("/", 1)[0]

    def run(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["nexus-flight", *argv, "--data-dir", data_dir], capture_output=True, text=True,
                              timeout=60, env={**os.environ, **(env or {})})

    return run


def listed(nexus, *argv: str, count: int) -> list[dict]:
    """``tokens list --json`` once it shows ``count`` sign-ins (a gateway writes new ones within its refresh)."""
    deadline = time.monotonic() + 10
    while True:
        done = nexus("tokens", "list", *argv, "--json")
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout)
        if len(found) == count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_tokens_list_shows_live_sign_ins_and_never_a_token(secure_gateway, nexus):
    secured = secure_gateway(auth=AuthSettings(enabled=True, refresh_seconds=0.2))
    client = secured.client()
    tokens = [sign_in(client, "bob", BOB_PASSWORD), sign_in(client, "bob", BOB_PASSWORD),
              sign_in(client, "alice", ALICE_PASSWORD)]
    issued = nexus("tokens", "issue", "bob", "--ttl", "600", "--json")
    assert issued.returncode == 0, issued.stderr
    service = json.loads(issued.stdout)
    tokens.append(service["token"])

    bob = listed(nexus, "--user", "bob", count=3)
    assert len(bob) == 3 and {t["user"] for t in bob} == {"bob"}
    assert sorted(t["method"] for t in bob) == ["password", "password", "token"]
    assert service["session"] in {t["id"] for t in bob}
    assert all(t["expires_at"] > t["issued_at"] for t in bob)
    everyone = listed(nexus, count=4)
    assert {t["user"] for t in everyone} == {"alice", "bob"}

    table = nexus("tokens", "list")
    assert table.returncode == 0 and table.stdout.split("\n")[0].split() == [
        "ID", "USER", "METHOD", "KEY_ID", "ISSUED_AT", "EXPIRES_AT"]
    for output in (json.dumps(bob), json.dumps(everyone), table.stdout, table.stderr):
        assert not any(token in output for token in tokens)

    revoked = nexus("tokens", "revoke", "--token", "${env:THE_TOKEN}", env={"THE_TOKEN": service["token"]})
    assert revoked.returncode == 0, revoked.stderr
    assert service["session"] not in {t["id"] for t in listed(nexus, "--user", "bob", count=2)}
    assert nexus("tokens", "revoke", "--user", "bob").returncode == 0
    assert listed(nexus, "--user", "bob", count=0) == []
    assert [t["user"] for t in listed(nexus, count=1)] == ["alice"]

    unknown = nexus("tokens", "list", "--user", "nobody")
    assert unknown.returncode == 2 and "nobody" in unknown.stderr and "Traceback" not in unknown.stderr
    client.close()
