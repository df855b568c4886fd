"""The ``users``, ``roles``, ``grants``, ``keys``, ``tokens`` and ``audit`` commands: who may do what, and who did.

Secrets never appear on the command line: a password is ``-`` (prompted, or one line of stdin) or
``${env:NAME}``; a key's or token's text is printed once, when it is made, and the catalog keeps only its hash
(keys) or nothing at all (tokens, which are signed). Every change is an audit event naming the operating-system
user who made it (``cli:<login>``).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime, timedelta

from nexus_flight.catalog.api_keys import create_key, list_keys, revoke_key
from nexus_flight.catalog.audit import KINDS, search_audit
from nexus_flight.catalog.cli import (
    common_options,
    iso_time,
    key_value_pairs,
    parse_since,
    run_action,
    secret_value,
)
from nexus_flight.catalog.grants import add_grant, list_grants, parse_target, revoke_grant
from nexus_flight.catalog.limits import parse_limits
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.tokens import live_tokens, record_sign_in, revoke_sign_in, revoke_token, signing_keys
from nexus_flight.catalog.users import (
    add_role,
    add_user,
    get_role,
    get_user,
    list_roles,
    list_users,
    remove_role,
    remove_user,
    revoke_user_tokens,
    set_password,
    update_role,
    update_user,
)
from nexus_flight.core.errors import ConfigError, NotFoundError
from nexus_flight.core.settings import load_settings
from nexus_flight.server.security.gateway_tokens import GatewayTokens

_USER_COLUMNS = ("name", "roles", "disabled", "has_password", "origin", "last_login_at")
_KEY_COLUMNS = ("id", "name", "owner", "roles", "expires_at", "last_used_at", "revoked_at")
_AUDIT_COLUMNS = ("created_at", "kind", "actor", "subject", "auth_method", "client_address", "detail")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _until(text: str) -> datetime:
    """``30d``, ``12h``, ``90m`` from now, or an ISO time."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[:-1].isdigit() and text[-1:] in units:
        return datetime.now(UTC) + timedelta(**{units[text[-1]]: int(text[:-1])})
    return iso_time(text)


_LIMIT_HELP = "NAME=VALUE: a limit (queries_per_minute, max_concurrent_queries, max_rows …; repeatable)"


def _limit_values(items: list[str]) -> dict[str, float | int]:
    """``--limit NAME=VALUE`` arguments, read and checked as the administration actions read theirs."""
    return parse_limits(key_value_pairs(items, "limit"))


def _limits_command(group: argparse._SubParsersAction, func, whose: str) -> None:
    parser = group.add_parser("limits", parents=[common_options()],
                              help=f"set or unset limits of {whose} (running gateways apply them within seconds)")
    parser.set_defaults(func=func)
    parser.add_argument("name")
    parser.add_argument("--limit", action="append", default=[], help=_LIMIT_HELP)
    parser.add_argument("--unset", action="append", default=[], help="a limit to remove (repeatable)")


def _changed_limits(current: dict, args: argparse.Namespace) -> dict:
    limits = {**current, **_limit_values(args.limit)}
    for name in args.unset:
        limits.pop(name, None)
    return limits


