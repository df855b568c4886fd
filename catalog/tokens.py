"""The keys gateway tokens are signed with, and the tokens revoked before their expiry.

Signing keys are 256-bit secrets sealed in the vault (AES-256-GCM under the master key, the key id as associated
data), so every replica sharing the catalog signs and verifies the same tokens and a restart changes nothing.
``tokens rotate-key`` retires the current key and makes a new one; a retired key keeps verifying until the tokens
it signed have expired (``purge_signing_keys``). ``vault rotate`` re-seals the keys under a new master key.
Revoking a token records its id until its expiry; revoking all of a user's tokens moves the user's cut-off
(``users.tokens_valid_after``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select

from nexus_flight.catalog.audit import audit
from nexus_flight.catalog.models import RevokedToken, TokenSigningKey, utcnow
from nexus_flight.catalog.sealed_keys import SealedKeyTable, SigningKey
from nexus_flight.catalog.store import CatalogStore

TOKEN_KEYS = SealedKeyTable(TokenSigningKey, "token-signing-key")


def signing_keys(store: CatalogStore, *, create: bool = True) -> list[SigningKey]:
    """Every signing key still verifying, newest first (the first one signs); one is made when there is none.

    Raises:
        ConfigError: CV-001 (no master key to seal a new key), CV-003/CV-004 (a key does not open).

    """
    return TOKEN_KEYS.keys(store, create=create)


def rotate_signing_key(store: CatalogStore, *, actor: str | None = None) -> str:
    """Retire the signing keys in use and make a new one; return its id (old tokens keep verifying)."""
    with store.session() as session:
        kid = TOKEN_KEYS.rotate(session, store)
        audit(session, "signing_key_rotated", actor, kid)
        return kid


def purge_signing_keys(store: CatalogStore, token_lifetime: timedelta) -> int:
    """Delete retired keys whose every token has expired; return how many went."""
    return TOKEN_KEYS.purge(store, token_lifetime)


def reseal_signing_keys(store: CatalogStore) -> int:
    """Re-seal every signing key not under the current master key (``vault rotate``); return how many."""
    return TOKEN_KEYS.reseal(store)


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
