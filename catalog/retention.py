"""Retention: deleting history and audit rows past their age, a batch at a time, beside the serving gateway.

A busy gateway writes millions of history rows a day, and the first purge after retention is shortened (or after a
long stop) may have hundreds of millions to delete. One ``DELETE`` for all of them held SQLite's only write lock for
its whole length (every history row, sign-in record and session write waited behind it, or failed), made one huge
transaction on PostgreSQL, and ran before the gateway listened. So rows go in batches of a few thousand, each its own
transaction with a pause between them for other writers, from a thread of its own that stops between batches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Self

from sqlalchemy import delete, select

from nexus_flight.catalog.models import AuditEvent, QueryHistory, utcnow
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.core.errors import GatewayError
from nexus_flight.core.periodic import Periodic

log = logging.getLogger(__name__)

#: Rows deleted per transaction: a fraction of a second of SQLite's write lock.
BATCH_ROWS = 5_000
#: Between two batches (or as long as the batch took, if longer), so that writers waiting for the lock get it
#: before the next batch takes it again: the purge holds SQLite's write lock half the time at most.
PAUSE_SECONDS = 0.02
#: How often the retention pass runs after the first (which runs as the gateway starts).
INTERVAL_SECONDS = 3600.0


def purge_older(
    store: CatalogStore,
    model: Any,
    older_than_days: float,
    now: datetime | None = None,
    *,
    batch_rows: int = BATCH_ROWS,
    pause_seconds: float = 0.0,
    stopping: threading.Event | None = None,
) -> int:
    """Delete the rows of a log-like table older than ``older_than_days``, oldest first, ``batch_rows`` per commit.

    Returns how many rows went. ``stopping`` set ends the purge after the batch under way (the rest go next time).
    """
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    stop = stopping or threading.Event()
    oldest = (
        select(model.id).where(model.created_at < cutoff).order_by(model.created_at).limit(batch_rows)
    ).scalar_subquery()
    deleted = 0
    while not stop.is_set():
        started = time.monotonic()
        with store.session() as session:
            count = session.execute(delete(model).where(model.id.in_(oldest))).rowcount or 0
        deleted += count
        if count < batch_rows:
            break
        if pause_seconds:  # at least as long as the batch took: writers waiting (SQLite's busy handler sleeps up
            stop.wait(max(pause_seconds, time.monotonic() - started))  # to 100 ms at a time) get their turn
    return deleted


#: What retention covers: a name for the log line, the table's model and the setting giving its age.
RETAINED = (("query history", QueryHistory), ("audit trail", AuditEvent))


class RetentionKeeper(Periodic):
    """Purges the history and the audit trail past their retention: at start, then every ``interval_seconds``."""

    thread_name = "catalog-retention"

    def __init__(
        self,
        store: CatalogStore,
        *,
        history_days: int | None,
        audit_days: int | None,
        interval_seconds: float = INTERVAL_SECONDS,
        pause_seconds: float = PAUSE_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(interval_seconds)
        self.store = store
        self.days = dict(zip((name for name, _ in RETAINED), (history_days, audit_days), strict=True))
        self.pause_seconds = pause_seconds
        self.clock = clock

    @property
    def needed(self) -> bool:
        """Whether any table has a retention at all."""
        return any(self.days.values())

    def run_once(self) -> dict[str, int]:
        """One pass: rows deleted per table (a table whose purge failed is logged and left for the next pass)."""
        purged = {}
        for name, model in RETAINED:
            days = self.days[name]
            if not days or self.stopping.is_set():
                continue
            try:
                purged[name] = purge_older(
                    self.store, model, days, self.clock(), pause_seconds=self.pause_seconds, stopping=self.stopping
                )
            except GatewayError as exc:  # the catalog unreachable: next pass
                log.warning("%s retention skipped: %s", name, exc.message)
                continue
            if purged[name]:
                log.info("%s: %d rows older than %d days deleted", name, purged[name], days)
        return purged

    def start(self) -> Self:
        """Run passes in a daemon thread until :meth:`stop` (the first at once, without delaying the start)."""
        if self.needed:
            super().start()
        return self