def add_security_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``users``, ``roles``, ``grants``, ``keys``, ``tokens`` and ``audit`` to a parser's subcommands."""
    common = common_options()

    def command(group: argparse._SubParsersAction, name: str, func, text: str) -> argparse.ArgumentParser:
        parser = group.add_parser(name, parents=[common], help=text)
        parser.set_defaults(func=func)
        return parser

    users = subparsers.add_parser("users", help="manage the users who may sign in").add_subparsers(
        dest="users_command", required=True)
    add = command(users, "add", _users_add, "add a user (no roles: it may see nothing)")
    add.add_argument("name")
    add.add_argument("--password", help="- (prompt or stdin) or ${env:NAME}; none for certificate/SSO users")
    add.add_argument("--role", action="append", default=[], help="a role to hold (repeatable)")
    add.add_argument("--attribute", action="append", default=[], help="KEY=VALUE for row filters (repeatable)")
    add.add_argument("--limit", action="append", default=[], help=_LIMIT_HELP)
    update = command(users, "update", _users_update, "set or remove a user's attributes (what row filters read)")
    update.add_argument("name")
    update.add_argument("--attribute", action="append", default=[], help="KEY=VALUE to set (repeatable)")
    update.add_argument("--remove-attribute", action="append", default=[], help="KEY to remove (repeatable)")
    command(users, "list", _users_list, "list users")
    command(users, "show", _users_show, "show one user").add_argument("name")
    passwd = command(users, "passwd", _users_passwd, "set a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--password", default="-", help="- (prompt or stdin, the default) or ${env:NAME}")
    for name, func, text in (("disable", _users_disable, "refuse a user's sign-ins and tokens"),
                             ("enable", _users_enable, "allow a disabled user again"),
                             ("remove", _users_remove, "delete a user and its API keys (history stays)")):
        command(users, name, func, text).add_argument("name")
    _limits_command(users, _users_limits, "a user")

    roles = subparsers.add_parser("roles", help="manage roles and who holds them").add_subparsers(
        dest="roles_command", required=True)
    role_add = command(roles, "add", _roles_add, "add a role")
    role_add.add_argument("name")
    role_add.add_argument("--description")
    role_add.add_argument("--limit", action="append", default=[], help=_LIMIT_HELP)
    command(roles, "list", _roles_list, "list roles")
    command(roles, "show", _roles_show, "show one role").add_argument("name")
    command(roles, "remove", _roles_remove, "delete a role (and who holds it)").add_argument("name")
    for name, func, text in (("assign", _roles_assign, "give a user a role"),
                             ("unassign", _roles_unassign, "take a role from a user")):
        parser = command(roles, name, func, text)
        parser.add_argument("role")
        parser.add_argument("user")
    _limits_command(roles, _roles_limits, "a role")

    grants = subparsers.add_parser("grants", help="what each role may read").add_subparsers(
        dest="grants_command", required=True)
    grant = command(grants, "add", _grants_add, "let a role read a source, schema, table or columns")
    grant.add_argument("role")
    grant.add_argument("target", help="catalog, catalog.schema, catalog.schema.table or catalog..table")
    grant.add_argument("--column", action="append", default=None, help="only this column (repeatable)")
    command(grants, "list", _grants_list, "list grants").add_argument("--role")
    command(grants, "revoke", _grants_revoke, "delete a grant").add_argument("id")

    keys = subparsers.add_parser("keys", help="manage API keys of services").add_subparsers(
        dest="keys_command", required=True)
    create = command(keys, "create", _keys_create, "make an API key; its text is shown once")
    create.add_argument("owner", help="the user the key acts for")
    create.add_argument("name", help="what the key is for")
    create.add_argument("--role", action="append", default=[], help="act with only these of the owner's roles")
    create.add_argument("--expires", type=_until, help="90d, 12h or an ISO time (default: never)")
    create.add_argument("--limit", action="append", default=[], help=_LIMIT_HELP)
    command(keys, "list", _keys_list, "list API keys (never their secrets)").add_argument("--owner")
    command(keys, "revoke", _keys_revoke, "refuse a key from now on").add_argument("id")

    tokens = subparsers.add_parser("tokens", help="list, issue and revoke bearer tokens").add_subparsers(
        dest="tokens_command", required=True)
    command(tokens, "list", _tokens_list, "live sign-ins: id, user, method, times (never a token)").add_argument(
        "--user", help="only this user's")
    issue = command(tokens, "issue", _tokens_issue, "a bearer token for a service; shown once")
    issue.add_argument("user")
    issue.add_argument("--ttl", type=int, default=86_400, help="lifetime in seconds (default one day)")
    issue.add_argument("--role", action="append", default=None, help="act with only these of the user's roles")
    revoke = command(tokens, "revoke", _tokens_revoke, "refuse a token's sign-in, or every token of a user")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--token", help="- (stdin) or ${env:NAME}: the token to revoke, with its refreshes")
    which.add_argument("--user", help="revoke every token issued to this user so far")
    which.add_argument("--id", help="revoke one sign-in by the id `tokens list` shows, with its refreshes")

    audit = command(subparsers, "audit", _audit, "search the audit trail (sign-in failures, lockouts, changes)")
    audit.add_argument("--kind", choices=KINDS)
    audit.add_argument("--actor")
    audit.add_argument("--since", type=parse_since, help="ISO time or a duration like 30m, 12h, 7d")
    audit.add_argument("--limit", type=int, default=50)


