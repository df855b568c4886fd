"""Users and roles: who may sign in, with which password hash, holding which roles (AU-001…AU-005, AU-011).

A user has a name, an argon2 hash of its password (or none: certificate or SSO users), a disabled flag,
attributes row filters can use and limits. Roles group grants; ``admin`` is built in (created by migration 3) and
may do everything. A new user holds no role and therefore sees nothing. Every change is an audit event written in
the same transaction; the password itself is never stored, logged or returned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nexus_flight.catalog.audit import audit
from nexus_flight.catalog.limits import validate_limits
from nexus_flight.catalog.models import Role, User, UserRole, utcnow
from nexus_flight.catalog.passwords import hash_password
from nexus_flight.catalog.rules import rule_error
from nexus_flight.catalog.source_types import suggest
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.core.errors import NotFoundError

ADMIN_ROLE = "admin"
MIN_PASSWORD_LENGTH = 10
_ROLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_ATTRIBUTE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class UserInfo:
    """A user as the catalog reports it: never the password or its hash."""

    id: str
    name: str
    roles: tuple[str, ...]
    disabled: bool
    has_password: bool
    attributes: dict[str, Any]
    limits: dict[str, Any]
    origin: str
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime | None
    last_login_at: datetime | None
    tokens_valid_after: datetime | None

    def shown(self) -> dict[str, Any]:
        """A JSON-ready view for the CLI and the ``system`` catalog."""
        return {
            "name": self.name,
            "roles": list(self.roles),
            "disabled": self.disabled,
            "has_password": self.has_password,
            "attributes": self.attributes,
            "limits": self.limits,
            "origin": self.origin,
            "created_at": self.created_at,
            "password_changed_at": self.password_changed_at,
            "last_login_at": self.last_login_at,
        }


@dataclass(frozen=True)
class RoleInfo:
    """A role, its members and its limits."""

    name: str
    description: str | None
    members: tuple[str, ...]
    limits: dict[str, Any]
    origin: str
    created_at: datetime

    def shown(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"name": self.name, "description": self.description, "members": list(self.members),
                "limits": self.limits, "origin": self.origin, "created_at": self.created_at}


@dataclass(frozen=True)
class SignInRecord:
    """What signing a user in needs, read in bulk and cached by the gateway; the hash never shows in repr."""

    name: str
    password_hash: str | None = field(repr=False)
    disabled: bool
    roles: frozenset[str]
    attributes: dict[str, Any]
    limits: dict[str, Any]
    tokens_valid_after: datetime | None


# -- validation -------------------------------------------------------------------------------------------------


def validate_user_name(name: object) -> str:
    """Check a user name (AU-001) and return it.

    Raises:
        ConfigError: AU-001.

    """
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise rule_error("AU-001", "a user name is 1 to 255 characters", field="name")
    if ":" in name or any(c.isspace() or not c.isprintable() for c in name):
        raise rule_error("AU-001", f"user name {name!r} holds ':', a space or a control character", field="name")
    return name


def validate_role_name(name: object) -> str:
    """Check a role name (AU-004) and return it.

    Raises:
        ConfigError: AU-004.

    """
    if not isinstance(name, str) or not _ROLE.match(name):
        raise rule_error(
            "AU-004", f"role name {name!r}: 1-64 characters, a letter or _ then letters, digits, _, . or -",
            field="role",
        )
    return name


def validate_password(password: str | SecretStr, user: str) -> str:
    """Check a new password (AU-003) and return it as plain text (only to hash it).

    Raises:
        ConfigError: AU-003 (the message never holds the password).

    """
    text = password.get_secret_value() if isinstance(password, SecretStr) else password
    if not isinstance(text, str) or len(text) < MIN_PASSWORD_LENGTH:
        raise rule_error("AU-003", f"the password of {user!r} must have at least {MIN_PASSWORD_LENGTH} characters",
                         field="password")
    if text.casefold() == user.casefold():
        raise rule_error("AU-003", f"the password of {user!r} must not be the user name", field="password")
    return text


def validate_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check user attributes: names like identifiers, values text, numbers or booleans (AU-007's placeholders).

    Raises:
        ConfigError: AU-007.

    """
    checked = {}
    for key, value in (attributes or {}).items():
        if not isinstance(key, str) or not _ATTRIBUTE.match(key) or key == "name":
            raise rule_error("AU-007", f"attribute name {key!r}: letters, digits and _, not 'name'", field=key)
        if value is not None and not isinstance(value, str | int | float | bool):
            raise rule_error("AU-007", f"attribute {key!r}: text, a number or a boolean", field=key)
        checked[key] = value
    return checked


