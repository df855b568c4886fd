"""Users, roles and grants declared in the TOML file: validated like the CLI's, owned by the file.

::

    [[roles]]
    name = "analyst"
    description = "reads sales"

    [[users]]
    name = "carol"
    password = "${env:CAROL_PASSWORD}"      # a reference, never a literal (CV-007); omit for SSO/certificate users
    roles = ["analyst"]
    attributes = { region = "EUROPE" }
    disabled = false

    [[grants]]
    role = "analyst"
    target = "sales.public.orders"         # catalog, catalog.schema, catalog.schema.table or catalog..table
    columns = ["id", "amount"]             # optional: these columns only

Each kind is checked when the file loads with the CLI's own rules (names AU-001/AU-004, passwords AU-003,
attributes AU-007, targets AU-006), and applied to the catalog at start and on SIGHUP, one function per kind.
Rows made from the file are marked ``origin = "config"``: the file owns them, so a row removed from the file is
removed from the catalog (a user with its keys, a role with its grants), and a declared row is brought back to
what the file says (roles held, attributes, disabled, password). Rows made with the CLI or admin actions
(``origin = "cli"``) are never touched; a declared user or role whose name such a row already holds is refused
(AU-002), as the CLI refuses it. Every change is an audit event by the actor ``config``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError
from sqlalchemy import select

from nexus_flight.catalog.grants import add_grant, list_grants, parse_target, revoke_grant
from nexus_flight.catalog.models import Role, User
from nexus_flight.catalog.passwords import verify_password
from nexus_flight.catalog.rules import rule_error
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.users import (
    ADMIN_ROLE,
    add_role,
    add_user,
    list_roles,
    list_users,
    remove_role,
    remove_user,
    set_password,
    update_role,
    update_user,
    validate_attributes,
    validate_password,
    validate_role_name,
    validate_user_name,
)
from nexus_flight.core.errors import ConfigError, GatewayError
from nexus_flight.core.settings import first_error, resolve_reference

ORIGIN = "config"
ACTOR = "config"


class _RoleEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str | None = None


class _UserEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    password: str | None = None
    roles: list[str] = []
    attributes: dict[str, Any] = {}
    disabled: bool = False


class _GrantEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str
    target: str
    columns: list[str] | None = None


@dataclass(frozen=True)
class DeclaredRole:
    """A role the file declares."""

    name: str
    description: str | None = None


@dataclass(frozen=True)
class DeclaredUser:
    """A user the file declares (its password resolved from the environment, kept as a secret)."""

    name: str
    password: SecretStr | None = field(default=None, repr=False)
    roles: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)
    disabled: bool = False


@dataclass(frozen=True)
class DeclaredGrant:
    """A grant the file declares."""

    role: str
    catalog: str
    db_schema: str | None
    table: str | None
    columns: tuple[str, ...] | None = None

    @property
    def key(self) -> tuple:
        """What makes two grants the same (names ignore case, as the grants compare them)."""
        cols = tuple(sorted(c.lower() for c in self.columns)) if self.columns is not None else None
        return (self.role, self.catalog.lower(), (self.db_schema or "").lower(), (self.table or "").lower(), cols)


@dataclass(frozen=True)
class DeclaredSecurity:
    """Everything the file declares about who may do what (nothing: the file owns no rows)."""

    roles: tuple[DeclaredRole, ...] = ()
    users: tuple[DeclaredUser, ...] = ()
    grants: tuple[DeclaredGrant, ...] = ()


# -- loading: one function per kind ------------------------------------------------------------------------------


def _entries(kind: str, model: type[BaseModel], raw: list[Any]) -> list[Any]:
    entries = []
    for index, item in enumerate(raw):
        try:
            entries.append(model.model_validate(item))
        except ValidationError as exc:
            raise ConfigError(first_error(exc, f"{kind}[{index}]")) from None
    return entries


def _checked(where: str, check) -> Any:
    try:
        return check()
    except GatewayError as exc:
        raise ConfigError(f"{where}: {exc.message}", **exc.details) from None


def _once(kind: str, names: list[str]) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name.lower() in seen:
            raise rule_error("AU-002", f"{kind}[{index}] ({name}): declared twice (names ignore case)", field="name")
        seen.add(name.lower())


def declared_roles(raw: list[Any]) -> tuple[DeclaredRole, ...]:
    """The file's ``[[roles]]``, checked (AU-004 names, AU-011 ``admin``, AU-002 twice).

    Raises:
        ConfigError: naming the entry and the rule.

    """
    roles = []
    for index, entry in enumerate(_entries("roles", _RoleEntry, raw)):
        where = f"roles[{index}] ({entry.name})"
        _checked(where, lambda e=entry: validate_role_name(e.name))
        if entry.name.lower() == ADMIN_ROLE:
            raise rule_error("AU-011", f"{where}: the admin role is built in", field="name")
        roles.append(DeclaredRole(entry.name, entry.description))
    _once("roles", [r.name for r in roles])
    return tuple(roles)


def declared_users(raw: list[Any], env: Mapping[str, str]) -> tuple[DeclaredUser, ...]:
    """The file's ``[[users]]``, checked (AU-001, AU-003, AU-004, AU-007, CV-007 for a literal password).

    Raises:
        ConfigError: naming the entry and the rule (never the password).

    """
    users = []
    for index, entry in enumerate(_entries("users", _UserEntry, raw)):
        where = f"users[{index}] ({entry.name})"
        _checked(where, lambda e=entry: validate_user_name(e.name))
        password = None
        if entry.password is not None:
            plain = resolve_reference(f"{where}.password", entry.password, env)
            password = SecretStr(_checked(where, lambda p=plain, e=entry: validate_password(p, e.name)))
        roles = tuple(_checked(where, lambda r=role: validate_role_name(r)) for role in entry.roles)
        attributes = _checked(where, lambda e=entry: validate_attributes(e.attributes))
        users.append(DeclaredUser(entry.name, password, roles, attributes, entry.disabled))
    _once("users", [u.name for u in users])
    return tuple(users)


def declared_grants(raw: list[Any]) -> tuple[DeclaredGrant, ...]:
    """The file's ``[[grants]]``, checked (AU-004 role, AU-006 target and columns).

    Raises:
        ConfigError: naming the entry and the rule.

    """
    grants = []
    for index, entry in enumerate(_entries("grants", _GrantEntry, raw)):
        where = f"grants[{index}] ({entry.target})"
        _checked(where, lambda e=entry: validate_role_name(e.role))
        catalog, schema, table = _checked(where, lambda e=entry: parse_target(e.target))
        columns = tuple(dict.fromkeys(c for c in entry.columns if c)) if entry.columns is not None else None
        if columns is not None and (table is None or not columns):
            raise rule_error("AU-006", f"{where}: column grants name a table and at least one column",
                             field="columns")
        grants.append(DeclaredGrant(entry.role, catalog, schema, table, columns))
    return tuple(dict.fromkeys(grants))


def declared_security(document: Mapping[str, Any], env: Mapping[str, str]) -> DeclaredSecurity:
    """The roles, users and grants a configuration document declares, each kind checked.

    Raises:
        ConfigError: naming the entry and the rule.

    """
    return DeclaredSecurity(declared_roles(document.get("roles") or []),
                            declared_users(document.get("users") or [], env),
                            declared_grants(document.get("grants") or []))


# -- applying: one function per kind -----------------------------------------------------------------------------


def _owners(store: CatalogStore, model, names: list[str]) -> dict[str, str]:
    """Name (lower case) -> origin of the existing rows of ``model`` among ``names``."""
    wanted = {n.lower() for n in names}
    with store.session() as session:
        return {row.name.lower(): row.origin for row in session.scalars(select(model)) if row.name.lower() in wanted}


def _refuse_taken(kind: str, owners: dict[str, str], names: list[str]) -> None:
    for name in names:
        if owners.get(name.lower(), ORIGIN) != ORIGIN:
            raise rule_error("AU-002", f"{kind} {name!r} is declared in the file but was made with the CLI or "
                                       "an admin action: remove one of them", field="name")


def apply_roles(store: CatalogStore, roles: tuple[DeclaredRole, ...]) -> dict[str, str]:
    """Add or update the declared roles (removal waits for ``remove_undeclared_roles``); return name -> action."""
    actions = {}
    existing = {r.name.lower(): r for r in list_roles(store)}
    for role in roles:
        current = existing.get(role.name.lower())
        if current is None:
            add_role(store, role.name, description=role.description, origin=ORIGIN, actor=ACTOR)
            actions[role.name] = "added"
        elif (current.description or None) != (role.description or None):
            update_role(store, current.name, description=role.description or "", actor=ACTOR)
            actions[role.name] = "updated"
    return actions


def apply_users(store: CatalogStore, users: tuple[DeclaredUser, ...]) -> dict[str, str]:
    """Add the declared users or bring them back to what the file says; return name -> action."""
    actions = {}
    existing = {u.name.lower(): u for u in list_users(store)}
    for user in users:
        password = user.password.get_secret_value() if user.password is not None else None
        current = existing.get(user.name.lower())
        if current is None:
            add_user(store, user.name, password, roles=user.roles, attributes=user.attributes, origin=ORIGIN,
                     actor=ACTOR)
            if user.disabled:
                update_user(store, user.name, disabled=True, actor=ACTOR)
            actions[user.name] = "added"
            continue
        held = set(current.roles)
        changed = update_user(
            store, current.name, disabled=user.disabled if user.disabled != current.disabled else None,
            attributes=user.attributes if dict(user.attributes) != current.attributes else None,
            add_roles=[r for r in user.roles if r not in held],
            remove_roles=[r for r in held if r not in user.roles], actor=ACTOR)
        action = "updated" if changed != current else "unchanged"
        if password is not None and not verify_password(_password_hash(store, current.name), password):
            set_password(store, current.name, password, actor=ACTOR)
            action = "updated"
        if action != "unchanged":
            actions[user.name] = action
    return actions


def _password_hash(store: CatalogStore, name: str) -> str | None:
    with store.session() as session:
        return session.scalars(select(User.password_hash).where(User.name == name)).first()


def apply_grants(store: CatalogStore, grants: tuple[DeclaredGrant, ...]) -> dict[str, int]:
    """Make the catalog's file-owned grants exactly the declared ones; return how many were added and revoked."""
    owned = {DeclaredGrant(g.role, g.catalog, g.db_schema, g.table, g.columns).key: g
             for g in list_grants(store) if g.origin == ORIGIN}
    wanted = {g.key: g for g in grants}
    for key, grant in owned.items():
        if key not in wanted:
            revoke_grant(store, grant.id, actor=ACTOR)
    for key, grant in wanted.items():
        if key not in owned:
            add_grant(store, grant.role, grant.catalog, grant.db_schema, grant.table, columns=grant.columns,
                      origin=ORIGIN, actor=ACTOR)
    return {"added": len(wanted.keys() - owned.keys()), "revoked": len(owned.keys() - wanted.keys())}


