"""The keys gateway tokens are signed with, and the tokens revoked before their expiry.

Signing keys are 256-bit secrets sealed in the vault (AES-256-GCM under the master key, the key id as associated
data), so every replica sharing the catalog signs and verifies the same tokens and a restart changes nothing.
``tokens rotate-key`` retires the current key and makes a new one; a retired key keeps verifying until the tokens
it signed have expired (``purge_signing_keys``). ``vault rotate`` re-seals the keys under a new master key.
Revoking a token records its id until its expiry; revoking all of a user's tokens moves the user's cut-off
(``users.tokens_valid_after``).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from nexus_flight.catalog.audit import audit
from nexus_flight.catalog.models import RevokedToken, TokenSigningKey, utcnow
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.vault import SealedRecord


@dataclass(frozen=True)
class SigningKey:
    """An opened signing key; the secret never shows in repr."""

    kid: str
    secret: bytes = field(repr=False)
    created_at: datetime
    retired_at: datetime | None


def _associated(kid: str) -> str:
    return f"token-signing-key:{kid}"


def _new_key(store: CatalogStore) -> TokenSigningKey:
    kid = secrets.token_hex(8)
    sealed = store.vault.seal(_associated(kid), {"secret": base64.b64encode(secrets.token_bytes(32)).decode()})
    return TokenSigningKey(kid=kid, ciphertext=sealed.ciphertext, nonce=sealed.nonce, key_id=sealed.key_id)


def _open(store: CatalogStore, row: TokenSigningKey) -> SigningKey:
    opened = store.vault.open(_associated(row.kid), SealedRecord(bytes(row.ciphertext), bytes(row.nonce), row.key_id))
    return SigningKey(row.kid, base64.b64decode(opened["secret"].get_secret_value()), row.created_at, row.retired_at)


def signing_keys(store: CatalogStore, *, create: bool = True) -> list[SigningKey]:
    """Every signing key still verifying, newest first (the first one signs); one is made when there is none.

    Raises:
        ConfigError: CV-001 (no master key to seal a new key), CV-003/CV-004 (a key does not open).

    """
    with store.session() as session:
        rows = list(session.scalars(select(TokenSigningKey).order_by(TokenSigningKey.created_at.desc())))
        if not rows and create:
            row = _new_key(store)
            session.add(row)
            session.flush()
            rows = [row]
        keys = [_open(store, r) for r in rows]
    current = [k for k in keys if k.retired_at is None]
    return current + [k for k in keys if k.retired_at is not None]


def rotate_signing_key(store: CatalogStore, *, actor: str | None = None) -> str:
    """Retire the signing keys in use and make a new one; return its id (old tokens keep verifying)."""
    with store.session() as session:
        now = utcnow()
        for row in session.scalars(select(TokenSigningKey).where(TokenSigningKey.retired_at.is_(None))):
            row.retired_at = now
        row = _new_key(store)
        session.add(row)
        audit(session, "signing_key_rotated", actor, row.kid)
        return row.kid


def purge_signing_keys(store: CatalogStore, token_lifetime: timedelta) -> int:
    """Delete retired keys whose every token has expired; return how many went."""
    cutoff = utcnow() - token_lifetime
    with store.session() as session:
        result = session.execute(delete(TokenSigningKey).where(TokenSigningKey.retired_at < cutoff))
        return result.rowcount or 0


def reseal_signing_keys(store: CatalogStore) -> int:
    """Re-seal every signing key not under the current master key (``vault rotate``); return how many."""
    current = store.vault.keys.require_current()
    resealed = 0
    with store.session() as session:
        for row in session.scalars(select(TokenSigningKey).where(TokenSigningKey.key_id != current.key_id)):
            sealed = store.vault.reseal(_associated(row.kid), SealedRecord(bytes(row.ciphertext), bytes(row.nonce),
                                                                          row.key_id))
            row.ciphertext, row.nonce, row.key_id = sealed.ciphertext, sealed.nonce, sealed.key_id
            resealed += 1
    return resealed


def revoke_token(
    store: CatalogStore, token_id: str, user: str, expires_at: datetime, *, actor: str | None = None
) -> None:
    """Refuse a token (and the tokens that refreshed it: they share its id) from now until ``expires_at``."""
    with store.session() as session:
        if session.get(RevokedToken, token_id) is None:
            session.add(RevokedToken(token_id=token_id, user_name=user, expires_at=expires_at, revoked_by=actor))
            audit(session, "token_revoked", actor, token_id, detail={"user": user})


def revoked_token_ids(store: CatalogStore) -> set[str]:
    """Ids of revoked tokens that have not expired yet."""
    with store.session() as session:
        return set(session.scalars(select(RevokedToken.token_id).where(RevokedToken.expires_at > utcnow())))


def purge_revocations(store: CatalogStore) -> int:
    """Forget revocations of tokens that have expired anyway."""
    with store.session() as session:
        return session.execute(delete(RevokedToken).where(RevokedToken.expires_at <= utcnow())).rowcount or 0