# -- users ------------------------------------------------------------------------------------------------------


def add_user(
    store: CatalogStore,
    name: str,
    password: str | SecretStr | None = None,
    *,
    roles: Iterable[str] = (),
    attributes: Mapping[str, Any] | None = None,
    limits: Mapping[str, Any] | None = None,
    origin: str = "cli",
    actor: str | None = None,
) -> UserInfo:
    """Create a user (with roles) and return it.

    Raises:
        ConfigError: AU-001, AU-002 (the name is taken), AU-003, AU-005 (a role does not exist), AU-007, AU-009.

    """
    validate_user_name(name)
    plain = validate_password(password, name) if password is not None else None
    attributes, limits = validate_attributes(attributes), validate_limits(limits)
    roles = [validate_role_name(r) for r in roles]
    hashed = hash_password(plain) if plain is not None else None  # argon2 outside the transaction
    with store.session() as session:
        if _user(session, name, missing_ok=True, any_case=True) is not None:
            raise rule_error("AU-002", f"a user named {name!r} already exists (names ignore case)", field="name")
        user = User(name=name, password_hash=hashed, attributes=attributes, limits=limits, origin=origin,
                    password_changed_at=utcnow() if hashed else None)
        session.add(user)
        session.flush()
        for role in roles:
            _role(session, role)
            session.add(UserRole(user_id=user.id, role_name=role))
        audit(session, "user_added", actor, name, detail={"roles": sorted(roles), "origin": origin})
        session.flush()
        return _user_info(session, user)


def get_user(store: CatalogStore, name: str) -> UserInfo:
    """One user by name.

    Raises:
        NotFoundError: no such user.

    """
    with store.session() as session:
        return _user_info(session, _user(session, name))


def list_users(store: CatalogStore) -> list[UserInfo]:
    """Every user, by name."""
    with store.session() as session:
        return [_user_info(session, u) for u in session.scalars(select(User).order_by(User.name))]


def set_password(store: CatalogStore, name: str, password: str | SecretStr, *, actor: str | None = None) -> None:
    """Replace a user's password (tokens issued before stay valid until they expire or are revoked).

    Raises:
        NotFoundError: no such user.
        ConfigError: AU-003.

    """
    hashed = hash_password(validate_password(password, name))
    with store.session() as session:
        user = _user(session, name)
        user.password_hash = hashed
        user.password_changed_at = utcnow()
        audit(session, "password_changed", actor, name)


def set_password_hash(store: CatalogStore, name: str, hashed: str) -> None:
    """Store a re-hashed password (stronger parameters) after a successful sign-in; no audit event."""
    with store.session() as session:
        user = _user(session, name, missing_ok=True)
        if user is not None:
            user.password_hash = hashed


