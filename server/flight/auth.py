"""Handshake and per-call identity.

Every Flight SQL client authenticates differently: JDBC sends Basic with padding and one empty HandshakeRequest,
ADBC sends unpadded Basic and no message, pyarrow and ODBC send padded Basic and no message, token mode sends
``Bearer``. All of them read ``authorization: Bearer …`` from the Handshake's response headers, and JDBC and ADBC
also take a new bearer token from any later answer (how tokens are refreshed before they expire).

The work happens in ``IdentityMiddlewareFactory.start_call``, which runs for every call including Handshake: it
reads the ``authorization`` header (Basic, padding optional, or Bearer), asks the ``Authenticator`` who the caller
is, and fails the call with UNAUTHENTICATED right there when the credentials are missing or wrong, so no handler
runs for an unauthenticated caller. ``flightsql-dbapi`` sends ``Bearer None`` when anonymous: no token.

With client-certificate identities on, the gateway runs without a Handshake handler: only then does Arrow hand the
verified certificate's identity (its first subject alternative name, else its CN) to the call, and the Handshake
then answers UNIMPLEMENTED; such clients sign in with their certificate, or send a bearer token or API key.
Without authentication (the loopback default) any user name is accepted as a label: ``OpenAuthenticator``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import pyarrow.flight as flight

from nexus_flight.core.errors import GatewayError, UnauthenticatedError
from nexus_flight.server.flight.status import flight_error
from nexus_flight.server.query.principal import Principal, SignIn, anonymous
from nexus_flight.server.query.session import SESSION_COOKIE

MIDDLEWARE_KEY = "identity"


@dataclass(frozen=True)
class Identity:
    """Who is calling, from where, and the key their session lives under."""

    principal: Principal
    session_key: str
    address: str | None = None

    @property
    def user(self) -> str:
        """The principal's name."""
        return self.principal.name


class Authenticator(Protocol):
    """What the Flight layer asks to sign a call in (``server/security`` implements it on the catalog).

    Every method raises a ``GatewayError`` (UNAUTHENTICATED, or UNAVAILABLE when sign-ins are throttled).
    """

    #: Whether every call must be authenticated.
    required: bool
    #: Whether a verified client certificate names the caller (no Handshake handler then).
    certificate_identities: bool

    def password(self, user: str, password: str, address: str | None) -> SignIn:
        """Basic credentials."""

    def bearer(self, token: str, address: str | None, handshake: bool = False) -> SignIn:
        """A bearer token."""

    def certificate(self, name: str, address: str | None) -> SignIn:
        """The identity of a verified client certificate."""

    def missing(self, address: str | None) -> GatewayError:
        """The error for a call without credentials when they are required."""


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


class OpenAuthenticator:
    """No authentication (loopback by default): any user name is a label, every Handshake gets a token.

    The token only keys the caller's session; it proves nothing.
    """

    required = False
    certificate_identities = False

    def __init__(self, tokens: TokenRegistry | None = None) -> None:
        self.tokens = tokens or TokenRegistry()

    def password(self, user: str, password: str, address: str | None) -> SignIn:
        """Accept any user name as a label."""
        label = user or "anonymous"
        token = self.tokens.issue(label)
        return SignIn(anonymous(label), f"token:{token}", token)

    def bearer(self, token: str, address: str | None, handshake: bool = False) -> SignIn:
        """A token this server issued names its label; any other is anonymous."""
        return SignIn(anonymous(self.tokens.user_of(token)), f"token:{token}", token if handshake else None)

    def certificate(self, name: str, address: str | None) -> SignIn:
        """Not used without authentication."""
        return SignIn(anonymous(name), "")

    def missing(self, address: str | None) -> GatewayError:
        """Not used without authentication."""
        return UnauthenticatedError("authentication required")

    def handshake(self) -> SignIn:
        """A Handshake without credentials gets an anonymous token."""
        token = self.tokens.issue("anonymous")
        return SignIn(anonymous(), f"token:{token}", token)


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


@dataclass(frozen=True)
class ProxyHeaders:
    """Headers a trusted proxy in front of the gateway sets (``[server.auth]``); a client's own are not trusted.

    Attributes:
        address: Carries the client's address (``x-forwarded-for``); Arrow does not tell middleware the peer's
            address, so without it failures are counted per user name only.
        connection: Names the client's connection to the proxy: behind a proxy the gateway's peer is the proxy's
            connection, which carries many clients' calls (and a client's calls come over several), so a session
            keyed by the connection is keyed by this instead.

    """

    address: str | None = None
    connection: str | None = None


class IdentityMiddleware(flight.ServerMiddleware):
    """Carries the caller's sign-in through a call; sends a bearer token back when there is one to send."""

    def __init__(self, sign_in: SignIn | None, address: str | None, cookie: str | None = None,
                 connection: str | None = None) -> None:
        #: None while a client certificate is still to be read (certificate identities).
        self.sign_in = sign_in
        self.address = address
        self.cookie = cookie
        #: The client's connection as the trusted proxy names it (None: the gRPC peer is the client's).
        self.connection = connection
        #: A session cookie this call gives a caller without sign-in or cookie (``set-cookie``; DoAction only).
        self.new_cookie: str | None = None

    def sending_headers(self) -> dict[str, str]:
        """The ``authorization: Bearer`` header every client looks for (Handshake, or a refreshed token).

        And the session cookie a call without sign-in or cookie is given (``session_cookie_given``).
        """
        headers = {}
        if self.sign_in is not None and self.sign_in.token:
            headers["authorization"] = f"Bearer {self.sign_in.token}"
        if self.new_cookie is not None:
            headers["set-cookie"] = f"{SESSION_COOKIE}={self.new_cookie}; Path=/; HttpOnly"
        return headers