def remove_undeclared(store: CatalogStore, declared: DeclaredSecurity) -> list[str]:
    """Remove the file-owned users and roles the file no longer declares; return what was removed."""
    removed = []
    users = {u.name.lower() for u in declared.users}
    for user in list_users(store):
        if user.origin == ORIGIN and user.name.lower() not in users:
            remove_user(store, user.name, actor=ACTOR)
            removed.append(f"user {user.name}")
    roles = {r.name.lower() for r in declared.roles}
    for role in list_roles(store):
        if role.origin == ORIGIN and role.name.lower() not in roles:
            remove_role(store, role.name, actor=ACTOR)
            removed.append(f"role {role.name}")
    return removed


def check_security(store: CatalogStore, declared: DeclaredSecurity) -> set[str]:
    """Check the declarations against the catalog, changing nothing; return the roles there once they are applied.

    Raises:
        ConfigError: AU-002 (a declared name that a CLI-made row holds), AU-005 (a role that neither the file nor
            the catalog has).

    """
    _refuse_taken("role", _owners(store, Role, [r.name for r in declared.roles]), [r.name for r in declared.roles])
    _refuse_taken("user", _owners(store, User, [u.name for u in declared.users]), [u.name for u in declared.users])
    known = {r.name for r in list_roles(store) if r.origin != ORIGIN} | {r.name for r in declared.roles}
    for role in [r for u in declared.users for r in u.roles] + [g.role for g in declared.grants]:
        if role not in known:
            raise rule_error("AU-005", f"role {role!r} is neither declared in the file nor in the catalog",
                             field="role")
    return known


def apply_security(store: CatalogStore, declared: DeclaredSecurity) -> str:
    """Make the catalog hold what the file declares; return a one-line summary ("" when nothing changed).

    Everything is checked before anything changes (``check_security``): a refused declaration refuses the whole
    file.

    Raises:
        ConfigError: AU-002 (a name the CLI owns), AU-005 (an unknown role).

    """
    check_security(store, declared)
    changes = [f"role {n} {a}" for n, a in apply_roles(store, declared.roles).items()]
    changes += [f"user {n} {a}" for n, a in apply_users(store, declared.users).items()]
    counts = apply_grants(store, declared.grants)
    changes += [f"{n} grants {a}" for a, n in counts.items() if n]
    changes += [f"{what} removed" for what in remove_undeclared(store, declared)]
    return ", ".join(changes)