def update_user(
    store: CatalogStore,
    name: str,
    *,
    disabled: bool | None = None,
    attributes: Mapping[str, Any] | None = None,
    limits: Mapping[str, Any] | None = None,
    add_roles: Iterable[str] = (),
    remove_roles: Iterable[str] = (),
    actor: str | None = None,
) -> UserInfo:
    """Disable or enable a user, replace its attributes or limits, add or remove roles.

    Raises:
        NotFoundError: no such user.
        ConfigError: AU-004, AU-005, AU-007, AU-009.

    """
    add_roles = [validate_role_name(r) for r in add_roles]
    remove_roles = [validate_role_name(r) for r in remove_roles]
    with store.session() as session:
        user = _user(session, name)
        changes: dict[str, Any] = {}
        if disabled is not None and disabled != user.disabled:
            user.disabled = changes["disabled"] = disabled
        if attributes is not None:
            user.attributes = changes["attributes"] = validate_attributes(attributes)
        if limits is not None:
            user.limits = changes["limits"] = validate_limits(limits)
        held = _roles_of(session, user.id)
        for role in add_roles:
            _role(session, role)
            if role not in held:
                session.add(UserRole(user_id=user.id, role_name=role))
                audit(session, "role_granted", actor, f"{name} <- {role}")
        for role in remove_roles:
            if role in held:
                session.query(UserRole).filter_by(user_id=user.id, role_name=role).delete()
                audit(session, "role_revoked", actor, f"{name} -> {role}")
        if changes:
            user.updated_at = utcnow()
            audit(session, "user_changed", actor, name, detail={k: v for k, v in changes.items()})
        session.flush()
        return _user_info(session, user)


def remove_user(store: CatalogStore, name: str, *, actor: str | None = None) -> None:
    """Delete a user with its memberships and API keys (its history stays).

    Raises:
        NotFoundError: no such user.

    """
    from nexus_flight.catalog.models import ApiKeyRecord

    with store.session() as session:
        user = _user(session, name)
        session.query(UserRole).filter_by(user_id=user.id).delete()
        session.query(ApiKeyRecord).filter_by(owner_id=user.id).delete()
        session.delete(user)
        audit(session, "user_removed", actor, name)


def revoke_user_tokens(store: CatalogStore, name: str, *, actor: str | None = None) -> datetime:
    """Refuse every token issued to a user so far (its API keys are revoked separately); return the cut-off.

    Raises:
        NotFoundError: no such user.

    """
    with store.session() as session:
        user = _user(session, name)
        user.tokens_valid_after = now = utcnow()
        audit(session, "tokens_revoked", actor, name)
        return now


def record_login(store: CatalogStore, name: str) -> None:
    """Remember a user's last successful sign-in."""
    with store.session() as session:
        user = _user(session, name, missing_ok=True)
        if user is not None:
            user.last_login_at = utcnow()


def sign_in_records(store: CatalogStore) -> tuple[dict[str, SignInRecord], dict[str, dict[str, Any]]]:
    """Every user's sign-in record by name, and every role's limits by name (two queries, for the cache)."""
    with store.session() as session:
        memberships: dict[str, set[str]] = {}
        for user_id, role in session.execute(select(UserRole.user_id, UserRole.role_name)):
            memberships.setdefault(user_id, set()).add(role)
        users = {
            u.name: SignInRecord(u.name, u.password_hash, bool(u.disabled), frozenset(memberships.get(u.id, ())),
                                 dict(u.attributes or {}), dict(u.limits or {}), u.tokens_valid_after)
            for u in session.scalars(select(User))
        }
        roles = {r.name: dict(r.limits or {}) for r in session.scalars(select(Role))}
    return users, roles


# -- roles ------------------------------------------------------------------------------------------------------


def add_role(
    store: CatalogStore,
    name: str,
    *,
    description: str | None = None,
    limits: Mapping[str, Any] | None = None,
    origin: str = "cli",
    actor: str | None = None,
) -> RoleInfo:
    """Create a role.

    Raises:
        ConfigError: AU-004, AU-002 (taken), AU-009, AU-011 (``admin``).

    """
    validate_role_name(name)
    if name.lower() == ADMIN_ROLE:
        raise rule_error("AU-011", "the admin role is built in", field="role")
    limits = validate_limits(limits)
    with store.session() as session:
        if session.scalars(select(Role).where(func.lower(Role.name) == name.lower())).first() is not None:
            raise rule_error("AU-002", f"a role named {name!r} already exists (names ignore case)", field="role")
        role = Role(name=name, description=description, limits=limits, origin=origin)
        session.add(role)
        audit(session, "role_added", actor, name)
        session.flush()
        return _role_info(session, role)