class IdentityMiddlewareFactory(flight.ServerMiddlewareFactory):
    """Signs every call in from its headers, or fails it with UNAUTHENTICATED before any handler runs.

    Args:
        authenticator: Who decides (``OpenAuthenticator`` without authentication).
        proxy: The headers a trusted proxy sets (none by default: the gateway is reached directly).

    """

    def __init__(self, authenticator: Authenticator, proxy: ProxyHeaders | None = None) -> None:
        self._auth = authenticator
        proxy = proxy or ProxyHeaders()
        self._address_header = proxy.address.lower() if proxy.address else None
        self._connection_header = proxy.connection.lower() if proxy.connection else None

    def start_call(self, info: flight.CallInfo, headers: dict) -> IdentityMiddleware:
        """Authenticate the call (raising the mapped Flight error when that fails)."""
        address = connection = None
        if self._address_header:
            forwarded = _header(headers, self._address_header)
            address = forwarded.split(",")[0].strip()[:128] if forwarded else None
        if self._connection_header:
            connection = (_header(headers, self._connection_header) or "").strip()[:256] or None
        cookie = _cookie(headers, SESSION_COOKIE)
        try:
            middleware = IdentityMiddleware(self._sign_in(info, headers, address), address, cookie, connection)
        except GatewayError as exc:
            raise flight_error(exc) from None
        sign_in = middleware.sign_in
        if info.method == flight.FlightMethod.DO_ACTION and not cookie and sign_in is not None and not sign_in.session:
            # Headers leave before the handler runs: an action that sets session options (one of DoAction's)
            # needs its cookie ready now. A client that drops cookies simply never sends it back.
            middleware.new_cookie = secrets.token_urlsafe(24)
        return middleware

    def _sign_in(self, info: flight.CallInfo, headers: dict, address: str | None) -> SignIn | None:
        authorization = _header(headers, "authorization") or ""
        scheme, _, value = authorization.partition(" ")
        value = value.strip()
        handshake = info.method == flight.FlightMethod.HANDSHAKE
        if scheme.lower() == "bearer" and value and value != "None":
            return self._auth.bearer(value, address, handshake)
        if scheme.lower() == "basic":
            credentials = _decode_basic(value)
            if credentials is None:
                raise UnauthenticatedError("malformed Basic credentials")
            return self._auth.password(credentials[0], credentials[1], address)
        if self._auth.certificate_identities:
            return None  # the handler reads the certificate's identity from the call context
        if self._auth.required:
            raise self._auth.missing(address)
        if handshake and isinstance(self._auth, OpenAuthenticator):
            return self._auth.handshake()
        return SignIn(anonymous(), "")


def peer_address(peer: str) -> str | None:
    """The host part of a gRPC peer (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``)."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6") or not rest:
        return None
    host = rest.rsplit(":", 1)[0]
    return host.strip("[]") or None


def session_cookie_given(context) -> str | None:
    """The session key of the cookie this call gives its caller (None: it has a sign-in or a cookie).

    Behind a proxy a connection is the proxy's, shared by clients and not kept from one call to the next, so a
    client without sign-in or Handshake token that keeps cookies (ADBC with its cookie middleware) carries its
    session itself.
    """
    middleware = context.get_middleware(MIDDLEWARE_KEY)
    if middleware is None or middleware.new_cookie is None:
        return None
    return f"cookie:{middleware.new_cookie}"


def identity_of(context: flight.ServerCallContext, authenticator: Authenticator | None = None) -> Identity:
    """The caller of a call: its principal, address and session key.

    Calls without token or cookie get a per-connection session key (the connection a trusted proxy names, else the
    gRPC peer); with certificate identities, a call without credentials is signed in by its client certificate
    here.

    Raises:
        UnauthenticatedError: certificate identities are on and the call carries neither credentials nor a
            certificate naming a user.

    """
    middleware = context.get_middleware(MIDDLEWARE_KEY)
    peer = context.peer()
    address = (middleware.address if middleware is not None else None) or peer_address(peer)
    sign_in = middleware.sign_in if middleware is not None else SignIn(anonymous(), "")
    if sign_in is None:
        name = context.peer_identity().decode(errors="replace") if authenticator is not None else ""
        if not name:
            raise (authenticator.missing(address) if authenticator is not None
                   else UnauthenticatedError("authentication required"))
        sign_in = authenticator.certificate(name, address)
        middleware.sign_in = sign_in
    connection = middleware.connection if middleware is not None else None
    session = sign_in.session
    if not session:
        cookie = middleware.cookie if middleware is not None else None
        session = f"cookie:{cookie}" if cookie else f"conn:{connection}" if connection else f"peer:{peer}"
    elif session.endswith("@"):
        session += f"conn:{connection}" if connection else peer
    return Identity(sign_in.principal, session, address)
