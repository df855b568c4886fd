"""Writing query history off the query's path: a worker thread drains a bounded queue into the catalog.

A slow or unreachable catalog database must never delay or fail a query: records wait in the queue (up to
``max_pending``), are dropped with a warning when it is full, and a failed write is logged and dropped.
``flush`` lets a reader (the ``system`` catalog) see every query that ended before it asked.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from nexus_flight.catalog.history import QueryRecord

log = logging.getLogger(__name__)

_STOP = object()
_MAX_BATCH = 500


class HistoryWriter:
    """Queues query records and writes them with ``write`` on a daemon thread."""

    def __init__(
        self, write: Callable[[QueryRecord], object], max_pending: int = 10_000, window_seconds: float = 0.2
    ) -> None:
        self._write = write
        self._window = window_seconds
        self._hurry = threading.Event()
        self._queue: queue.Queue = queue.Queue(max_pending)
        self._pending = 0
        self._done = threading.Condition()
        self.written = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="catalog-history", daemon=True)
        self._thread.start()

    def __call__(self, record: QueryRecord) -> None:
        """Queue one record; never blocks (a full queue drops the record and says so)."""
        with self._done:
            self._pending += 1
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._finish(dropped=True)
            log.warning("query history queue full: dropped the record of query %s", record.id)

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
        """Write what is queued, then stop the thread."""
        self.flush(timeout)
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            # What arrives within a short window goes in the same transaction: one commit per batch, not per
            # query. The writer sleeps the window out rather than waiting on the queue, which would wake it for
            # every record queued (each wake-up takes the interpreter lock from a query being served); a flush
            # ends the window at once, and a full batch waiting needs none.
            if first is not _STOP and self._queue.qsize() < _MAX_BATCH:
                self._hurry.wait(self._window)
            batch = [first]
            while len(batch) < _MAX_BATCH and batch[-1] is not _STOP:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = batch[-1] is _STOP
            records = [r for r in batch if r is not _STOP]
            if records:
                self._write_batch(records)
            if stop:
                return

    def _write_batch(self, records: list[QueryRecord]) -> None:
        write_many = getattr(self._write, "write_many", None)
        try:
            if write_many is not None:
                write_many(records)
            else:
                for record in records:
                    self._write(record)
        except Exception as exc:  # the catalog is down or refused the rows: keep serving, say so
            ids = ", ".join(str(r.id) for r in records[:5])
            log.warning("query history: could not record %d queries (%s): %s", len(records), ids, type(exc).__name__)
            self._finish(len(records), dropped=True)
        else:
            self._finish(len(records), dropped=False)

    def _finish(self, count: int = 1, *, dropped: bool) -> None:
        with self._done:
            self._pending -= count
            if dropped:
                self.dropped += count
            else:
                self.written += count
            self._done.notify_all()
