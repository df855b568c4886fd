"""The security generation: a counter every change to users, roles, grants, keys, tokens and policies moves.

A replica authenticates calls against a snapshot of those tables. Before each call it asks "has the generation
moved since my snapshot?" without a round trip to the catalog:

- SQLite: one ``PRAGMA data_version`` on a connection of its own (it changes only when another connection
  committed, and only then is the counter's row read), so a token revoked on one replica is refused by every
  other on its very next call;
- PostgreSQL: each change also sends ``NOTIFY nexus_flight_security`` (delivered when it commits); a thread of the
  replica LISTENs on a connection of its own and reads the counter when one arrives, so the question is a memory
  read and a revocation counts from the moment its notification arrives (well under a millisecond on one network);
  while that connection is down, the periodic refresh alone carries changes;
- any other database: the periodic refresh alone.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from nexus_flight.catalog.data_version import DataVersion, sqlite_file
from nexus_flight.catalog.models import SecurityGeneration
from nexus_flight.catalog.store import CatalogStore

log = logging.getLogger(__name__)

_READ = "SELECT generation FROM security_generation WHERE id = 1"
#: The PostgreSQL notification channel of security changes.
CHANNEL = "nexus_flight_security"


def bump_generation(session: Session) -> None:
    """Move the generation in the caller's transaction (it commits with the change; PostgreSQL then notifies)."""
    session.execute(update(SecurityGeneration).where(SecurityGeneration.id == 1).values(
        generation=SecurityGeneration.generation + 1))
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {CHANNEL}"))


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
        self._file = DataVersion(path)
        self._data_version: int | None = None
        self._generation: int | None = None

    def generation(self) -> int | None:
        """The generation, read again only when another connection committed since the last look."""
        with self._file.lock:
            try:
                version = self._file.current()
                if version != self._data_version:
                    # Noted before the read: a commit landing after it changes data_version again.
                    self._data_version = version
                    (self._generation,) = self._file.connection.execute(_READ).fetchone()
            except sqlite3.Error as exc:  # the catalog is unreadable: the periodic refresh carries on alone
                log.warning("could not read the security generation: %s", type(exc).__name__)
                self._data_version = None
                return None
            return self._generation

    def close(self) -> None:
        """Close the connection."""
        self._file.close()


class PostgresGenerationWatch(GenerationWatch):
    """A thread LISTENing for security changes on a connection of its own; the generation it last read."""

    def __init__(self, connect: Any, retry_seconds: float = 1.0) -> None:
        self._connect = connect
        self._retry_seconds = retry_seconds
        self._generation: int | None = None
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="security-listen", daemon=True)
        self._thread.start()
        self._listening.wait(5)  # the first calls already see changes, unless the catalog is slow to answer

    def generation(self) -> int | None:
        """The generation read when the last notification arrived (None: not listening now)."""
        return self._generation

    def close(self) -> None:
        """Stop listening."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._generation = conn.execute(_READ).fetchone()[0]
                    self._listening.set()
                    while not self._stop.is_set():
                        if any(True for _ in conn.notifies(timeout=0.5, stop_after=1)):
                            self._generation = conn.execute(_READ).fetchone()[0]
            except Exception as exc:  # noqa: BLE001 - the catalog is down: the periodic refresh carries on alone
                self._generation = None
                log.warning("not listening for security changes: %s", type(exc).__name__)
                self._listening.set()
                self._stop.wait(self._retry_seconds)


def watch_generation(store: CatalogStore) -> GenerationWatch:
    """The cheapest watch the store's database allows."""
    url = store.engine.url
    if (path := sqlite_file(store)) is not None:
        return SqliteGenerationWatch(path)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg":
        import psycopg  # the PostgreSQL catalog's own driver (extra ``catalog-postgres``)

        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresGenerationWatch(lambda: psycopg.connect(dsn, autocommit=True))
    return GenerationWatch()
