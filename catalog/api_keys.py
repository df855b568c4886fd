"""API keys for services: ``nfk_<id>_<secret>``, shown once, stored as the SHA-256 of the secret.

The id is public (listed, logged, audited); the secret is 32 random bytes, so a plain SHA-256 suffices to store it
(there is nothing to guess, unlike a password) and checking a key costs microseconds. A key belongs to a user, acts
with its own roles (a subset of the owner's) or else the owner's, may expire, and remembers when it was last used
(written at most once a minute per key).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from nexus_flight.catalog.audit import audit
from nexus_flight.catalog.limits import validate_limits
from nexus_flight.catalog.models import ApiKeyRecord, User, utcnow
from nexus_flight.catalog.rules import rule_error
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.users import _roles_of, _user, validate_role_name
from nexus_flight.core.errors import NotFoundError

PREFIX = "nfk_"


@dataclass(frozen=True)
class ApiKeyInfo:
    """A key as listed: never its secret."""

    id: str
    name: str
    owner: str
    roles: tuple[str, ...]
    limits: dict[str, Any]
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime

    def shown(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"id": self.id, "name": self.name, "owner": self.owner, "roles": list(self.roles),
                "limits": self.limits, "expires_at": self.expires_at, "last_used_at": self.last_used_at,
                "revoked_at": self.revoked_at, "created_at": self.created_at}


@dataclass(frozen=True)
class ApiKeyRow:
    """What checking a presented key needs (the secret's hash included), read once and cached by the gateway."""

    id: str
    name: str
    owner: str
    owner_disabled: bool
    secret_sha256: str
    roles: tuple[str, ...]
    limits: dict[str, Any]
    expires_at: datetime | None
    revoked: bool

    def matches(self, secret: str) -> bool:
        """Whether ``secret`` is this key's (constant time)."""
        return hmac.compare_digest(self.secret_sha256, _digest(secret))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(text: str) -> tuple[str, str] | None:
    """``nfk_<id>_<secret>`` -> (id, secret); None when the text is not shaped like a key."""
    if not text.startswith(PREFIX):
        return None
    key_id, sep, secret = text[len(PREFIX):].partition("_")
    return (key_id, secret) if sep and key_id and secret else None


def create_key(
    store: CatalogStore,
    owner: str,
    name: str,
    *,
    roles: Iterable[str] = (),
    limits: Mapping[str, Any] | None = None,
    expires_at: datetime | None = None,
    actor: str | None = None,
) -> tuple[ApiKeyInfo, str]:
    """Create a key for ``owner``; return it and the full key text, which is never retrievable again.

    Raises:
        NotFoundError: no such owner.
        ConfigError: AU-005 (a role the owner does not hold), AU-008 (expiry in the past), AU-009.

    """
    roles = sorted({validate_role_name(r) for r in roles})
    limits = validate_limits(limits)
    if expires_at is not None and expires_at <= utcnow():
        raise rule_error("AU-008", f"the key's expiry {expires_at.isoformat()} is not in the future")
    if not name or len(name) > 255:
        raise rule_error("AU-001", "a key name is 1 to 255 characters", field="name")
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    with store.session() as session:
        user = _user(session, owner)
        held = set(_roles_of(session, user.id))
        missing = [r for r in roles if r not in held]
        if missing:
            raise rule_error("AU-005", f"{owner!r} does not hold the role(s) {', '.join(missing)}: a key acts "
                                       "with a subset of its owner's roles", field="roles")
        record = ApiKeyRecord(id=key_id, name=name, owner_id=user.id, secret_sha256=_digest(secret), roles=roles,
                              limits=limits, expires_at=expires_at, created_by=actor)
        session.add(record)
        audit(session, "key_created", actor, key_id, detail={"name": name, "owner": owner, "roles": roles})
        session.flush()
        return _info(record, owner), f"{PREFIX}{key_id}_{secret}"


def list_keys(store: CatalogStore, owner: str | None = None) -> list[ApiKeyInfo]:
    """Every key (or one owner's), newest first."""
    query = select(ApiKeyRecord, User.name).join(User, User.id == ApiKeyRecord.owner_id)
    if owner:
        query = query.where(User.name == owner)
    with store.session() as session:
        return [_info(r, o) for r, o in session.execute(query.order_by(ApiKeyRecord.created_at.desc()))]


def revoke_key(store: CatalogStore, key_id: str, *, actor: str | None = None) -> ApiKeyInfo:
    """Refuse a key from now on (it stays listed as revoked).

    Raises:
        NotFoundError: no such key.

    """
    with store.session() as session:
        record = session.get(ApiKeyRecord, key_id)
        if record is None:
            raise NotFoundError(f"no API key with id {key_id!r}")
        if record.revoked_at is None:
            record.revoked_at = utcnow()
            audit(session, "key_revoked", actor, key_id, detail={"name": record.name})
        owner = session.get(User, record.owner_id)
        return _info(record, owner.name if owner else "?")


def key_rows(store: CatalogStore) -> dict[str, ApiKeyRow]:
    """Every key with what checking it needs, by id (the gateway's cache reloads this)."""
    query = select(ApiKeyRecord, User).join(User, User.id == ApiKeyRecord.owner_id)
    with store.session() as session:
        return {
            r.id: ApiKeyRow(r.id, r.name, u.name, bool(u.disabled), r.secret_sha256, tuple(r.roles or ()),
                            dict(r.limits or {}), r.expires_at, r.revoked_at is not None)
            for r, u in session.execute(query)
        }


def touch_keys(store: CatalogStore, used: Mapping[str, datetime]) -> None:
    """Record when keys were last used."""
    with store.session() as session:
        for key_id, when in used.items():
            record = session.get(ApiKeyRecord, key_id)
            if record is not None:
                record.last_used_at = when


def _info(record: ApiKeyRecord, owner: str) -> ApiKeyInfo:
    return ApiKeyInfo(record.id, record.name, owner, tuple(record.roles or ()), dict(record.limits or {}),
                      record.expires_at, record.last_used_at, record.revoked_at, record.created_at)
