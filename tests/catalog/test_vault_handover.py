"""`vault rotate` while gateways run: the new master key reaches them through the catalog, no restart needed.

Each store below is what one process holds: a gateway started before the rotation knows only the old key; the
operator's `vault rotate` runs with the new key and the old one; a gateway restarted afterwards knows only the new.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from nexus_flight.catalog.key_handover import (
    HANDLE_KEYS,
    finish_rotation,
    pending_handovers,
    rotate_master_key,
)
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.tokens import signing_keys
from nexus_flight.catalog.vault import KeyRing, parse_key
from nexus_flight.core.errors import ConfigError
from tests.catalog.conftest import new_key_text

PG = {"host": "127.0.0.1", "port": 5432, "database": "test", "username": "postgres"}


def test_a_running_gateway_follows_a_rotation_and_the_old_key_goes_after_finish(tmp_path, keys):
    old_key = keys.current
    new_key = parse_key(new_key_text())
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    running = CatalogStore(url, keys=KeyRing(old_key))  # a gateway started before the rotation
    running.add_source("pg", "postgresql", PG, {"password": "before-rotation"})
    token_kids = [k.kid for k in signing_keys(running)]
    handle_kids = [k.kid for k in HANDLE_KEYS.keys(running)]

    operator = CatalogStore(url, keys=KeyRing(new_key, (old_key,)))
    counts = rotate_master_key(operator, timedelta(minutes=30))
    assert counts["handovers"] == 1 and counts["credentials"] == 1
    assert counts["token_keys"] == 1 and counts["handle_keys"] == 1
    assert operator.vault_key_ids() == {new_key.key_id: 1}
    assert pending_handovers(operator) == [{"key_id": new_key.key_id, "sealed_under": old_key.key_id}]

    # The running gateway opens what is now sealed under the new key, and seals with the new key from now on.
    assert running.source_spec("pg").secrets["password"] == "before-rotation"
    assert [k.kid for k in signing_keys(running)] == token_kids
    fresh = [k.kid for k in HANDLE_KEYS.keys(running)]
    assert len(fresh) == 2 and fresh[1] == handle_kids[0]  # a new handle key signs; the old one still verifies
    running.add_source("pg2", "postgresql", PG, {"password": "after-rotation"})
    assert running.vault_key_ids() == {new_key.key_id: 2}

    # A second rotation run is idempotent.
    assert rotate_master_key(operator, timedelta(minutes=30))["handovers"] == 0
    assert finish_rotation(operator) == 1
    assert pending_handovers(operator) == []

    restarted = CatalogStore(url, keys=KeyRing(new_key))
    assert restarted.source_spec("pg2").secrets["password"] == "after-rotation"
    assert len(signing_keys(restarted)) == 1
    stale = CatalogStore(url, keys=KeyRing(old_key))  # a gateway restarted with the old key only
    # Told to take the new key, not to re-seal everything under the old one (which would undo the rotation).
    with pytest.raises(ConfigError, match=f"CV-004: .*{new_key.key_id}.*it is the new master key: set "
                                          "NEXUS_FLIGHT_MASTER_KEY to it"):
        stale.source_spec("pg")
    for store in (running, operator, restarted, stale):
        store.close()


def test_finishing_before_everything_is_resealed_is_refused(tmp_path, keys):
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    store = CatalogStore(url, keys=keys)
    store.add_source("pg", "postgresql", PG, {"password": "x"})
    other = CatalogStore(url, keys=KeyRing(parse_key(new_key_text()), (keys.current,)))
    with pytest.raises(ConfigError, match="vault rotate"):
        finish_rotation(other)
    store.close()
    other.close()


def test_a_forged_handover_does_not_hand_over(tmp_path, keys):
    """A hand-over row not sealed by a key the gateway holds is ignored: the record stays unopenable."""
    from nexus_flight.catalog.models import MasterKeyHandover
    from nexus_flight.catalog.vault import seal_handover

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    new_key, intruder = parse_key(new_key_text()), parse_key(new_key_text())
    operator = CatalogStore(url, keys=KeyRing(new_key))
    operator.add_source("pg", "postgresql", PG, {"password": "x"})
    forged = seal_handover(new_key, intruder)
    with operator.session() as session:
        session.add(MasterKeyHandover(key_id=new_key.key_id, sealed_under=keys.current.key_id,
                                      ciphertext=forged.ciphertext, nonce=forged.nonce))
    running = CatalogStore(url, keys=keys)
    with pytest.raises(ConfigError, match="CV-004"):
        running.source_spec("pg")
    operator.close()
    running.close()
