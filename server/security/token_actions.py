"""The gateway's tokens as ``DoAction`` actions: list live ones, revoke them, issue service tokens.

Unlike the other administration actions, a signed-in user may list and revoke their *own* tokens:

- ``nexus.tokens.list`` ``{user?}``: the live sign-ins (id, method, API key id, issued and expiry times, never a
  token) of the caller, or of ``user`` (another user's: admins only);
- ``nexus.tokens.revoke`` ``{}``: the sign-in the call's own token belongs to; ``{id}``: one sign-in (another
  user's: admins only, and to anyone else it reads like an id that does not exist); ``{user}`` or ``{all: true}``:
  every token of a user so far (another user's: admins only);
- ``nexus.tokens.issue`` ``{user, ttl_seconds, roles?}``: a service token, answered once (admins only).

A revocation is written to the catalog and applies on this gateway at once, and on every replica sharing a SQLite
catalog from its very next call (it moves the catalog's security generation, which each call checks); on a
PostgreSQL catalog once its notification reaches the replica (``catalog/security_generation.py``). Each is an
audit event by ``flight:<user>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nexus_flight.catalog.tokens import live_tokens, revoke_sign_in, sign_in_of
from nexus_flight.catalog.users import get_user, revoke_user_tokens
from nexus_flight.core.errors import ConfigError, ForbiddenError, NotFoundError
from nexus_flight.server.query.principal import Principal
from nexus_flight.server.security.authenticator import CatalogAuthenticator

_Fields = Mapping[str, tuple[type, bool]]


@dataclass(frozen=True)
class TokenAction:
    """One token action: what it does and the fields of its body."""

    description: str
    fields: _Fields


TOKEN_ACTIONS: dict[str, TokenAction] = {
    "nexus.tokens.list": TokenAction("List live tokens (never the token): {user?} (another user's: admins)",
                                     {"user": (str, False)}),
    "nexus.tokens.revoke": TokenAction(
        "Revoke the calling token's sign-in ({}), one sign-in {id}, or every token of a user {user} / {all: true}",
        {"id": (str, False), "user": (str, False), "all": (bool, False)}),
    "nexus.tokens.issue": TokenAction("Issue a service token, answered once (admins): {user, ttl_seconds, roles?}",
                                      {"user": (str, True), "ttl_seconds": (int, True), "roles": (list, False)}),
}

#: The token actions any signed-in principal may call on its own tokens (the others: admins only).
OWN_TOKEN_ACTIONS = frozenset({"nexus.tokens.list", "nexus.tokens.revoke"})


class TokenActions:
    """Runs the token actions on an authenticator's catalog, tokens and identity snapshot."""

    def __init__(self, authenticator: CatalogAuthenticator) -> None:
        self.authenticator = authenticator
        self.store = authenticator.store

    def run(self, kind: str, body: dict[str, Any], principal: Principal) -> Any:
        """Run a token action for a signed-in ``principal``; return its JSON-ready answer.

        Raises:
            ForbiddenError: another user's tokens, asked by someone who is no admin; an issue by a non-admin.
            ConfigError: the body does not fit.
            NotFoundError: no such user, or no live sign-in of that id the caller may see.

        """
        actor = f"flight:{principal.name}"
        if kind == "nexus.tokens.list":
            user = self._own_or_admin(kind, body.get("user"), principal)
            self.authenticator.identities.write_pending()  # this gateway's newest sign-ins are listed too
            return [token.shown() for token in live_tokens(self.store, user)]
        if kind == "nexus.tokens.revoke":
            return self._revoke(body, principal, actor)
        if not principal.is_admin:
            raise ForbiddenError(f"permission denied: {kind} needs the admin role")
        return self._issue(body, actor)

    def _own_or_admin(self, kind: str, user: str | None, principal: Principal) -> str:
        if user is not None and user != principal.name and not principal.is_admin:
            raise ForbiddenError(f"permission denied: {kind} of another user's tokens needs the admin role")
        return user or principal.name

    def _revoke(self, body: dict[str, Any], principal: Principal, actor: str) -> Any:
        chosen = [field for field in ("id", "user", "all") if field in body]
        if len(chosen) > 1:
            raise ConfigError(f"give one of 'id', 'user' or 'all', not {' and '.join(chosen)}", field=chosen[1])
        if "user" in body or body.get("all") is True:
            user = self._own_or_admin("nexus.tokens.revoke", body.get("user"), principal)
            cutoff = revoke_user_tokens(self.store, user, actor=actor)
            return {"user": user, "tokens_valid_after": cutoff}
        if "all" in body:
            raise ConfigError("field 'all' must be true (or leave it out)", field="all")
        session_id = body.get("id") or principal.sign_in_id
        if session_id is None:
            raise ConfigError("this call carries no gateway token to revoke: give 'id' or 'user'", field="id")
        self.authenticator.identities.write_pending()  # a sign-in made here moments ago is revocable too
        found = sign_in_of(self.store, session_id)
        if found is None or (found.user != principal.name and not principal.is_admin):
            raise NotFoundError(f"no sign-in with id {session_id[:64]!r}")
        revoke_sign_in(self.store, found.id, self.authenticator.settings.session_max_seconds, actor=actor)
        self.authenticator.identities.revoked_here(found.id)
        return {"id": found.id, "user": found.user, "revoked": True}

    def _issue(self, body: dict[str, Any], actor: str) -> Any:
        settings = self.authenticator.settings
        ttl = body["ttl_seconds"]
        if not 60 <= ttl <= settings.service_token_max_ttl_seconds:
            raise ConfigError(f"field 'ttl_seconds': 60 to {settings.service_token_max_ttl_seconds} "
                              "(server.auth.service_token_max_ttl_seconds)", field="ttl_seconds")
        user = get_user(self.store, body["user"])
        roles = body.get("roles")
        if roles is not None and not set(roles) <= set(user.roles):
            raise ConfigError(f"field 'roles': {user.name!r} does not hold {sorted(set(roles) - set(user.roles))}",
                              field="roles")
        token, claims = self.authenticator.issue_service_token(user.name, ttl, tuple(roles) if roles else None)
        return {"id": claims.session_id, "user": user.name, "roles": list(claims.roles),
                "expires_at": datetime.fromtimestamp(claims.expires_at, UTC), "token": token}
