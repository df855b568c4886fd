"""The keys gateway tokens are signed with, and the tokens revoked before their expiry.

Signing keys are 256-bit secrets sealed in the vault (AES-256-GCM under the master key, the key id as associated
data), so every replica sharing the catalog signs and verifies the same tokens and a restart changes nothing.
``tokens rotate-key`` retires the current key and makes a new one; a retired key keeps verifying until the tokens
it signed have expired (``purge_signing_keys``). ``vault rotate`` re-seals the keys under a new master key.
Revoking a token records its id until its expiry; revoking all of a user's tokens moves the user's cut-off
(``users.tokens_valid_after``). Each sign-in is recorded (``sign_ins``: id, owner, method, expiry, never a token),
so a user's live tokens can be listed and revoked one by one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from nexus_flight.catalog.audit import audit
from nexus_flight.catalog.models import LiveSignIn, RevokedToken, TokenSigningKey, User, utcnow
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


@dataclass(frozen=True)
class LiveToken:
    """A sign-in whose tokens are still valid: never the token, only what identifies and bounds it."""

    id: str
    user: str
    method: str
    key_id: str | None
    issued_at: datetime
    expires_at: datetime

    def shown(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"id": self.id, "user": self.user, "method": self.method, "key_id": self.key_id,
                "issued_at": self.issued_at, "expires_at": self.expires_at}


def record_sign_in(store: CatalogStore, session_id: str, user: str, method: str, issued_at: datetime,
                   expires_at: datetime, key_id: str | None = None) -> None:
    """Remember a new sign-in (its first token), so that its owner and administrators can list and revoke it."""
    with store.session() as session:
        session.add(LiveSignIn(session_id=session_id, user_name=user, method=method, key_id=key_id,
                               issued_at=issued_at, expires_at=expires_at))


def extend_sign_ins(store: CatalogStore, until: Mapping[str, datetime]) -> None:
    """Move the expiry of sign-ins whose tokens were refreshed (never backwards)."""
    with store.session() as session:
        for session_id, expires_at in until.items():
            record = session.get(LiveSignIn, session_id)
            if record is not None and record.expires_at < expires_at:
                record.expires_at = expires_at


def live_tokens(store: CatalogStore, user: str | None = None) -> list[LiveToken]:
    """The sign-ins (of one user, or everyone's) whose tokens are valid now: not expired, revoked or cut off."""
    now = utcnow()
    with store.session() as session:
        query = select(LiveSignIn, User.tokens_valid_after).join(
            User, User.name == LiveSignIn.user_name).where(LiveSignIn.expires_at > now).where(
            ~LiveSignIn.session_id.in_(select(RevokedToken.token_id))).order_by(LiveSignIn.issued_at)
        if user is not None:
            query = query.where(LiveSignIn.user_name == user)
        return [LiveToken(r.session_id, r.user_name, r.method, r.key_id, r.issued_at, r.expires_at)
                for r, cutoff in session.execute(query) if cutoff is None or r.issued_at >= cutoff]


def sign_in_of(store: CatalogStore, session_id: str) -> LiveToken | None:
    """One recorded sign-in, live or not (None: unknown)."""
    with store.session() as session:
        r = session.get(LiveSignIn, session_id)
        return None if r is None else LiveToken(r.session_id, r.user_name, r.method, r.key_id, r.issued_at,
                                                r.expires_at)


def revoke_sign_in(store: CatalogStore, session_id: str, session_max_seconds: float, *,
                   actor: str | None = None) -> LiveToken | None:
    """Refuse every token of one recorded sign-in; return it (None: no sign-in of that id).

    Refused until none of its tokens could be accepted: its latest expiry, or the longest a sign-in continues.
    """
    found = sign_in_of(store, session_id)
    if found is not None:
        until = max(found.expires_at, datetime.now(UTC)) + timedelta(seconds=session_max_seconds)
        revoke_token(store, found.id, found.user, until, actor=actor)
    return found


def purge_sign_ins(store: CatalogStore) -> int:
    """Forget sign-ins whose every token has expired."""
    with store.session() as session:
        return session.execute(delete(LiveSignIn).where(LiveSignIn.expires_at <= utcnow())).rowcount or 0