def update_role(
    store: CatalogStore, name: str, *, description: str | None = None, limits: Mapping[str, Any] | None = None,
    actor: str | None = None,
) -> RoleInfo:
    """Change a role's description or limits.

    Raises:
        NotFoundError: no such role.
        ConfigError: AU-009.

    """
    with store.session() as session:
        role = _role(session, name, missing_is="not_found")
        if description is not None:
            role.description = description
        if limits is not None:
            role.limits = validate_limits(limits)
            audit(session, "user_changed", actor, f"role {name}", detail={"limits": role.limits})
        return _role_info(session, role)


def list_roles(store: CatalogStore) -> list[RoleInfo]:
    """Every role, by name."""
    with store.session() as session:
        return [_role_info(session, r) for r in session.scalars(select(Role).order_by(Role.name))]


def get_role(store: CatalogStore, name: str) -> RoleInfo:
    """One role by name.

    Raises:
        NotFoundError: no such role.

    """
    with store.session() as session:
        return _role_info(session, _role(session, name, missing_is="not_found"))


def remove_role(store: CatalogStore, name: str, *, actor: str | None = None) -> None:
    """Delete a role, its grants and its memberships.

    Raises:
        NotFoundError: no such role.
        ConfigError: AU-011 for ``admin``.

    """
    from nexus_flight.catalog.models import GrantRecord

    if name == ADMIN_ROLE:
        raise rule_error("AU-011", "the admin role is built in and cannot be removed", field="role")
    with store.session() as session:
        role = _role(session, name, missing_is="not_found")
        session.query(UserRole).filter_by(role_name=name).delete()
        session.query(GrantRecord).filter_by(role_name=name).delete()
        session.delete(role)
        audit(session, "role_removed", actor, name)


# -- internals --------------------------------------------------------------------------------------------------


def _user(session: Session, name: str, *, missing_ok: bool = False, any_case: bool = False) -> User | None:
    where = func.lower(User.name) == name.lower() if any_case else User.name == name
    user = session.scalars(select(User).where(where)).first()
    if user is None and not missing_ok:
        names = session.scalars(select(User.name)).all()
        raise NotFoundError(f"no user named {name!r}{suggest(name, names)}")
    return user


def _role(session: Session, name: str, missing_is: str = "rule") -> Role:
    role = session.get(Role, name)
    if role is None:
        names = session.scalars(select(Role.name)).all()
        message = f"no role named {name!r}{suggest(name, names)}"
        if missing_is == "not_found":
            raise NotFoundError(message)
        raise rule_error("AU-005", message + "; create it with `nexus-flight roles add`", field="role")
    return role


def _roles_of(session: Session, user_id: str) -> list[str]:
    return sorted(session.scalars(select(UserRole.role_name).where(UserRole.user_id == user_id)))


def _user_info(session: Session, user: User) -> UserInfo:
    return UserInfo(
        id=user.id, name=user.name, roles=tuple(_roles_of(session, user.id)), disabled=bool(user.disabled),
        has_password=user.password_hash is not None, attributes=dict(user.attributes or {}),
        limits=dict(user.limits or {}), origin=user.origin, created_at=user.created_at, updated_at=user.updated_at,
        password_changed_at=user.password_changed_at, last_login_at=user.last_login_at,
        tokens_valid_after=user.tokens_valid_after,
    )


def _role_info(session: Session, role: Role) -> RoleInfo:
    members = session.scalars(
        select(User.name).join(UserRole, UserRole.user_id == User.id).where(UserRole.role_name == role.name)
        .order_by(User.name)
    ).all()
    return RoleInfo(role.name, role.description, tuple(members), dict(role.limits or {}), role.origin,
                    role.created_at)
