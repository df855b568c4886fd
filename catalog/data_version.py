"""Whether another connection has committed to a SQLite catalog, asked cheaply enough to ask before every call.

``PRAGMA data_version`` on a connection of its own changes only when another connection (another process, or this
one's pool) committed since the last look, and costs a few microseconds: replicas sharing a SQLite catalog read
what another may have changed (the security generation, a session's options) only when it moved.
"""

from __future__ import annotations

import sqlite3
import threading

from nexus_flight.catalog.store import CatalogStore


class DataVersion:
    """A connection of its own to a SQLite catalog file; ``lock`` serialises its use across threads."""

    def __init__(self, path: str) -> None:
        self.connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self.lock = threading.Lock()

    def current(self) -> int:
        """The file's data version now (call with ``lock`` held).

        Raises:
            sqlite3.Error: the catalog cannot be read.

        """
        (version,) = self.connection.execute("PRAGMA data_version").fetchone()
        return version

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.connection.close()


def sqlite_file(store: CatalogStore) -> str | None:
    """The catalog's SQLite file, or None for another database (or an in-memory one)."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return url.database
    return None
