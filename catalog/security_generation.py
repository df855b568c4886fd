"""The security generation: a counter every change to users, roles, grants, keys, tokens and policies moves.

A replica authenticates calls against a snapshot of those tables. Before each call it asks "has the generation
moved since my snapshot?" — on a SQLite catalog that costs one ``PRAGMA data_version`` on a connection of its own
(it changes only when another connection committed, and only then is the counter's row read), so a token revoked
on one replica is refused by every other on its very next call. Other catalogs have no such cheap question: they
keep the periodic refresh.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nexus_flight.catalog.models import SecurityGeneration
from nexus_flight.catalog.store import CatalogStore

log = logging.getLogger(__name__)

_READ = "SELECT generation FROM security_generation WHERE id = 1"


def bump_generation(session: Session) -> None:
    """Move the generation in the caller's transaction (it commits with the change)."""
    session.execute(update(SecurityGeneration).where(SecurityGeneration.id == 1).values(
        generation=SecurityGeneration.generation + 1))


def read_generation(store: CatalogStore) -> int:
    """The generation now (a catalog query)."""
    with store.session() as session:
        return session.scalar(select(SecurityGeneration.generation).where(SecurityGeneration.id == 1)) or 0


class GenerationWatch:
    """Answers the catalog's generation cheaply enough to ask before every call; ``None`` where it cannot."""

    def generation(self) -> int | None:
        """The generation now, or ``None`` when this catalog cannot tell cheaply."""
        return None

    def close(self) -> None:
        """Release what the watch holds."""


class SqliteGenerationWatch(GenerationWatch):
    """A connection of its own to the catalog file: ``PRAGMA data_version`` first, the counter only on a change."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.Lock()
        self._data_version: int | None = None
        self._generation: int | None = None

    def generation(self) -> int | None:
        """The generation, read again only when another connection committed since the last look."""
        with self._lock:
            try:
                (version,) = self._conn.execute("PRAGMA data_version").fetchone()
                if version != self._data_version:
                    # Noted before the read: a commit landing after it changes data_version again.
                    self._data_version = version
                    (self._generation,) = self._conn.execute(_READ).fetchone()
            except sqlite3.Error as exc:  # the catalog is unreadable: the periodic refresh carries on alone
                log.warning("could not read the security generation: %s", type(exc).__name__)
                self._data_version = None
                return None
            return self._generation

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def watch_generation(store: CatalogStore) -> GenerationWatch:
    """The cheapest watch the store's database allows."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return SqliteGenerationWatch(url.database)
    return GenerationWatch()
