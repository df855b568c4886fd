"""Master key rotation that running gateways follow: hand-overs in the catalog, and the ``vault`` steps.

``vault rotate`` (run with the new key current and the old one in ``NEXUS_FLIGHT_OLD_MASTER_KEYS``) seals the new
key under each old one into ``master_key_handovers``, re-seals every source credential and signing key under the
new key, and starts a new handle signing key. A gateway still running on the old key then opens the re-sealed
records through the hand-over (``KeyRing.handovers``) and seals with the new key. Once every gateway and command
is configured with the new key, ``vault finish-rotation`` deletes the hand-overs: from then the old key opens
nothing in the catalog.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import delete, select

from nexus_flight.catalog.models import HandleSigningKey, MasterKeyHandover
from nexus_flight.catalog.rules import rule_error
from nexus_flight.catalog.sealed_keys import SealedKeyTable
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.tokens import TOKEN_KEYS
from nexus_flight.catalog.vault import KeyRing, SealedRecord, seal_handover

log = logging.getLogger(__name__)

#: The keys result tickets and prepared-statement handles are signed with (``server/flight/signed_handles.py``).
HANDLE_KEYS = SealedKeyTable(HandleSigningKey, "handle-signing-key")


class CatalogHandovers:
    """The catalog's hand-over records, as a key ring reads them (``catalog.vault.Handovers``)."""

    def __init__(self, store: CatalogStore) -> None:
        self._store = store

    def sealed_copies(self, key_id: str) -> list[SealedRecord]:
        """Master key ``key_id`` sealed under older keys."""
        with self._store.session() as session:
            rows = session.scalars(select(MasterKeyHandover).where(MasterKeyHandover.key_id == key_id))
            return [SealedRecord(bytes(r.ciphertext), bytes(r.nonce), r.sealed_under) for r in rows]

    def successors(self, key_id: str) -> list[tuple[str, SealedRecord]]:
        """Newer master keys sealed under ``key_id``, newest first."""
        with self._store.session() as session:
            rows = session.scalars(select(MasterKeyHandover).where(MasterKeyHandover.sealed_under == key_id)
                                   .order_by(MasterKeyHandover.created_at.desc()))
            return [(r.key_id, SealedRecord(bytes(r.ciphertext), bytes(r.nonce), r.sealed_under)) for r in rows]


def pending_handovers(store: CatalogStore) -> list[dict[str, str]]:
    """The hand-overs not yet finished (for ``vault status``)."""
    with store.session() as session:
        return [{"key_id": r.key_id, "sealed_under": r.sealed_under}
                for r in session.scalars(select(MasterKeyHandover).order_by(MasterKeyHandover.created_at))]


def rotate_master_key(store: CatalogStore, handle_lifetime: timedelta) -> dict[str, int]:
    """Move the catalog to the ring's current master key while gateways on older keys keep running.

    Args:
        store: A catalog opened with the new key current and the old ones configured as old keys.
        handle_lifetime: The longest a signed handle lives (``handle_ttl_seconds``): handle keys retired longer
            ago than that are deleted.

    Returns:
        How many records of each kind were re-sealed, and the hand-overs written: all 0 when every record is
        already sealed under the current key and no old key is configured (then the handle key is kept too).

    Raises:
        ConfigError: CV-001 no current key; CV-004 a record's key is not configured; CV-003 a record is altered.

    """
    ring = store.vault.keys
    current = ring.require_current()
    handovers = 0
    with store.session() as session:
        for key_id in ring.key_ids:
            if key_id == current.key_id or session.get(MasterKeyHandover, (current.key_id, key_id)) is not None:
                continue
            sealed = seal_handover(current, ring.get(key_id))
            session.add(MasterKeyHandover(key_id=current.key_id, sealed_under=key_id, ciphertext=sealed.ciphertext,
                                          nonce=sealed.nonce))
            handovers += 1
    counts = {"handovers": handovers, "credentials": store.rotate_keys(), "token_keys": TOKEN_KEYS.reseal(store),
              "handle_keys": HANDLE_KEYS.reseal(store)}
    if rotation_done(ring, counts):
        with store.session() as session:
            HANDLE_KEYS.rotate(session, store)
    # Twice the lifetime: a gateway signs with a retired key until it next reloads its keys.
    counts["handle_keys_purged"] = HANDLE_KEYS.purge(store, 2 * handle_lifetime)
    log.info("vault rotation to key %s: %s", current.key_id, counts)
    return counts


def rotation_done(ring: KeyRing, counts: Mapping[str, int]) -> bool:
    """Whether a rotation changed anything: it re-sealed or handed over a record, or an old key is configured.

    Otherwise every record is already under the current key and there is nothing to rotate from (the handle key is
    kept, and ``vault rotate`` says there was nothing to do).
    """
    return any(counts[kind] for kind in ("handovers", "credentials", "token_keys", "handle_keys")) or len(
        ring.key_ids) > 1


def finish_rotation(store: CatalogStore) -> int:
    """Delete every hand-over (every gateway now runs with the new key); return how many.

    Raises:
        ConfigError: CV-004 when records are still sealed under another key than the current one.

    """
    current = store.vault.keys.require_current()
    stale = {k: n for k, n in store.vault_key_ids().items() if k != current.key_id}
    if stale:
        raise rule_error("CV-004", f"records are still sealed under {sorted(stale)}: run `nexus-flight vault "
                                   "rotate` with the new key first")
    with store.session() as session:
        return session.execute(delete(MasterKeyHandover)).rowcount or 0
