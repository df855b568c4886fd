"""History is written off the query's path: a slow or unreachable catalog never delays or fails a query."""

from __future__ import annotations

import threading
import time

from nexus_flight.catalog.history import QueryRecord, QueryRecorder, search_history
from nexus_flight.catalog.history_writer import HistoryWriter


def test_records_reach_the_catalog_and_flush_waits_for_them(sqlite_store):
    writer = HistoryWriter(QueryRecorder(sqlite_store))
    for i in range(20):
        writer(QueryRecord(f"SELECT {i}", "success"))
    assert writer.flush(10)
    assert len(search_history(sqlite_store, limit=None)) == 20 and writer.written == 20
    writer.close()


def test_a_full_queue_drops_instead_of_blocking():
    """A stand-in writer that blocks (no real database stalls on cue) shows the bound: ``max_pending`` records held
    at once, the one being written included."""
    entered, gate = threading.Event(), threading.Event()

    def write(record):
        entered.set()
        gate.wait(10)

    writer = HistoryWriter(write, max_pending=2, window_seconds=0)
    writer(QueryRecord("SELECT 0", "success"))
    assert entered.wait(5)  # the worker is stuck writing the first record: the queue can only fill up now
    started = time.monotonic()
    for i in range(1, 6):
        writer(QueryRecord(f"SELECT {i}", "success"))
    assert time.monotonic() - started < 0.5
    gate.set()
    assert writer.flush(10)
    assert (writer.written, writer.dropped) == (2, 4)
    writer.close()


def test_a_flush_ends_the_writers_window_at_once():
    """A stand-in recorder (a list) shows the timing alone: the window is long, and a flush must not wait it out
    (the writer sleeps the window out; the flush wakes it)."""
    written: list[QueryRecord] = []
    writer = HistoryWriter(written.append, window_seconds=30)
    writer(QueryRecord("SELECT 1", "success"))
    time.sleep(0.05)  # the writer has the record and waits for the window to fill
    started = time.monotonic()
    assert writer.flush(10)
    assert time.monotonic() - started < 1 and [r.sql for r in written] == ["SELECT 1"]
    writer(QueryRecord("SELECT 2", "success"))
    assert writer.flush(10) and len(written) == 2
    writer.close()