def _password(value: str | None) -> str | None:
    return None if value is None else secret_value("password", value, "--password")


def _user_row(info) -> dict:
    return {c: info.shown()[c] for c in _USER_COLUMNS}


# -- users


def _users_add(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        return add_user(store, args.name, _password(args.password), roles=args.role,
                        attributes=key_value_pairs(args.attribute, "attribute"), limits=_limit_values(args.limit),
                        actor=_actor()).shown()

    return run_action(args, action)


def _users_update(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        attributes = dict(get_user(store, args.name).attributes)
        attributes.update(key_value_pairs(args.attribute, "attribute"))
        for key in args.remove_attribute:
            attributes.pop(key, None)
        return update_user(store, args.name, attributes=attributes, actor=_actor()).shown()

    return run_action(args, action)


def _users_list(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        users = list_users(store)
        return [u.shown() for u in users] if args.json else [_user_row(u) for u in users]

    return run_action(args, action)


def _users_limits(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        limits = _changed_limits(get_user(store, args.name).limits, args)
        return update_user(store, args.name, limits=limits, actor=_actor()).shown()

    return run_action(args, action)


def _roles_limits(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        limits = _changed_limits(get_role(store, args.name).limits, args)
        return update_role(store, args.name, limits=limits, actor=_actor()).shown()

    return run_action(args, action)


def _users_show(args: argparse.Namespace) -> int:
    return run_action(args, lambda store: get_user(store, args.name).shown())


def _users_passwd(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        set_password(store, args.name, _password(args.password), actor=_actor())
        return {"name": args.name, "password": "changed"}

    return run_action(args, action)


def _users_disable(args: argparse.Namespace) -> int:
    return run_action(args, lambda store: update_user(store, args.name, disabled=True, actor=_actor()).shown())


def _users_enable(args: argparse.Namespace) -> int:
    return run_action(args, lambda store: update_user(store, args.name, disabled=False, actor=_actor()).shown())


def _users_remove(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        remove_user(store, args.name, actor=_actor())
        return {"name": args.name, "removed": True}

    return run_action(args, action)


# -- roles


def _roles_add(args: argparse.Namespace) -> int:
    return run_action(args, lambda store: add_role(store, args.name, description=args.description,
                                                   limits=_limit_values(args.limit), actor=_actor()).shown())


def _roles_list(args: argparse.Namespace) -> int:
    return run_action(args, lambda store: [r.shown() for r in list_roles(store)])


def _roles_show(args: argparse.Namespace) -> int:
    return run_action(args, lambda store: get_role(store, args.name).shown())


def _roles_remove(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        remove_role(store, args.name, actor=_actor())
        return {"name": args.name, "removed": True}

    return run_action(args, action)


def _roles_assign(args: argparse.Namespace) -> int:
    return run_action(args, lambda store: update_user(store, args.user, add_roles=[args.role],
                                                      actor=_actor()).shown())


def _roles_unassign(args: argparse.Namespace) -> int:
    return run_action(args, lambda store: update_user(store, args.user, remove_roles=[args.role],
                                                      actor=_actor()).shown())


# -- grants


def _grants_add(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        catalog, schema, table = parse_target(args.target)
        return add_grant(store, args.role, catalog, schema, table, columns=args.column, actor=_actor()).shown()

    return run_action(args, action)


def _grants_list(args: argparse.Namespace) -> int:
    return run_action(args, lambda store: [g.shown() for g in list_grants(store, args.role)])


def _grants_revoke(args: argparse.Namespace) -> int:
    return run_action(args, lambda store: revoke_grant(store, args.id, actor=_actor()).shown())


# -- keys


def _keys_create(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        info, text = create_key(store, args.owner, args.name, roles=args.role, expires_at=args.expires,
                                limits=_limit_values(args.limit), actor=_actor())
        print("Store this key now: it is shown only once.", file=sys.stderr)
        return {**info.shown(), "key": text}

    return run_action(args, action)


def _keys_list(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        keys = [k.shown() for k in list_keys(store, args.owner)]
        return keys if args.json else [{c: k.get(c) for c in _KEY_COLUMNS} for k in keys]

    return run_action(args, action)


def _keys_revoke(args: argparse.Namespace) -> int:
    return run_action(args, lambda store: revoke_key(store, args.id, actor=_actor()).shown())


# -- tokens


def _gateway_tokens(args: argparse.Namespace, store: CatalogStore):
    auth = load_settings(getattr(args, "config", None)).auth
    return auth, GatewayTokens(lambda: signing_keys(store), auth.issuer, auth.audience)


def _tokens_issue(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        auth, tokens = _gateway_tokens(args, store)
        if not 60 <= args.ttl <= auth.service_token_max_ttl_seconds:
            raise ConfigError(f"--ttl: 60 to {auth.service_token_max_ttl_seconds} seconds "
                              "(server.auth.service_token_max_ttl_seconds)")
        user = get_user(store, args.user)
        if args.role and not set(args.role) <= set(user.roles):
            raise ConfigError(f"--role: {args.user!r} does not hold {sorted(set(args.role) - set(user.roles))}")
        token, claims = tokens.issue(user.name, args.role or (), "token", args.ttl, scoped=args.role is not None)
        record_sign_in(store, claims.session_id, user.name, "token", datetime.fromtimestamp(claims.issued_at, UTC),
                       datetime.fromtimestamp(claims.expires_at, UTC))
        print("Store this token now: it is shown only once.", file=sys.stderr)
        return {"user": user.name, "id": claims.session_id, "roles": list(claims.roles),
                "expires_at": datetime.fromtimestamp(claims.expires_at, UTC), "token": token}

    return run_action(args, action)


def _tokens_list(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        user = get_user(store, args.user).name if args.user else None  # an unknown user is an error, not "none"
        return [token.shown() for token in live_tokens(store, user)]

    return run_action(args, action)


def _tokens_revoke(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        if args.user:
            return {"user": args.user, "tokens_valid_after": revoke_user_tokens(store, args.user, actor=_actor())}
        auth, tokens = _gateway_tokens(args, store)
        if args.id:
            found = revoke_sign_in(store, args.id, auth.session_max_seconds, actor=_actor())
            if found is None:
                raise NotFoundError(f"no sign-in with id {args.id[:64]!r} (`nexus-flight tokens list` shows them)")
            return {"user": found.user, "id": found.id, "revoked": True}
        claims = tokens.verify(secret_value("token", args.token, "--token"), check_expiry=False)
        # Until no token of the sign-in can be accepted: its own expiry, or the longest a sign-in continues.
        expires = datetime.fromtimestamp(max(claims.expires_at, claims.issued_at + auth.session_max_seconds), UTC)
        revoke_token(store, claims.session_id, claims.user, expires, actor=_actor())
        return {"user": claims.user, "id": claims.session_id, "revoked": True}

    return run_action(args, action)


# -- audit


def _audit(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        rows = search_audit(store, kind=args.kind, actor=args.actor, since=args.since, limit=args.limit)
        return rows if args.json else [{c: r.get(c) for c in _AUDIT_COLUMNS} for r in rows]

    return run_action(args, action)
