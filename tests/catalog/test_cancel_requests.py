"""Cancel requests in the catalog, as two replicas pass them: one asks, the one running the query answers."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from nexus_flight.catalog.cancel_requests import CatalogCancels
from nexus_flight.catalog.history import QueryRecord, QueryRecorder
from nexus_flight.server.query.remote_cancel import RemoteCancel, key_hash


def test_a_request_is_pending_until_answered_and_then_reads_as_cancelled(sqlite_store):
    cancels = CatalogCancels(sqlite_store)
    cancels.request([key_hash(b"ticket-1")])
    assert cancels.pending(timedelta(seconds=30)) == {key_hash(b"ticket-1")}
    assert not cancels.cancelled([key_hash(b"ticket-1")])
    cancels.answer(key_hash(b"ticket-1"))
    assert cancels.pending(timedelta(seconds=30)) == set()
    assert cancels.cancelled([key_hash(b"ticket-1"), key_hash(b"other")])
    cancels.request([key_hash(b"ticket-1")])  # asked again: pending again
    assert cancels.pending(timedelta(seconds=30)) == {key_hash(b"ticket-1")}


def test_old_requests_are_deleted_when_another_is_written(sqlite_store):
    cancels = CatalogCancels(sqlite_store, keep=timedelta(0))
    cancels.request([key_hash(b"old")])
    time.sleep(0.01)
    cancels.request([key_hash(b"new")])
    assert cancels.pending(timedelta(hours=1)) == {key_hash(b"new")}


def test_the_replica_running_a_query_stops_it_for_the_one_that_was_asked(sqlite_store):
    """Two RemoteCancel over one catalog: "here" runs ticket-1, "there" receives the cancel."""
    stopped = threading.Event()

    def cancel_here(key: bytes) -> bool:
        stopped.set()
        return key == b"ticket-1"

    here = RemoteCancel(CatalogCancels(sqlite_store), lambda: [] if stopped.is_set() else [b"ticket-1"],
                        cancel_here)
    there = RemoteCancel(CatalogCancels(sqlite_store), list, lambda key: False)
    assert there.ask([b"ticket-1"])
    assert stopped.is_set()
    # Nobody runs ticket-2 yet: the cancel is remembered, and its start is refused on any replica.
    assert there.ask([b"ticket-2"], wait_seconds=0.5)
    assert here.refused_before_start(b"ticket-2") and not here.refused_before_start(b"ticket-3")


def test_a_cancel_of_a_ticket_whose_query_ended_is_answered_at_once_and_not_remembered(sqlite_store):
    QueryRecorder(sqlite_store)(QueryRecord(sql="SELECT 1", status="success", ticket_sha256=key_hash(b"done")))
    there = RemoteCancel(CatalogCancels(sqlite_store), list, lambda key: False)
    started = time.monotonic()
    assert not there.ask([b"done"])  # NOT_CANCELLABLE
    assert time.monotonic() - started < 0.5
    assert not there.refused_before_start(b"done")  # a second run of the ticket is not refused
