"""Writing query history off the query's path: a worker thread drains a bounded queue into the catalog.

A slow or unreachable catalog database must never delay or fail a query, and must not lose what it could not take
yet: records wait (up to ``max_pending`` held at once; beyond that, and at a stop while the catalog does not
answer, they go to a journal on disk, ``record_journal``, or are dropped with a warning and counted where there is
none) and a write that failed for want of the catalog is tried again, after 0.5 s and then up to every 30 s,
until it lands. A batch the catalog refuses for its content is written record by record, so one record it cannot
take (there should be none: ``catalog.storable``) is the only one dropped, never the others of its batch.
``flush`` lets a reader (the ``system`` catalog) see every query that ended before it asked.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import exc as sa_exc

from nexus_flight.catalog.history import QueryRecord
from nexus_flight.catalog.record_journal import RecordJournal
from nexus_flight.core.errors import CatalogUnavailableError

log = logging.getLogger(__name__)

_STOP = object()
_MAX_BATCH = 500
#: Failures that say the catalog could not be reached or was busy (a lock, a restart, a network cut), not that it
#: refused the rows: their records are kept and written again.
_UNREACHABLE = (CatalogUnavailableError, sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                sa_exc.TimeoutError, OSError)


@dataclass(frozen=True)
class WriterCounts:
    """What a writer did with the records it was given."""

    written: int = 0
    dropped: int = 0
    pending: int = 0
    #: Rows kept on disk for the catalog (``record_journal``).
    journaled: int = 0


class Journaled(Protocol):
    """A writer target whose records can be kept in a journal as rows and written from it."""

    def rows_of(self, records: list) -> list[dict[str, Any]]:
        """The catalog rows of ``records`` (JSON values and datetimes only)."""

    def write_rows(self, rows: list[dict[str, Any]], *, skip_stored: bool = False) -> None:
        """Store rows in one transaction; ``skip_stored``: leave out ids stored already."""


class HistoryWriter:
    """Queues query records and writes them with ``write`` on a daemon thread."""

    def __init__(
        self, write: Callable[[QueryRecord], object], max_pending: int = 10_000, window_seconds: float = 0.2,
        retry_seconds: tuple[float, float] = (0.5, 30.0), journal: RecordJournal | None = None,
    ) -> None:
        """``journal``: where records go that cannot be held (``write`` is then ``Journaled``); None drops them."""
        self._write = write
        self._journal = journal
        self._window = window_seconds
        self._retry_first, self._retry_most = retry_seconds
        self._max_pending = max_pending
        self._hurry = threading.Event()
        self._closing = threading.Event()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0
        self._done = threading.Condition()
        self.written = 0
        self.dropped = 0
        #: The last write found the catalog unreachable.
        self._unanswered = False
        self._thread = threading.Thread(target=self._run, name="catalog-history", daemon=True)
        self._thread.start()

    def __call__(self, record: QueryRecord) -> None:
        """Queue one record; never blocks (with ``max_pending`` records held already, it goes to the journal)."""
        with self._done:
            full = self._pending >= self._max_pending
            if not full:
                self._pending += 1
        if full:
            self._keep_or_drop([record], f"catalog writer full ({self._max_pending} records waiting)")
            return
        self._queue.put_nowait(record)

    def _keep_or_drop(self, records: list, why: str) -> None:
        """Journal records that cannot be held, or drop them (counted) when there is no journal or it fails."""
        if self._journal is not None:
            try:
                self._journal.keep(cast(Journaled, self._write).rows_of(records))
                return
            except (OSError, TypeError, ValueError) as exc:
                why += f", and its journal failed ({type(exc).__name__}: {exc})"
        with self._done:
            self.dropped += len(records)
        log.warning("%s: dropped %d records (%s)", why, len(records),
                    ", ".join(str(getattr(r, "id", None)) for r in records[:5]))

    @property
    def pending(self) -> int:
        """Records queued or waiting for the catalog, not yet written."""
        return self._pending

    def counts(self) -> WriterCounts:
        """Records written, dropped and pending so far (``/metrics``)."""
        journaled = self._journal.count if self._journal is not None else 0
        with self._done:
            return WriterCounts(self.written, self.dropped, self._pending, journaled)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued record is written (or dropped); False when ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        self._hurry.set()  # ends the writer's window at once
        try:
            with self._done:
                while self._pending:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._done.wait(remaining)
            return True
        finally:
            self._hurry.clear()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (trying for up to ``timeout``), then stop the thread; what is left is journaled.

        With the catalog not answering, nothing is tried: a stop must not spend an orchestrator's grace period
        waiting on it (a SIGKILL would lose what it holds).
        """
        deadline = time.monotonic() + timeout
        while not self._unanswered and time.monotonic() < deadline:
            if self.flush(min(0.5, deadline - time.monotonic())):
                break
        self._closing.set()
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._journal is not None:
            self._journal.close()

    def _run(self) -> None:
        self._take_over_journals()
        held: list = []  # records a write could not store for want of the catalog: tried first, after a pause
        delay = 0.0
        while True:
            if held:
                self._closing.wait(delay)
            else:
                first = self._queue.get()
                # What arrives within a short window goes in the same transaction: one commit per batch, not per
                # query. The writer sleeps the window out rather than waiting on the queue, which would wake it
                # for every record queued (each wake-up takes the interpreter lock from a query being served); a
                # flush ends the window at once, and a full batch waiting needs none.
                if first is _STOP:
                    return
                if self._queue.qsize() < _MAX_BATCH:
                    self._hurry.wait(self._window)
                held = [first]
            stop = False
            while len(held) < _MAX_BATCH:
                try:
                    record = self._queue.get_nowait()
                except queue.Empty:
                    break
                if record is _STOP:
                    stop = True
                    break
                held.append(record)
            held = self._write_batch(held)
            delay = min(max(delay * 2, self._retry_first), self._retry_most) if held else 0.0
            if held and (stop or self._closing.is_set()):
                # Stopping with a catalog that does not answer: the rest is not tried (each try may wait seconds).
                stop = stop or self._drain_into(held)
                self._keep_or_drop(held, "catalog writer stopping without the catalog")
                self._finish(len(held), dropped=None)
                held = []
            elif not held and self._journal is not None and self._journal.count and self._queue.empty():
                self._write_journal()
            if stop:
                return

    def _drain_into(self, held: list) -> bool:
        """Move every queued record into ``held``; True when the stop marker was among them."""
        while True:
            try:
                record = self._queue.get_nowait()
            except queue.Empty:
                return False
            if record is _STOP:
                return True
            held.append(record)

    def _write_journal(self) -> None:
        """Write back what this process journaled, now that the catalog takes rows again."""
        assert self._journal is not None
        rows = self._journal.take()
        count = len(rows)
        try:
            self._write_rows(rows)
        except _UNREACHABLE:
            self._journal.keep(rows)  # what was not written yet
            return
        log.warning("catalog writer: wrote the %d %s rows kept in its journal", count, self._journal.log_name)

    def _write_rows(self, rows: list[dict[str, Any]]) -> None:
        """Write journaled rows batch by batch (ids stored already skipped); ``rows`` keeps those not written yet."""
        while rows:
            cast(Journaled, self._write).write_rows(rows[:_MAX_BATCH], skip_stored=True)
            del rows[:_MAX_BATCH]

    def _take_over_journals(self) -> None:
        """Write the journals of gateways that stopped before the catalog could take their rows."""
        if self._journal is None:
            return
        for path, rows in self._journal.left_behind():
            count = len(rows)
            try:
                self._write_rows(rows)
            except Exception as exc:  # left for the next start; this one serves all the same
                log.warning("catalog writer: the %s rows of %s could not be written yet (%s); kept for the next "
                            "start", self._journal.log_name, path, type(exc).__name__)
                continue
            self._journal.settle(path)
            log.warning("catalog writer: wrote the %d %s rows %s kept for the catalog", count,
                        self._journal.log_name, path)

    def _write_batch(self, records: list) -> list:
        """Write ``records``; return those to try again (the catalog could not be reached)."""
        write_many = getattr(self._write, "write_many", None)
        if write_many is None and len(records) > 1:  # one at a time: a failure then says which record failed
            return [kept for record in records for kept in self._write_batch([record])]
        try:
            if write_many is not None:
                write_many(records)
            else:
                self._write(records[0])
        except _UNREACHABLE as exc:
            self._unanswered = True
            log.warning("catalog writer: the catalog could not take %d records (%s); keeping them to try again",
                        len(records), type(exc).__name__)
            return records
        except Exception as exc:  # the catalog refused the rows themselves
            if len(records) > 1:
                return [kept for record in records for kept in self._write_batch([record])]
            ids = ", ".join(str(getattr(r, "id", None)) for r in records[:5])
            log.warning("catalog writer: the catalog refused %d records (%s): %s", len(records), ids,
                        type(exc).__name__)
            self._finish(len(records), dropped=True)
            return []
        self._unanswered = False
        self._finish(len(records), dropped=False)
        return []

    def _finish(self, count: int = 1, *, dropped: bool | None) -> None:
        """``count`` queued records are done: written, dropped, or (None) handed to ``_keep_or_drop``, which counts."""
        with self._done:
            self._pending -= count
            if dropped:
                self.dropped += count
            elif dropped is not None:
                self.written += count
            self._done.notify_all()
