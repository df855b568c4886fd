"""Client sessions: current catalog, schema and dialect, keyed by bearer token, cookie, or connection.

ADBC sends no cookies by default and flightsql-dbapi never does, so sessions are keyed on the bearer token when
there is one, else the session cookie, else the client connection: the one a trusted proxy names in a header
(``client_connection_header``), else the gRPC peer.

With a shared store (the catalog's ``client_sessions``), the options of sessions keyed by a sign-in or a cookie
live there, so every replica behind a proxy serves them: each call reads them, each change writes them; so do
those keyed by a connection the proxy names. Sessions keyed by the gRPC peer (no sign-in, no cookie, no proxy
header) cannot follow a client to another replica and stay local.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import sqlglot

from nexus_flight.core.errors import CatalogUnavailableError
from nexus_flight.core.throttled_log import ThrottledLog
from nexus_flight.server.query.principal import Principal, anonymous

_WARNINGS = ThrottledLog(logging.getLogger(__name__))

SESSION_COOKIE = "arrow_flight_session_id"

#: Session options a client may set, with the type each accepts.
KNOWN_OPTIONS = {"catalog": str, "schema": str, "dialect": str}


def valid_dialect(name: str) -> bool:
    """Tell whether ``name`` is a SQL dialect the gateway can read (the ``dialect`` session option)."""
    try:
        sqlglot.Dialect.get_or_raise(name)
    except ValueError:
        return False
    return True


@dataclass
class Session:
    """What the gateway remembers of one client between calls."""

    key: str
    #: Who the session's latest call was signed in as (an unauthenticated label while authentication is off).
    principal: Principal = field(default_factory=anonymous)
    #: The client's address as the latest call reported it.
    address: str | None = None
    options: dict[str, object] = field(default_factory=dict)
    last_used: float = field(default_factory=time.monotonic)
    #: The shared store's version when ``options`` were read from it (None: never, or it cannot tell).
    options_version: int | None = None

    @property
    def catalog(self) -> str | None:
        """The current catalog (data source), if the client chose one."""
        value = self.options.get("catalog")
        return value if isinstance(value, str) and value else None

    @property
    def user(self) -> str:
        """The principal's name."""
        return self.principal.name

    @property
    def dialect(self) -> str | None:
        """The SQL dialect the client writes in, if not the source's own."""
        value = self.options.get("dialect")
        return value if isinstance(value, str) and value else None


class SharedOptions(Protocol):
    """Where sessions' options live for every replica (the catalog)."""

    def load(self, key: str) -> Mapping[str, object] | None:
        """The options of session ``key``; None when none were stored."""
        ...

    def version(self) -> int | None:
        """A number that moves whenever anything is stored, read before ``load``; None where it cannot be told."""
        ...

    def save(self, key: str, options: Mapping[str, object]) -> None:
        """Store the options of session ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Forget session ``key``."""
        ...


#: Session keys that name the same client on every replica: a sign-in, an OIDC token, a cookie, the random token
#: a Handshake gets without authentication, the client's connection as a trusted proxy names it.
_SHAREABLE = ("sid:", "oidc:", "cookie:", "token:", "conn:")


def shareable(key: str) -> bool:
    """Whether a session key names the client on every replica (not one connection to one process).

    A key ending in a connection (``key:…@…``: an API key's session on one connection) is shareable when the
    connection is one a trusted proxy named, the same whichever replica a call reaches.
    """
    _, at, connection = key.partition("@")
    if at:
        return connection.startswith("conn:")
    return key.startswith(_SHAREABLE)


class SessionStore:
    """Sessions with an idle expiry; thread-safe; options shared through ``shared`` when given."""

    def __init__(self, idle_seconds: float = 3600.0, shared: SharedOptions | None = None) -> None:
        self._idle = idle_seconds
        #: Least recently used first (each use moves a session to the end), so expiring looks only at the stale.
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()
        self._shared = shared

    def get(self, key: str, principal: Principal | None = None, *, options: bool = True) -> Session:
        """The session for ``key``, created on first use for ``principal``.

        ``options=False`` for a call that reads only who the session is (running a prepared statement, renewing a
        ticket: what they need was fixed when planned): it skips reading the shared options, a catalog query.
        """
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            session = self._sessions.get(key)
            if session is None:
                session = Session(key=key, principal=principal or anonymous())
                self._sessions[key] = session
            else:
                self._sessions.move_to_end(key)
            session.last_used = now
        if options and self._shared is not None and shareable(key):
            # Another replica may have changed them, or closed the session: read them unless nothing was stored
            # since the last read (the version is taken first, so a change landing after it moves it again).
            version = self._shared.version()
            if version is None or version != session.options_version:
                try:
                    session.options = dict(self._shared.load(key) or {})
                    session.options_version = version
                except CatalogUnavailableError:  # the catalog is away: the options as last read go on
                    _WARNINGS.warning("sessions", "the catalog did not answer; session options as last read")
        return session

    def save(self, session: Session) -> None:
        """Make a change of the session's options visible to every replica."""
        if self._shared is not None and shareable(session.key):
            self._shared.save(session.key, session.options)

    def peek(self, key: str) -> Session | None:
        """The session for ``key`` if it exists, without creating one."""
        with self._lock:
            return self._sessions.get(key)

    def close(self, key: str) -> bool:
        """Forget a session; True when there was one."""
        if self._shared is not None and shareable(key):
            self._shared.delete(key)
        with self._lock:
            return self._sessions.pop(key, None) is not None

    def _expire(self, now: float) -> None:
        # From the least recently used, up to the first still in use: not a scan of every session on every call
        # (a client opening a connection per query leaves a session per connection for the idle time).
        sessions = self._sessions
        while sessions:
            oldest = next(iter(sessions.values()))
            if now - oldest.last_used <= self._idle:
                break
            sessions.popitem(last=False)
