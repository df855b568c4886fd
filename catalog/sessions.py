"""Client sessions' options in the catalog, so that every replica sharing it serves a session's calls.

Rows are keyed by SHA-256 of the session key (a sign-in id, a cookie): the key itself is never stored. Rows not
written for ``idle`` are deleted when another session is written. On a SQLite catalog ``version`` tells whether
anything was committed since a session's options were read (``PRAGMA data_version``), so an unchanged catalog is
not read again; on PostgreSQL every call reads them.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import bindparam, delete, select

from nexus_flight.catalog.data_version import DataVersion, sqlite_file
from nexus_flight.catalog.models import SharedSession, utcnow
from nexus_flight.catalog.store import CatalogStore

_LOAD = select(SharedSession.options).where(SharedSession.key_hash == bindparam("key_hash"))


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class CatalogSessions:
    """``SharedOptions`` (``server/query/session.py``) over the catalog's ``client_sessions``."""

    def __init__(self, store: CatalogStore, idle: timedelta = timedelta(days=1)) -> None:
        self._store = store
        self._idle = idle
        path = sqlite_file(store)
        self._data_version = DataVersion(path) if path is not None else None

    def version(self) -> int | None:
        """A number that moves whenever another connection commits to the catalog; None where it cannot be told."""
        if self._data_version is None:
            return None
        with self._data_version.lock:
            try:
                return self._data_version.current()
            except sqlite3.Error:
                return None  # unreadable now: the options are read (and that read says what is wrong)

    def load(self, key: str) -> Mapping[str, object] | None:
        """The stored options of session ``key``, or None.

        Every call of a shared session reads them, so this is one Core select (about 0.1 ms on SQLite) rather
        than an ORM session's get (about 0.5 ms).
        """
        with self._store.connection() as connection:
            options = connection.execute(_LOAD, {"key_hash": _hash(key)}).scalar()
        return dict(options) if options is not None else None

    def save(self, key: str, options: Mapping[str, object]) -> None:
        """Store the options of session ``key`` (and delete sessions idle too long)."""
        with self._store.session() as session:
            row = session.get(SharedSession, _hash(key))
            if row is None:
                session.add(SharedSession(key_hash=_hash(key), options=dict(options)))
            else:
                row.options, row.updated_at = dict(options), utcnow()
            session.execute(delete(SharedSession).where(SharedSession.updated_at < utcnow() - self._idle))

    def delete(self, key: str) -> None:
        """Forget session ``key``."""
        with self._store.session() as session:
            session.execute(delete(SharedSession).where(SharedSession.key_hash == _hash(key)))
