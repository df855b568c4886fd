"""Signing callers in: passwords, gateway tokens, API keys, OIDC tokens and client certificates, on the catalog.

Every failure, whatever its cause, reaches the client as UNAUTHENTICATED with one text per credential kind (an
unknown user and a wrong password read alike and cost the same argon2 check); the cause goes to the audit trail
and the log, never a credential. Successful sign-ins produce a :class:`Principal` with the caller's current roles
(a gateway token's roles restrict them only for scoped service tokens), attributes and limits.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from nexus_flight.catalog.api_keys import split_key
from nexus_flight.catalog.audit import AuditLog, AuditRecord
from nexus_flight.catalog.limits import effective_limits
from nexus_flight.catalog.passwords import hash_password, needs_rehash, verify_password
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.tokens import signing_keys
from nexus_flight.catalog.users import SignInRecord, set_password_hash
from nexus_flight.core.errors import UnauthenticatedError
from nexus_flight.server.query.principal import Principal, SignIn
from nexus_flight.server.security.expiring import ExpiringMap
from nexus_flight.server.security.failure_audit import FailureAuditBudget
from nexus_flight.server.security.gateway_tokens import GatewayTokens, TokenClaims
from nexus_flight.server.security.identities import IdentityCache
from nexus_flight.server.security.oidc import OidcIssuer
from nexus_flight.server.security.sign_in_guard import FailureDelay, PasswordCheckGate, SignInGuard, Thresholds

log = logging.getLogger("nexus_flight.auth")

WRONG_PASSWORD = "invalid user name or password"
BAD_TOKEN = "invalid or revoked credentials: sign in again"
EXPIRED_TOKEN = "the token has expired: sign in again"
#: Sign-ins remembered as continuing before the ended ones are forgotten.
_MAX_CONTINUED = 10_000
#: Verified tokens remembered at most (a dict lookup instead of a signature check on each call).
_MAX_VERIFIED = 50_000
NO_CREDENTIALS = "authentication required: sign in with a user name and password, a bearer token or an API key"


@dataclass(frozen=True)
class _Verified:
    """A token whose signature was checked, and the sign-in its calls get while ``version`` stands, until ``holds``.

    ``version`` is ``_decision_version`` when the sign-in was decided (None: not decided yet); ``holds`` is when the
    token is due a fresh one or it or its key expires (epoch seconds).
    """

    claims: TokenClaims
    sign_in: SignIn | None = None
    version: tuple[int, int] | None = None
    holds: float = 0.0


class _Refused(Exception):
    """A sign-in refused for ``reason`` (audited and logged); the client is told ``message``."""

    def __init__(self, reason: str, message: str = BAD_TOKEN) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message


class CatalogAuthenticator:
    """Authenticates calls against the catalog's users, keys and signing keys and the configured OIDC issuers.

    Args:
        store: The catalog.
        settings: ``[server.auth]`` (``AuthSettings``).
        default_limits: ``[server.limits]``: limits for everyone who has none of their own.
        audit: Where failures and lockouts are recorded.

    """

    def __init__(self, store: CatalogStore, settings, *, default_limits: Mapping[str, Any] | None = None,
                 audit: AuditLog | None = None) -> None:
        self.settings = settings
        self.required: bool = settings.enabled
        self.methods = frozenset(settings.methods)
        self.certificate_identities = self.required and "mtls" in self.methods
        self.store = store
        self.identities = IdentityCache(store, settings.refresh_seconds)
        self.tokens = GatewayTokens(lambda: signing_keys(store), settings.issuer, settings.audience)
        self.issuers = {i.issuer: OidcIssuer(i) for i in settings.oidc} if "oidc" in self.methods else {}
        lockout = settings.lockout
        self.guard = SignInGuard(
            Thresholds(lockout.user_throttle_after, lockout.user_lockout_after),
            Thresholds(lockout.address_throttle_after, lockout.address_lockout_after),
            window_seconds=lockout.window_seconds, max_delay_seconds=lockout.max_delay_seconds,
            lockout_seconds=lockout.lockout_seconds,
        )
        self.gate = PasswordCheckGate(settings.password_checks_at_once, settings.password_checks_waiting)
        self.failure_delay = FailureDelay(settings.failure_delay_seconds, settings.failure_delays_at_once)
        self._default_limits = dict(default_limits or {})
        self._limits_epoch = 0
        self.audit = FailureAuditBudget(audit, settings.audit_failures_per_minute) if audit is not None else None
        self.ttl = settings.token_ttl_seconds
        #: token -> its verified claims, until it expires (then swept out, not kept until the cap)
        self._verified: ExpiringMap[str, _Verified] = ExpiringMap(lambda known: known.claims.expires_at,
                                                                  _MAX_VERIFIED)
        #: sign-in id -> until when it continues (the expiry of the last token refreshing it)
        self._continued: dict[str, float] = {}
        self._continued_lock = threading.Lock()

    @property
    def default_limits(self) -> dict[str, Any]:
        """``[server.limits]``: every principal without limits of its own gets these."""
        return self._default_limits

    @default_limits.setter
    def default_limits(self, limits: Mapping[str, Any]) -> None:
        # A reload (SIGHUP): principals decided with the old defaults are decided again.
        self._default_limits = dict(limits)
        self._limits_epoch += 1

    def start(self) -> CatalogAuthenticator:
        """Keep the identity snapshot fresh in the background."""
        self.identities.start()
        return self

    def close(self) -> None:
        """Stop the background refresh and the password-check threads; audit the last minute's failures."""
        self.identities.stop()
        self.gate.close()
        if self.audit is not None:
            self.audit.close()

    # -- the Flight layer's entry points ---------------------------------------------------------------------

    def password(self, user: str, password: str, address: str | None) -> SignIn:
        """Basic credentials (a password, or an API key given as the password): a principal and a new token."""
        self.identities.current()
        if "api_key" in self.methods and (key := split_key(password)) is not None:
            principal = self._api_key(key[0], key[1], address)
            token, claims = self.tokens.issue(principal.name, principal.roles, "api_key", self.ttl,
                                              key_id=principal.credential_id)
            self.identities.note_sign_in(claims)
            return SignIn(principal, f"sid:{claims.session_id}", token)
        with self._guarded(user, address, "password"):
            try:
                if "password" not in self.methods:
                    raise _Refused("password sign-in is disabled", WRONG_PASSWORD)
                record = self.identities.users.get(user)
                matches = self.gate.check(lambda: verify_password(record.password_hash if record else None,
                                                                  password))
                if record is None:
                    raise _Refused("unknown user", WRONG_PASSWORD)
                if not matches:
                    raise _Refused("wrong password", WRONG_PASSWORD)
                if record.disabled:
                    raise _Refused("user disabled", WRONG_PASSWORD)
            except _Refused as refused:
                raise self._failed(user, "password", address, refused) from None
            self.guard.succeeded(user)
        if record.password_hash and needs_rehash(record.password_hash):
            set_password_hash(self.store, user, hash_password(password))
        self.identities.note_login(user)
        principal = self._principal(record, "password", record.roles)
        token, claims = self.tokens.issue(user, principal.roles, "password", self.ttl)
        self.identities.note_sign_in(claims)
        return SignIn(principal, f"sid:{claims.session_id}", token)

    def bearer(self, token: str, address: str | None, handshake: bool = False) -> SignIn:
        """A bearer token: the gateway's own, an API key or a configured issuer's JWT.

        On Handshake the same token is sent back (JDBC's token mode expects it); otherwise a gateway token past
        half of its lifetime is answered with a fresh one continuing the same sign-in.
        """
        self.identities.current()
        if (key := split_key(token)) is not None and "api_key" in self.methods:
            principal = self._api_key(key[0], key[1], address)
            return SignIn(principal, f"key:{key[0]}@", token if handshake else None)
        known = self._verified.get(token)
        if known is not None:
            if (known.sign_in is not None and not handshake and known.version == self._decision_version()
                    and time.time() < known.holds):
                return known.sign_in
            return self._gateway_token(token, address, handshake, known.claims)
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise self._failed(None, "token", address, _Refused("not a JWT or API key")) from None
        issuer = unverified.get("iss")
        if self.tokens.is_ours(header, unverified):
            return self._gateway_token(token, address, handshake)
        if isinstance(issuer, str) and issuer in self.issuers:
            return self._oidc(self.issuers[issuer], token, header, address, handshake)
        raise self._failed(str(unverified.get("sub"))[:255], "token", address,
                           _Refused(f"issuer {str(issuer)[:200]!r} is not trusted"))

    def certificate(self, name: str, address: str | None) -> SignIn:
        """A verified client certificate naming a user (its first SAN, else its CN)."""
        self.identities.current()
        record = self.identities.users.get(name)
        try:
            if "mtls" not in self.methods:
                raise _Refused("certificate sign-in is disabled")
            if record is None:
                raise _Refused("no user has the certificate's name")
            if record.disabled:
                raise _Refused("user disabled")
        except _Refused as refused:
            raise self._failed(name, "mtls", address, refused) from None
        return SignIn(self._principal(record, "mtls", record.roles), "")

    def missing(self, address: str | None) -> UnauthenticatedError:
        """The error for a call without credentials (audited like any failure)."""
        return self._failed(None, "none", address, _Refused("no credentials", NO_CREDENTIALS))

    def issue_service_token(self, user: str, ttl_seconds: int, roles: tuple[str, ...] | None = None) -> tuple[str,
                                                                                                            TokenClaims]:
        """A token for a service (``tokens issue``); with ``roles``, it acts with those of the user's roles only."""
        token, claims = self.tokens.issue(user, roles or (), "token", ttl_seconds, scoped=roles is not None)
        self.identities.note_sign_in(claims)
        return token, claims

    # -- each kind of credential ------------------------------------------------------------------------------

    def _gateway_token(self, token: str, address: str | None, handshake: bool,
                       verified: TokenClaims | None = None) -> SignIn:
        version = self._decision_version()  # before anything is read: a reload meanwhile outdates this decision
        try:
            claims = verified or self._remember(token, self.tokens.verify(token))
        except UnauthenticatedError as exc:
            expired = "expired" in exc.message
            claims = self._continued_sign_in(token) if expired else None
            if claims is None:
                raise self._failed(None, "token", address,
                                   _Refused(exc.message, EXPIRED_TOKEN if expired else BAD_TOKEN)) from None
        try:
            record = self.identities.users.get(claims.user)
            if record is None or record.disabled:
                raise _Refused("user removed or disabled")
            if self.identities.is_revoked(claims.session_id):
                raise _Refused("token revoked")
            cutoff = record.tokens_valid_after
            if cutoff is not None and claims.issued_at < cutoff.timestamp():
                raise _Refused("all of the user's tokens were revoked")
            roles = record.roles & set(claims.roles) if claims.scoped else record.roles
            key_limits = None
            if claims.key_id is not None:
                row = self._usable_key(claims.key_id, record.name)
                roles, key_limits = self._key_roles(row, record), row.limits
        except _Refused as refused:
            raise self._failed(claims.user, "token", address, refused) from None
        method = "api_key" if claims.key_id else ("token" if claims.method == "token" else claims.method)
        principal = self._principal(record, method, roles, key_limits=key_limits,
                                    credential_id=claims.key_id or claims.session_id, sign_in_id=claims.session_id)
        fresh = None
        now = time.time()
        with self._continued_lock:
            until = max(claims.expires_at, self._continued.get(claims.session_id, 0.0))
        if not handshake and now >= until - claims.ttl / 2:
            fresh, fresh_claims = self.tokens.refreshed(claims)
            self._continue(claims.session_id, fresh_claims.expires_at, now)
            self.identities.note_refresh(claims.session_id, fresh_claims.expires_at)
        sign_in = SignIn(principal, f"sid:{claims.session_id}", token if handshake else fresh)
        if not handshake and fresh is None and now < claims.expires_at:
            # The token's next calls decide the same until the snapshot or the default limits change, it is due a
            # fresh token, or it (or its key) expires: they are answered from here.
            holds = min(claims.expires_at, until - claims.ttl / 2, self._key_expiry(claims.key_id))
            self._verified.put(token, _Verified(claims, sign_in, version, holds))
        return sign_in

    def _decision_version(self) -> tuple[int, int]:
        """What a decision about a caller rests on: the identity snapshot and the server's default limits."""
        return self.identities.version, self._limits_epoch

    def _key_expiry(self, key_id: str | None) -> float:
        row = self.identities.keys.get(key_id) if key_id is not None else None
        return row.expires_at.timestamp() if row is not None and row.expires_at is not None else float("inf")

    def _remember(self, token: str, claims: TokenClaims) -> TokenClaims:
        """Keep a verified token's claims until it expires: the signature is checked once, not on every call.

        Whether its user, sign-in or key still stands is decided against the identity snapshot, again whenever the
        snapshot changed (``_Verified``).
        """
        self._verified.put(token, _Verified(claims))
        return claims

    def _continued_sign_in(self, token: str) -> TokenClaims | None:
        """An expired token of a sign-in this gateway refreshed since, and not older than the session limit.

        The JDBC driver keeps sending the token it got in the Handshake and ignores fresh ones: its sign-in lives
        on while it keeps calling (each refresh extends it), and ends when it goes idle for a token lifetime.
        """
        try:
            claims = self.tokens.verify(token, check_expiry=False)
        except UnauthenticatedError:
            return None
        now = time.time()
        with self._continued_lock:
            until = self._continued.get(claims.session_id, 0.0)
        if until > now and now - claims.issued_at < self.settings.session_max_seconds:
            return claims
        return None

    def _continue(self, session_id: str, until: float, now: float) -> None:
        with self._continued_lock:
            self._continued[session_id] = until
            if len(self._continued) > _MAX_CONTINUED:  # forget ended sign-ins
                self._continued = {k: v for k, v in self._continued.items() if v > now}

    def _api_key(self, key_id: str, secret: str, address: str | None) -> Principal:
        name = f"key:{key_id[:32]}"
        with self._guarded(name, address, "api_key"):
            try:
                row = self.identities.keys.get(key_id)
                if row is None or not row.matches(secret):
                    raise _Refused("unknown key or wrong secret")
                owner = self._usable_key(key_id, None)
                record = self.identities.users.get(owner.owner)
                if record is None or record.disabled:
                    raise _Refused("the key's owner is removed or disabled")
            except _Refused as refused:
                raise self._failed(name, "api_key", address, refused) from None
        self.identities.note_key_use(key_id)
        return self._principal(record, "api_key", self._key_roles(row, record), key_limits=row.limits,
                               credential_id=key_id)

    def _usable_key(self, key_id: str, owner: str | None):
        row = self.identities.keys.get(key_id)
        if row is None or row.revoked:
            raise _Refused("key revoked")
        if owner is not None and row.owner != owner:
            raise _Refused("key of another user")
        if row.expires_at is not None and row.expires_at.timestamp() <= time.time():
            raise _Refused("key expired")
        return row

    @staticmethod
    def _key_roles(row, record: SignInRecord) -> frozenset[str]:
        return record.roles & set(row.roles) if row.roles else record.roles

    def _oidc(self, issuer: OidcIssuer, token: str, header: dict, address: str | None, handshake: bool) -> SignIn:
        try:
            identity = issuer.verify(token, header)
        except UnauthenticatedError as exc:
            expired = "expired" in exc.message
            raise self._failed(None, "oidc", address,
                               _Refused(f"{issuer.issuer}: {exc.message}", EXPIRED_TOKEN if expired else BAD_TOKEN)
                               ) from None
        record = self.identities.users.get(identity.user)
        if record is not None and record.disabled:
            raise self._failed(identity.user, "oidc", address, _Refused("user disabled"))
        roles = frozenset(identity.roles) | (record.roles if record else frozenset())
        base = record or SignInRecord(identity.user, None, False, roles, {}, {}, None)
        principal = self._principal(base, "oidc", roles, extra_attributes=identity.attributes,
                                    credential_id=f"oidc:{issuer.issuer}")
        session = "oidc:" + hashlib.sha256(token.encode()).hexdigest()[:32]
        return SignIn(principal, session, token if handshake else None)

    # -- helpers ---------------------------------------------------------------------------------------------

    def _principal(self, record: SignInRecord, method: str, roles: frozenset[str], *,
                   key_limits: Mapping[str, Any] | None = None, credential_id: str | None = None,
                   extra_attributes: Mapping[str, Any] | None = None, sign_in_id: str | None = None) -> Principal:
        role_limits = [self.identities.role_limits.get(r, {}) for r in sorted(roles)]
        limits = effective_limits(key_limits, record.limits, [r for r in role_limits if r], self._default_limits)
        return Principal(name=record.name, roles=frozenset(roles), auth_method=method,
                         attributes={**record.attributes, **(extra_attributes or {})}, limits=limits,
                         credential_id=credential_id, authenticated=True, sign_in_id=sign_in_id)

    @contextlib.contextmanager
    def _guarded(self, user: str, address: str | None, method: str) -> Iterator[None]:
        """One sign-in attempt under the guard, from its refusal or admission until its failure is counted."""
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self.guard.attempt(user, address))
            except UnauthenticatedError as exc:
                self._record("auth_failure", user, method, address, {"reason": "throttled or locked out"})
                raise self._failed(user, method, address, _Refused("throttled", exc.message)) from None
            yield

    def _failed(self, user: str | None, method: str, address: str | None, refused: _Refused) -> UnauthenticatedError:
        """Count, audit and log a failure; return the error the client gets."""
        if method in ("password", "api_key") and user and refused.reason != "throttled":
            for key in self.guard.failed(user, address):
                log.warning("sign-in lockout: %s after repeated failures", key)
                self._record("lockout", user, method, address, {"locked": key})
        if refused.reason != "throttled":
            self._record("auth_failure", user, method, address, {"reason": refused.reason})
        log.info("sign-in refused: method=%s user=%s address=%s reason=%s", method, user, address or "-",
                 refused.reason)
        self.failure_delay.wait()
        return UnauthenticatedError(refused.message)

    def _record(self, kind: str, user: str | None, method: str, address: str | None, detail: dict) -> None:
        if self.audit is not None:
            self.audit(AuditRecord(kind, actor=user, subject=detail.get("locked"), auth_method=method,
                                   client_address=address, detail=detail))
