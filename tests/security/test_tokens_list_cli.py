"""``nexus-flight tokens list [--user U]``: the live sign-ins in the catalog, never a token.

The real command in its own process, on the catalog a gateway requiring authentication serves; the sign-ins come
from pyarrow.flight's Handshake and from ``tokens issue``, and the list follows ``tokens revoke``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pyarrow.flight as flight
import pytest

from nexus_flight.catalog.tokens import live_tokens
from nexus_flight.core.settings import AuthSettings
from tests.security.conftest import ALICE_PASSWORD, BOB_PASSWORD, query_as, sign_in
from tests.support.services import wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def nexus(store):
    data_dir = store.engine.url.database.rsplit("/", 1)[0]

    def run(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["nexus-flight", *argv, "--data-dir", data_dir], capture_output=True, text=True,
                              timeout=60, env={**os.environ, **(env or {})})

    return run


def settled(store, count: int, user: str | None = None) -> None:
    """Wait until the catalog holds ``count`` live sign-ins (a gateway writes new ones within its refresh)."""
    assert wait_until(lambda: len(live_tokens(store, user)) == count, 10), live_tokens(store, user)


def together(nexus, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
    """Run commands that only read the catalog side by side: each is a process start, mostly imports."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda argv: nexus(*argv), commands))


def shown(done: subprocess.CompletedProcess) -> list[dict]:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_tokens_list_shows_live_sign_ins_and_never_a_token(secure_gateway, nexus, store):
    secured = secure_gateway(auth=AuthSettings(enabled=True, refresh_seconds=0.2))
    client = secured.client()
    tokens = [sign_in(client, "bob", BOB_PASSWORD), sign_in(client, "bob", BOB_PASSWORD),
              sign_in(client, "alice", ALICE_PASSWORD)]
    issued = nexus("tokens", "issue", "bob", "--ttl", "600", "--json")
    assert issued.returncode == 0, issued.stderr
    service = json.loads(issued.stdout)
    tokens.append(service["token"])

    settled(store, 4)
    bob, everyone, table = together(nexus, ("tokens", "list", "--user", "bob", "--json"), ("tokens", "list", "--json"),
                                    ("tokens", "list"))
    bob, everyone = shown(bob), shown(everyone)
    assert len(bob) == 3 and {t["user"] for t in bob} == {"bob"}
    assert sorted(t["method"] for t in bob) == ["password", "password", "token"]
    assert service["id"] in {t["id"] for t in bob}
    assert all(t["expires_at"] > t["issued_at"] for t in bob)
    assert len(everyone) == 4 and {t["user"] for t in everyone} == {"alice", "bob"}

    assert table.returncode == 0 and table.stdout.split("\n")[0].split() == [
        "ID", "USER", "METHOD", "KEY_ID", "ISSUED_AT", "EXPIRES_AT"]
    for output in (json.dumps(bob), json.dumps(everyone), table.stdout, table.stderr):
        assert not any(token in output for token in tokens)

    revoked = nexus("tokens", "revoke", "--token", "${env:THE_TOKEN}", env={"THE_TOKEN": service["token"]})
    assert revoked.returncode == 0, revoked.stderr
    settled(store, 2, "bob")
    left = shown(nexus("tokens", "list", "--user", "bob", "--json"))
    assert len(left) == 2 and service["id"] not in {t["id"] for t in left}

    # One sign-in, by the id the list shows: its token is refused from then on, the other one still works.
    first = _session_of(tokens[0])
    assert first in {t["id"] for t in left}
    by_id = nexus("tokens", "revoke", "--id", first)
    assert by_id.returncode == 0 and "Traceback" not in by_id.stderr, by_id.stderr
    assert wait_until(lambda: _refused(client, tokens[0]), 10)
    assert not _refused(client, tokens[1])
    unknown_id = nexus("tokens", "revoke", "--id", "no-such-sign-in")
    assert unknown_id.returncode == 2 and "no sign-in with id 'no-such-sign-in'" in unknown_id.stderr
    assert nexus("tokens", "revoke", "--user", "bob").returncode == 0
    settled(store, 1)
    bob, everyone, unknown = together(nexus, ("tokens", "list", "--user", "bob", "--json"),
                                      ("tokens", "list", "--json"), ("tokens", "list", "--user", "nobody"))
    assert shown(bob) == []
    assert [t["user"] for t in shown(everyone)] == ["alice"]

    assert unknown.returncode == 2 and "nobody" in unknown.stderr and "Traceback" not in unknown.stderr
    client.close()


def _session_of(token: str) -> str:
    """The sign-in id a gateway token carries (its ``sid`` claim)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


def _refused(client, token: str) -> bool:
    try:
        query_as(client, token, "SELECT 1")
    except flight.FlightUnauthenticatedError:
        return True
    return False
