"""The bearer tokens the gateway issues: JWTs (PyJWT, HS256) signed with a key sealed in the catalog's vault.

Claims: ``iss``/``aud`` (the gateway's), ``sub`` (the user), ``iat``/``nbf``/``exp``, ``jti`` (this token),
``sid`` (the sign-in: every token that refreshes another keeps it, so revoking it ends the whole sign-in),
``roles``, ``amr`` (how the user signed in), ``scp`` (true when ``roles`` restricts the user's roles: service
tokens), ``key`` (the API key a token was issued for) and ``ttl`` (the lifetime refreshed tokens get again). The
header's ``kid`` names the signing key, so a rotated key keeps verifying the tokens it signed and every replica
sharing the catalog verifies every token.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from nexus_flight.core.errors import UnauthenticatedError

ALGORITHM = "HS256"
#: Clock skew tolerated between replicas.
LEEWAY_SECONDS = 5
#: An unknown ``kid`` reloads the keys (another replica rotated), at most this often (made-up kids cost little).
_RELOAD_SECONDS = 0.25


@dataclass(frozen=True)
class TokenClaims:
    """What a verified gateway token says."""

    user: str
    roles: tuple[str, ...]
    method: str
    token_id: str
    session_id: str
    issued_at: float
    expires_at: float
    ttl: int
    scoped: bool
    key_id: str | None

    def due_for_refresh(self, now: float) -> bool:
        """Past half of its lifetime: the next answer carries a fresh token."""
        return now >= self.expires_at - self.ttl / 2


class GatewayTokens:
    """Issues and verifies the gateway's tokens.

    Args:
        keys: Returns the signing keys (``kid``, secret), the current one first; called again on an unknown kid.
        issuer: The ``iss`` claim.
        audience: The ``aud`` claim.

    """

    def __init__(self, keys: Callable[[], Sequence[Any]], issuer: str, audience: str) -> None:
        self._load = keys
        self._issuer = issuer
        self._audience = audience
        self._keys: dict[str, bytes] = {}
        self._current: str | None = None
        self._loaded_at = float("-inf")
        #: Clock skew tolerated on ``exp``/``nbf``/``iat`` (tests set 0).
        self.leeway_seconds: float = LEEWAY_SECONDS
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self.reload()

    def reload(self) -> None:
        """Read the signing keys again (after a rotation)."""
        keys = list(self._load())
        with self._lock:
            self._keys = {k.kid: k.secret for k in keys}
            self._current = keys[0].kid if keys and keys[0].retired_at is None else None
            self._loaded_at = time.monotonic()

    def issue(
        self,
        user: str,
        roles: Iterable[str],
        method: str,
        ttl_seconds: int,
        *,
        session_id: str | None = None,
        scoped: bool = False,
        key_id: str | None = None,
    ) -> tuple[str, TokenClaims]:
        """A new signed token and its claims."""
        with self._lock:
            kid = self._current
            secret = self._keys.get(kid) if kid else None
        if secret is None:
            raise UnauthenticatedError("the gateway has no signing key: sign-in is unavailable")
        # iat keeps sub-second precision: a token issued just after "revoke all of a user's tokens" is valid.
        now = time.time()
        claims = TokenClaims(user, tuple(sorted(roles)), method, secrets.token_urlsafe(12),
                             session_id or secrets.token_urlsafe(12), now, int(now) + ttl_seconds, ttl_seconds,
                             scoped, key_id)
        payload = {
            "iss": self._issuer, "aud": self._audience, "sub": user, "iat": now, "nbf": int(now),
            "exp": claims.expires_at, "jti": claims.token_id, "sid": claims.session_id, "roles": list(claims.roles),
            "amr": method, "scp": scoped, "ttl": ttl_seconds,
        }
        if key_id:
            payload["key"] = key_id
        return jwt.encode(payload, secret, algorithm=ALGORITHM, headers={"kid": kid}), claims

    def refreshed(self, claims: TokenClaims) -> tuple[str, TokenClaims]:
        """A token continuing the same sign-in (same ``sid``, scope and lifetime) with a new expiry."""
        return self.issue(claims.user, claims.roles, claims.method, claims.ttl, session_id=claims.session_id,
                          scoped=claims.scoped, key_id=claims.key_id)

    def is_ours(self, header: dict[str, Any], unverified: dict[str, Any]) -> bool:
        """Whether a token claims to be the gateway's (its issuer)."""
        return unverified.get("iss") == self._issuer

    def verify(self, token: str, *, check_expiry: bool = True) -> TokenClaims:
        """Check signature, issuer, audience and times (``exp`` unless told not to); return the claims.

        Raises:
            UnauthenticatedError: anything wrong (the reason is for the log; the client sees one text).

        """
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise UnauthenticatedError("malformed token") from None
        secret = self._key(kid)
        if secret is None:
            raise UnauthenticatedError("token signed with an unknown key")
        try:
            payload = jwt.decode(
                token, secret, algorithms=[ALGORITHM], audience=self._audience, issuer=self._issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp", "iat", "nbf", "sub", "jti", "sid", "iss", "aud"],
                         "verify_exp": check_expiry},
            )
        except jwt.ExpiredSignatureError:
            raise UnauthenticatedError("token expired") from None
        except jwt.PyJWTError as exc:
            raise UnauthenticatedError(f"invalid token ({type(exc).__name__})") from None
        roles = payload.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise UnauthenticatedError("invalid token (roles)")
        return TokenClaims(
            user=str(payload["sub"]), roles=tuple(roles), method=str(payload.get("amr", "password")),
            token_id=str(payload["jti"]), session_id=str(payload["sid"]), issued_at=float(payload["iat"]),
            expires_at=float(payload["exp"]), ttl=int(payload.get("ttl") or payload["exp"] - payload["iat"]),
            scoped=bool(payload.get("scp")), key_id=payload.get("key"),
        )

    def _key(self, kid: object) -> bytes | None:
        if not isinstance(kid, str):
            return None
        with self._lock:
            secret, age = self._keys.get(kid), time.monotonic() - self._loaded_at
        if secret is None:
            # A key made by another replica moments ago is found by waiting out the reload interval: a flood of
            # made-up kids then costs at most one catalog read per interval.
            time.sleep(max(0.0, _RELOAD_SECONDS - age))
            with self._reload_lock:
                if time.monotonic() - self._loaded_at >= _RELOAD_SECONDS:
                    self.reload()
            with self._lock:
                secret = self._keys.get(kid)
        return secret
