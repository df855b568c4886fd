"""Every change to what the identity snapshot holds moves the catalog's security generation.

Gateways reload their snapshot of users, roles, grants, keys, revocations and policies when the generation moves
(checked before every call) and otherwise only when the catalog cannot tell them (``IdentityCache._run``): a writer
that forgot to move it would leave every replica on the old rules. Each writer the CLI, the configuration file and
the Flight actions use is called here on a real SQLite catalog.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from nexus_flight.catalog.api_keys import create_key, revoke_key
from nexus_flight.catalog.grants import add_grant, revoke_grant
from nexus_flight.catalog.policies import PolicySpec, add_policy, remove_policy
from nexus_flight.catalog.security_generation import GenerationWatch, read_generation
from nexus_flight.catalog.tokens import revoke_token
from nexus_flight.catalog.users import (
    add_role,
    add_user,
    remove_role,
    remove_user,
    revoke_user_tokens,
    set_password,
    update_role,
    update_user,
)
from nexus_flight.server.security.identities import IdentityCache


@pytest.fixture
def catalog(store, tmp_path):
    path = tmp_path / "sales.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE orders AS SELECT 1 AS id, 'EU' AS region, 'x' AS note")
    store.add_source("sales", "duckdb", {"path": str(path)})
    return store


def test_every_security_writer_moves_the_generation(catalog):
    store = catalog
    later = datetime.now(UTC) + timedelta(hours=1)
    state: dict = {}
    writers = [
        ("add role", lambda: add_role(store, "auditors")),
        ("role limits", lambda: update_role(store, "auditors", limits={"queries_per_minute": 60})),
        ("add user", lambda: add_user(store, "carol", "a-long-password-1", roles=["auditors"])),
        ("password", lambda: set_password(store, "carol", "a-long-password-2")),
        ("disable user", lambda: update_user(store, "carol", disabled=True)),
        ("user attributes", lambda: update_user(store, "carol", attributes={"region": "EU"})),
        ("user limits", lambda: update_user(store, "carol", limits={"max_rows": 10})),
        ("add grant", lambda: state.update(grant=add_grant(store, "auditors", "sales"))),
        ("revoke grant", lambda: revoke_grant(store, state["grant"].id)),
        ("create key", lambda: state.update(key=create_key(store, "carol", "etl", roles=["auditors"])[0])),
        ("revoke key", lambda: revoke_key(store, state["key"].id)),
        ("revoke token", lambda: revoke_token(store, "session-1", "carol", later)),
        ("revoke user's tokens", lambda: revoke_user_tokens(store, "carol")),
        ("add policy", lambda: add_policy(store, PolicySpec("eu", "row_filter", "sales.main.orders",
                                                            expression="region = {user.region}"))),
        ("remove policy", lambda: remove_policy(store, "eu")),
        ("remove user", lambda: remove_user(store, "carol")),
        ("remove role", lambda: remove_role(store, "auditors")),
    ]
    unmoved = []
    for name, write in writers:
        before = read_generation(store)
        write()
        if read_generation(store) == before:
            unmoved.append(name)
    assert unmoved == []


def _reloads(identities: IdentityCache) -> list[float]:
    """Wrap the snapshot's whole reload to note when it runs."""
    reloads: list[float] = []
    reload = identities._refresh

    def noted() -> None:
        reloads.append(time.monotonic())
        reload()

    identities._refresh = noted  # type: ignore[method-assign]
    return reloads


def test_the_background_refresh_reloads_only_what_the_generation_says_changed(catalog):
    """On a SQLite catalog the generation tells of every change: quiet ticks read nothing, a change is read."""
    identities = IdentityCache(catalog, refresh_seconds=0.05)
    reloads = _reloads(identities)
    identities.start()
    try:
        time.sleep(0.6)
        assert reloads == [], "reloaded although nothing changed"
        add_role(catalog, "auditors")
        deadline = time.monotonic() + 5
        while "auditors" not in identities.role_limits and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "auditors" in identities.role_limits and len(reloads) == 1
    finally:
        identities.stop()


def test_where_the_catalog_cannot_tell_every_tick_reloads(catalog):
    """Another catalog database (or the PostgreSQL listener down): the periodic reload alone carries changes."""
    identities = IdentityCache(catalog, refresh_seconds=0.05)
    identities._watch = GenerationWatch()  # what a catalog that cannot tell gets (``watch_generation``)
    reloads = _reloads(identities)
    identities.start()
    try:
        time.sleep(0.6)
        assert len(reloads) >= 5
    finally:
        identities.stop()
