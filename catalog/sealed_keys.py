"""Tables of 256-bit secrets sealed in the vault: the keys gateway tokens and result handles are signed with.

Each key is sealed (AES-256-GCM under the master key) with its table's purpose and its id as associated data, so
a key copied into another table or under another id does not open. The newest key that is not retired signs; a
retired key keeps verifying what it signed until that expired (``purge``). ``vault rotate`` re-seals every key
under the new master key (``reseal``).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nexus_flight.catalog.models import utcnow
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.vault import SealedRecord


@dataclass(frozen=True)
class SigningKey:
    """An opened signing key; the secret never shows in repr."""

    kid: str
    secret: bytes = field(repr=False)
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class SealedKeyTable:
    """One table of sealed signing keys (a model with ``_SealedKeyColumns``) and what its keys are for."""

    model: type
    purpose: str

    def _associated(self, kid: str) -> str:
        return f"{self.purpose}:{kid}"

    def new_row(self, store: CatalogStore):
        """A new random key sealed under the current master key (not yet added to a session)."""
        kid = secrets.token_hex(8)
        sealed = store.vault.seal(self._associated(kid), {"secret": base64.b64encode(secrets.token_bytes(32)).decode()})
        return self.model(kid=kid, ciphertext=sealed.ciphertext, nonce=sealed.nonce, key_id=sealed.key_id)

    def _open(self, store: CatalogStore, row) -> SigningKey:
        opened = store.vault.open(self._associated(row.kid), _record(row))
        return SigningKey(row.kid, base64.b64decode(opened["secret"].get_secret_value()), row.created_at,
                          row.retired_at)

    def keys(self, store: CatalogStore, *, create: bool = True) -> list[SigningKey]:
        """Every key still verifying, the signing one first; one is made when there is none.

        Raises:
            ConfigError: CV-001 (no master key to seal a new key), CV-003/CV-004 (a key does not open).

        """
        with store.session() as session:
            rows = list(session.scalars(select(self.model).order_by(self.model.created_at.desc())))
            if not rows and create:
                row = self.new_row(store)
                session.add(row)
                session.flush()
                rows = [row]
            keys = [self._open(store, r) for r in rows]
        current = [k for k in keys if k.retired_at is None]
        return current + [k for k in keys if k.retired_at is not None]

    def rotate(self, session: Session, store: CatalogStore) -> str:
        """Retire the keys in use and add a new one in ``session``; return its id."""
        now = utcnow()
        for row in session.scalars(select(self.model).where(self.model.retired_at.is_(None))):
            row.retired_at = now
        row = self.new_row(store)
        session.add(row)
        return row.kid

    def purge(self, store: CatalogStore, lifetime: timedelta) -> int:
        """Delete keys retired more than ``lifetime`` ago (all they signed has expired); return how many went."""
        cutoff = utcnow() - lifetime
        with store.session() as session:
            return session.execute(delete(self.model).where(self.model.retired_at < cutoff)).rowcount or 0

    def reseal(self, store: CatalogStore) -> int:
        """Re-seal every key not under the current master key; return how many."""
        current = store.vault.keys.require_current()
        resealed = 0
        with store.session() as session:
            for row in session.scalars(select(self.model).where(self.model.key_id != current.key_id)):
                sealed = store.vault.reseal(self._associated(row.kid), _record(row))
                row.ciphertext, row.nonce, row.key_id = sealed.ciphertext, sealed.nonce, sealed.key_id
                resealed += 1
        return resealed


def _record(row) -> SealedRecord:
    return SealedRecord(bytes(row.ciphertext), bytes(row.nonce), row.key_id)
