"""Administration over Flight SQL: the CLI's users, roles, grants, keys and tokens commands as ``DoAction`` actions.

The wire knows them through ``server/flight/administration.py``'s protocol; this is its implementation on the
catalog.

An action is named ``nexus.<group>.<verb>`` (``nexus.users.add``, ``nexus.grants.list`` …, see ``ACTIONS``); its
body is a JSON object of the fields listed there, and it answers one result, a JSON document: the row made or
changed, or the list asked for, as the CLI prints them with ``--json``. Only an admin may call them: anyone else
gets PERMISSION_DENIED before the body is even read. A body that is not such an object (unknown, missing or
mistyped fields) is INVALID_ARGUMENT naming the field, never its value. A password sent in a body is never
answered back; a key's text is answered once, by ``nexus.keys.create``, as the CLI prints it once. The catalog
functions the CLI calls do the work, with the same validation, and each change is an audit event naming the
admin (actor ``flight:<user>``); the gateway's snapshot of identities is refreshed at once, so a grant or a
revocation applies to the next call. The token actions (``server/security/token_actions.py``) are the exception
to "admins only": every signed-in user may list and revoke their own tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nexus_flight.catalog.api_keys import create_key, list_keys, revoke_key
from nexus_flight.catalog.grants import add_grant, list_grants, parse_target, revoke_grant
from nexus_flight.catalog.limits import parse_limits
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.users import (
    add_role,
    add_user,
    get_role,
    get_user,
    list_roles,
    list_users,
    remove_role,
    remove_user,
    set_password,
    update_user,
)
from nexus_flight.core.errors import ConfigError, ForbiddenError, UnsupportedError
from nexus_flight.server.query.principal import Principal
from nexus_flight.server.security.token_actions import OWN_TOKEN_ACTIONS, TOKEN_ACTIONS, TokenActions

#: A field's JSON type: ``str``, ``list`` (of strings), ``dict`` (an object), ``bool``, ``int``.
_Fields = Mapping[str, tuple[type, bool]]  # name -> (type, required)
_Run = Callable[[CatalogStore, dict[str, Any], str], Any]


@dataclass(frozen=True)
class AdminAction:
    """One administration action: what it does, the fields of its body, and the catalog call that does it."""

    description: str
    fields: _Fields
    run: _Run


def _name(required: bool = True) -> _Fields:
    return {"name": (str, required)}


def _removed(kind: str, remove: Callable[..., None]) -> _Run:
    def run(store: CatalogStore, body: dict[str, Any], actor: str) -> Any:
        remove(store, body["name"], actor=actor)
        return {"name": body["name"], "removed": True, "kind": kind}
    return run


def _passwd(store: CatalogStore, body: dict[str, Any], actor: str) -> Any:
    set_password(store, body["name"], body["password"], actor=actor)
    return {"name": body["name"], "password": "changed"}


def _limits(body: dict[str, Any]) -> dict[str, Any]:
    """A body's ``limits`` object, read and checked as the CLI's ``--limit NAME=VALUE`` are (AU-009)."""
    return parse_limits(body.get("limits", {}))


def _key(store: CatalogStore, body: dict[str, Any], actor: str) -> Any:
    expires = body.get("expires_at")
    try:
        expires_at = datetime.fromisoformat(expires) if expires else None
    except ValueError:
        raise ConfigError("field 'expires_at': an ISO 8601 time", field="expires_at") from None
    info, text = create_key(store, body["owner"], body["name"], roles=body.get("roles", ()), expires_at=expires_at,
                            limits=_limits(body), actor=actor)
    return {**info.shown(), "key": text}


def _grant(store: CatalogStore, body: dict[str, Any], actor: str) -> Any:
    catalog, schema, table = parse_target(body["target"])
    return add_grant(store, body["role"], catalog, schema, table, columns=body.get("columns"), actor=actor).shown()


ACTIONS: dict[str, AdminAction] = {
    "nexus.users.add": AdminAction(
        "Add a user: {name, password?, roles?, attributes?, limits?}",
        {"name": (str, True), "password": (str, False), "roles": (list, False), "attributes": (dict, False),
         "limits": (dict, False)},
        lambda store, b, actor: add_user(store, b["name"], b.get("password"), roles=b.get("roles", ()),
                                         attributes=b.get("attributes"), limits=_limits(b), actor=actor).shown()),
    "nexus.users.list": AdminAction("List users", {}, lambda store, b, actor: [u.shown() for u in list_users(store)]),
    "nexus.users.show": AdminAction("Show a user: {name}", _name(),
                                    lambda store, b, actor: get_user(store, b["name"]).shown()),
    "nexus.users.passwd": AdminAction("Set a user's password: {name, password}",
                                      {"name": (str, True), "password": (str, True)}, _passwd),
    "nexus.users.disable": AdminAction(
        "Disable a user: {name}", _name(),
        lambda store, b, actor: update_user(store, b["name"], disabled=True, actor=actor).shown()),
    "nexus.users.enable": AdminAction(
        "Enable a user: {name}", _name(),
        lambda store, b, actor: update_user(store, b["name"], disabled=False, actor=actor).shown()),
    "nexus.users.remove": AdminAction("Remove a user: {name}", _name(), _removed("user", remove_user)),
    "nexus.roles.add": AdminAction(
        "Add a role: {name, description?, limits?}",
        {"name": (str, True), "description": (str, False), "limits": (dict, False)},
        lambda store, b, actor: add_role(store, b["name"], description=b.get("description"), limits=_limits(b),
                                         actor=actor).shown()),
    "nexus.roles.list": AdminAction("List roles", {}, lambda store, b, actor: [r.shown() for r in list_roles(store)]),
    "nexus.roles.show": AdminAction("Show a role: {name}", _name(),
                                    lambda store, b, actor: get_role(store, b["name"]).shown()),
    "nexus.roles.remove": AdminAction("Remove a role: {name}", _name(), _removed("role", remove_role)),
    "nexus.roles.assign": AdminAction(
        "Give a user a role: {role, user}", {"role": (str, True), "user": (str, True)},
        lambda store, b, actor: update_user(store, b["user"], add_roles=[b["role"]], actor=actor).shown()),
    "nexus.roles.unassign": AdminAction(
        "Take a role from a user: {role, user}", {"role": (str, True), "user": (str, True)},
        lambda store, b, actor: update_user(store, b["user"], remove_roles=[b["role"]], actor=actor).shown()),
    "nexus.grants.add": AdminAction(
        "Grant a role SELECT on catalog[.schema[.table]]: {role, target, columns?}",
        {"role": (str, True), "target": (str, True), "columns": (list, False)}, _grant),
    "nexus.grants.list": AdminAction(
        "List grants: {role?}", {"role": (str, False)},
        lambda store, b, actor: [g.shown() for g in list_grants(store, b.get("role"))]),
    "nexus.grants.revoke": AdminAction("Revoke a grant: {id}", {"id": (str, True)},
                                       lambda store, b, actor: revoke_grant(store, b["id"], actor=actor).shown()),
    "nexus.keys.create": AdminAction(
        "Create an API key (its text is answered once): {owner, name, roles?, expires_at?, limits?}",
        {"owner": (str, True), "name": (str, True), "roles": (list, False), "expires_at": (str, False),
         "limits": (dict, False)}, _key),
    "nexus.keys.list": AdminAction("List API keys: {owner?}", {"owner": (str, False)},
                                   lambda store, b, actor: [k.shown() for k in list_keys(store, b.get("owner"))]),
    "nexus.keys.revoke": AdminAction("Revoke an API key: {id}", {"id": (str, True)},
                                     lambda store, b, actor: revoke_key(store, b["id"], actor=actor).shown()),
}


def parse_body(body: bytes, fields: _Fields) -> dict[str, Any]:
    """The JSON object of an action's body, checked against its fields (an empty body is ``{}``).

    Raises:
        ConfigError: INVALID_ARGUMENT naming the field (never a value).

    """
    try:
        data = json.loads(body.decode("utf-8")) if body.strip() else {}
    except (UnicodeDecodeError, ValueError):
        raise ConfigError("the action's body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ConfigError("the action's body must be a JSON object")
    for key in data:
        if key not in fields:
            raise ConfigError(f"unknown field {str(key)[:64]!r}: expected {', '.join(fields) or 'none'}", field=key)
    for key, (kind, required) in fields.items():
        if key not in data or data[key] is None:
            if required:
                raise ConfigError(f"missing field {key!r}", field=key)
            data.pop(key, None)
            continue
        value = data[key]
        if not isinstance(value, kind) or (kind is list and not all(isinstance(v, str) for v in value)) or (
                kind is int and isinstance(value, bool)):
            wanted = {str: "a string", list: "a list of strings", dict: "an object", bool: "true or false",
                      int: "an integer"}[kind]
            raise ConfigError(f"field {key!r} must be {wanted}", field=key)
    return data


def _json(value: Any) -> bytes:
    return json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v)).encode()


class CatalogAdministration:
    """The administration actions on a catalog, refreshing an identity snapshot after each change.

    Args:
        store: The catalog.
        refresh: Called after a change, so that the next call sees it (the identity snapshot's refresh).
        tokens: The token actions (None: not offered).

    """

    def __init__(self, store: CatalogStore, refresh: Callable[[], None] = lambda: None,
                 tokens: TokenActions | None = None) -> None:
        self.store = store
        self.refresh = refresh
        self.tokens = tokens

    def actions_for(self, principal: Principal) -> dict[str, str]:
        """Action type -> what it does and the fields of its body, for the actions ``principal`` may call.

        An admin may call them all; any other signed-in principal, the token actions on its own tokens.
        """
        if not principal.authenticated:
            return {}
        admin = principal.is_admin
        listed = {kind: action.description for kind, action in ACTIONS.items()} if admin else {}
        if self.tokens is not None:
            listed.update({kind: action.description for kind, action in TOKEN_ACTIONS.items()
                           if admin or kind in OWN_TOKEN_ACTIONS})
        return listed

    def run(self, kind: str, body: bytes, principal: Principal) -> bytes:
        """Run the administration action ``kind`` for ``principal``; return its JSON answer.

        Raises:
            ForbiddenError: the caller is no admin.
            UnsupportedError: no such action.
            ConfigError: the body does not fit (or the catalog's validation refused it).
            NotFoundError: the object it names does not exist.

        """
        if self.tokens is not None and kind in self.actions_for(principal) and kind in TOKEN_ACTIONS:
            answer = self.tokens.run(kind, parse_body(body, TOKEN_ACTIONS[kind].fields), principal)
            self.refresh()
            return _json(answer)
        if not principal.authenticated or not principal.is_admin:
            raise ForbiddenError(f"permission denied: {kind[:80]} needs the admin role")
        action = ACTIONS.get(kind)
        if action is None:
            raise UnsupportedError(f"unknown action {kind[:80]!r}")
        data = parse_body(body, action.fields)
        answer = action.run(self.store, data, f"flight:{principal.name}")
        self.refresh()
        return _json(answer)
