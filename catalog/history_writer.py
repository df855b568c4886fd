"""Writing query history off the query's path: a worker thread drains a bounded queue into the catalog.

A slow or unreachable catalog database must never delay or fail a query, and must not lose what it could not take
yet: records wait (up to ``max_pending`` held at once; beyond that a new record is dropped with a warning and
counted) and a write that failed for want of the catalog is tried again, after 0.5 s and then up to every 30 s,
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

from sqlalchemy import exc as sa_exc

from nexus_flight.catalog.history import QueryRecord
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


class HistoryWriter:
    """Queues query records and writes them with ``write`` on a daemon thread."""

    def __init__(
        self, write: Callable[[QueryRecord], object], max_pending: int = 10_000, window_seconds: float = 0.2,
        retry_seconds: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self._write = write
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
        self._thread = threading.Thread(target=self._run, name="catalog-history", daemon=True)
        self._thread.start()

    def __call__(self, record: QueryRecord) -> None:
        """Queue one record; never blocks (with ``max_pending`` records held already, it is dropped, and said so)."""
        with self._done:
            full = self._pending >= self._max_pending
            if full:
                self.dropped += 1
            else:
                self._pending += 1
        if full:
            log.warning("catalog writer full (%d records waiting): dropped record %s", self._max_pending,
                        getattr(record, "id", None))
            return
        self._queue.put_nowait(record)

    @property
    def pending(self) -> int:
        """Records queued or waiting for the catalog, not yet written."""
        return self._pending

    def counts(self) -> WriterCounts:
        """Records written, dropped and pending so far (``/metrics``)."""
        with self._done:
            return WriterCounts(self.written, self.dropped, self._pending)

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
        """Write what is queued (trying for up to ``timeout``), then stop the thread; what is left is dropped."""
        self.flush(timeout)
        self._closing.set()
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
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
                log.warning("catalog writer stopping: dropped %d records the catalog could not take", len(held))
                self._finish(len(held), dropped=True)
                held = []
            if stop:
                return

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
        self._finish(len(records), dropped=False)
        return []

    def _finish(self, count: int = 1, *, dropped: bool) -> None:
        with self._done:
            self._pending -= count
            if dropped:
                self.dropped += count
            else:
                self.written += count
            self._done.notify_all()
