"""Handshake and per-call identity.

Every Flight SQL client authenticates differently: JDBC sends Basic with padding and one empty
HandshakeRequest, ADBC sends unpadded Basic and no message, pyarrow and ODBC send padded Basic and no message,
token mode sends ``Bearer``. All of them read ``authorization: Bearer …`` from the Handshake's response headers.

The real work happens in ``IdentityMiddleware``, which runs for every call including Handshake: it reads the
``authorization`` header (Basic, padding optional, or Bearer), resolves the caller, and on Handshake answers with
a bearer token. The caller becomes a ``Principal`` (``server/query/principal.py``), which the session, the handles and
the query history carry. With no authentication configured (the loopback default) any user name is accepted as a
label (an unauthenticated principal).
``flightsql-dbapi`` sends ``Bearer None`` when anonymous: that is treated as no token.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from dataclasses import dataclass

import pyarrow.flight as flight

from nexus_flight.server.query.principal import Principal, anonymous
from nexus_flight.server.query.session import SESSION_COOKIE

MIDDLEWARE_KEY = "identity"


@dataclass(frozen=True)
class Identity:
    """Who is calling, and the key their session lives under."""

    principal: Principal
    session_key: str
    token: str | None = None


class HandshakeHandler(flight.ServerAuthHandler):
    """Completes the Handshake without requiring a client message (ADBC and pyarrow send none)."""

    def authenticate(self, outgoing, incoming) -> None:
        """Credentials travel in headers (see the middleware); drain what the client sent, ignoring it.

        Every client half-closes after at most one empty message, so reading to the end never waits. Leaving a
        sent message unread makes gRPC abort the call ("too many operations").
        """
        for _ in range(16):  # JDBC and ODBC token mode send one message; nobody sends more
            try:
                if incoming.read() is None:
                    return
            except Exception:  # end of stream
                return

    def is_valid(self, token: bytes) -> str:
        """The legacy ``auth-token-bin`` header is not used; identity comes from the middleware."""
        return ""


class TokenRegistry:
    """Bearer tokens issued by this server and who they belong to; a token unused for ``idle_seconds`` is forgotten.

    Every Handshake issues one, so without expiry a long-running server would keep one per connection ever made.
    """

    def __init__(self, idle_seconds: float = 86_400.0) -> None:
        self._idle = idle_seconds
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def issue(self, user: str) -> str:
        """A fresh random token for ``user``."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sweep()
            self._tokens[token] = (user, time.monotonic())
        return token

    def user_of(self, token: str) -> str | None:
        """The user a token was issued to (None when unknown or expired); using a token keeps it alive."""
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None or time.monotonic() - entry[1] > self._idle:
                return None
            self._tokens[token] = (entry[0], time.monotonic())
            return entry[0]

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)

    def _sweep(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:  # O(n): at most once a minute
            return
        self._next_sweep = now + 60.0
        for token in [t for t, (_, used) in self._tokens.items() if now - used > self._idle]:
            del self._tokens[token]


def _decode_basic(value: str) -> tuple[str, str] | None:
    """Decode Basic credentials, with or without base64 padding (ADBC omits it)."""
    raw = value.strip()
    raw += "=" * (-len(raw) % 4)
    try:
        decoded = base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _header(headers: dict, name: str) -> str | None:
    for key, values in headers.items():
        if key.lower() == name and values:
            value = values[0]
            return value.decode() if isinstance(value, bytes) else value
    return None


def _cookie(headers: dict, name: str) -> str | None:
    raw = _header(headers, "cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


class IdentityMiddleware(flight.ServerMiddleware):
    """Carries the caller's identity through a call; answers a Handshake with a bearer token."""

    def __init__(self, identity: Identity, send_token: bool) -> None:
        self.identity = identity
        self._send_token = send_token

    def sending_headers(self) -> dict[str, str]:
        """On Handshake, the ``authorization: Bearer`` header every client looks for."""
        if self._send_token and self.identity.token:
            return {"authorization": f"Bearer {self.identity.token}"}
        return {}


class IdentityMiddlewareFactory(flight.ServerMiddlewareFactory):
    """Resolves every call's caller from its headers; no authentication is configured (loopback default)."""

    def __init__(self, tokens: TokenRegistry) -> None:
        self._tokens = tokens

    def start_call(self, info: flight.CallInfo, headers: dict) -> IdentityMiddleware:
        """Read Basic or Bearer credentials; issue a token on Handshake."""
        authorization = _header(headers, "authorization") or ""
        scheme, _, value = authorization.partition(" ")
        is_handshake = info.method == flight.FlightMethod.HANDSHAKE
        if scheme.lower() == "bearer" and value and value != "None":
            principal = anonymous(self._tokens.user_of(value))
            return IdentityMiddleware(Identity(principal, f"token:{value}", value), send_token=is_handshake)
        if scheme.lower() == "basic":
            credentials = _decode_basic(value)
            if credentials is None:
                raise flight.FlightUnauthenticatedError("malformed Basic credentials")
            principal = anonymous(credentials[0])
            token = self._tokens.issue(principal.name)
            return IdentityMiddleware(Identity(principal, f"token:{token}", token), send_token=True)
        if is_handshake:
            principal = anonymous()
            token = self._tokens.issue(principal.name)
            return IdentityMiddleware(Identity(principal, f"token:{token}", token), send_token=True)
        cookie = _cookie(headers, SESSION_COOKIE)
        key = f"cookie:{cookie}" if cookie else None
        return IdentityMiddleware(Identity(anonymous(), key or ""), send_token=False)


def identity_of(context: flight.ServerCallContext) -> Identity:
    """The caller's identity; calls without token or cookie get a per-connection session key."""
    middleware = context.get_middleware(MIDDLEWARE_KEY)
    identity = middleware.identity if middleware is not None else Identity(anonymous(), "")
    if not identity.session_key:
        identity = Identity(identity.principal, f"peer:{context.peer()}", identity.token)
    return identity
