"""Client sessions: current catalog, schema and dialect, keyed by bearer token, cookie, or connection.

ADBC sends no cookies by default and flightsql-dbapi never does, so sessions are keyed on the bearer token when
there is one, else the session cookie, else the gRPC peer (one per client connection).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import sqlglot

from nexus_flight.server.query.principal import Principal, anonymous

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


class SessionStore:
    """Sessions with an idle expiry; thread-safe."""

    def __init__(self, idle_seconds: float = 3600.0) -> None:
        self._idle = idle_seconds
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, key: str, principal: Principal | None = None) -> Session:
        """The session for ``key``, created on first use for ``principal``."""
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            session = self._sessions.get(key)
            if session is None:
                session = Session(key=key, principal=principal or anonymous())
                self._sessions[key] = session
            session.last_used = now
            return session

    def peek(self, key: str) -> Session | None:
        """The session for ``key`` if it exists, without creating one."""
        with self._lock:
            return self._sessions.get(key)

    def close(self, key: str) -> bool:
        """Forget a session; True when there was one."""
        with self._lock:
            return self._sessions.pop(key, None) is not None

    def _expire(self, now: float) -> None:
        stale = [k for k, s in self._sessions.items() if now - s.last_used > self._idle]
        for key in stale:
            del self._sessions[key]
