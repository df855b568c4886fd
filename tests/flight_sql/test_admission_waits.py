"""A query waiting to be admitted can always leave: from the memory budget's queue and from the concurrency queue.

Both queues end at the query's own time limit (the server's ``query_timeout``, or the caller's lower
``max_query_seconds``: the deadline the watchdog applies to a running query), failing DEADLINE_EXCEEDED naming the
limit, and the time spent waiting counts against that limit once the query runs. The concurrency queue
(``max_concurrent_queries`` with ``queue_timeout_seconds``) is also left at once by CancelFlightInfo, a client
that goes away, a drain (the retryable UNAVAILABLE naming it) and the gateway stopping, as the memory queue is.
Every check goes through real Flight SQL clients against a served gateway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.core.settings import PrincipalLimitSettings
from nexus_flight.server.app.gateway import Gateway
from nexus_flight.server.query.principal import anonymous
from tests.flight_sql.test_memory_budget import _cancel_flight_info_status
from tests.support import flightsql_raw as raw
from tests.support.services import wait_until

SLOW = "SELECT count(*) FROM range(100000000000) a"  # runs for minutes unless interrupted
QUICK = "SELECT 42 AS answer"
#: Longer than any test waits: only the path under test may end a wait.
LONG_WAIT = 120


def _full_memory(make_gateway, limits: dict | None = None, **settings) -> tuple[Gateway, Callable[[], None]]:
    """A gateway whose memory budget is taken whole: the next query waits for room; and how to make room."""
    gw = make_gateway(memory_limit="64MB", memory_budget="128MB", admission_timeout_seconds=LONG_WAIT,
                      limits=PrincipalLimitSettings(**(limits or {})), **settings)
    room = gw.service.memory_budget.admit(128_000_000)
    return gw, room.release


def _full_slots(make_gateway, limits: dict | None = None, **settings) -> tuple[Gateway, Callable[[], None]]:
    """A gateway whose one concurrency slot is taken: the next query waits for it; and how to free it."""
    gw = make_gateway(limits=PrincipalLimitSettings(max_concurrent_queries=1, queue_timeout_seconds=LONG_WAIT,
                                                    **(limits or {})), **settings)
    slot = gw.service.limiter.admit(anonymous(), "demo")  # what the caller (no sign-in) is charged to
    return gw, slot.release


QUEUES = {"memory": _full_memory, "slot": _full_slots}
#: What each queue's errors say the query waited for.
WAITED_FOR = {"memory": "memory", "slot": "a concurrency slot"}


def _queued(gw: Gateway) -> int:
    return gw.service.memory_budget.queued + gw.service.limiter.counts().waiting


@contextmanager
def _waiting(gw: Gateway, sql: str = QUICK, options: flight.FlightCallOptions | None = None
             ) -> Iterator[tuple[flight.FlightInfo, threading.Thread, list[BaseException]]]:
    """A query waiting in a queue: its FlightInfo, the thread reading it, and where its error lands."""
    client = flight.connect(gw.location)
    info = client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(query=sql)))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            client.do_get(info.endpoints[0].ticket, options).read_all()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertions
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert wait_until(lambda: _queued(gw) == 1, 10)
        yield info, worker, errors
    finally:
        worker.join(LONG_WAIT)
        client.close()


def _left(gw: Gateway, worker: threading.Thread, since: float, within: float = 5.0) -> float:
    """The waiting query has left its queue within ``within`` seconds of ``since``; how long it took."""
    worker.join(LONG_WAIT)
    took = time.monotonic() - since
    assert took < within, took
    assert wait_until(lambda: _queued(gw) == 0 and gw.service.waiting_count() == 0, 2)
    return took


@pytest.mark.parametrize("queue", list(QUEUES))
def test_a_waiting_query_ends_at_the_servers_time_limit(make_gateway, queue):
    gw, _ = QUEUES[queue](make_gateway, query_timeout_seconds=1.5)
    started = time.monotonic()
    with _waiting(gw) as (_, worker, errors):
        took = _left(gw, worker, started)
    assert took >= 1.4
    assert errors and isinstance(errors[0], flight.FlightTimedOutError)  # DEADLINE_EXCEEDED
    assert f"time limit (query_timeout=1.5s) while it waited for {WAITED_FOR[queue]}" in str(errors[0])


@pytest.mark.parametrize("queue", list(QUEUES))
def test_a_waiting_query_ends_at_the_callers_lower_time_limit(make_gateway, queue):
    gw, _ = QUEUES[queue](make_gateway, limits={"max_query_seconds": 1})
    started = time.monotonic()
    with _waiting(gw) as (_, worker, errors):
        _left(gw, worker, started)
    assert errors and isinstance(errors[0], flight.FlightTimedOutError)
    assert "the caller's time limit (max_query_seconds=1) while it waited" in str(errors[0])


@pytest.mark.parametrize("queue", list(QUEUES))
def test_the_wait_counts_against_the_querys_time(make_gateway, queue):
    """3 s in all: 2 s waiting, then the query runs and is stopped 1 s later, not 3 s later."""
    gw, free = QUEUES[queue](make_gateway, query_timeout_seconds=3)
    started = time.monotonic()
    with _waiting(gw, SLOW) as (_, worker, errors):
        time.sleep(2 - (time.monotonic() - started))
        free()
        assert wait_until(lambda: gw.service.running_count() == 1, 2)  # admitted: it runs now
        took = _left(gw, worker, started, within=4.5)
    assert took >= 2.9
    assert errors and isinstance(errors[0], flight.FlightTimedOutError)
    assert "query_timeout=3s) and was stopped" in str(errors[0])


@pytest.mark.parametrize("queue", list(QUEUES))
def test_cancel_flight_info_reaches_a_waiting_query(make_gateway, queue):
    gw, _ = QUEUES[queue](make_gateway)
    with _waiting(gw) as (info, worker, errors):
        started = time.monotonic()
        assert _cancel_flight_info_status(gw, info) == 1  # CANCELLED
        _left(gw, worker, started)
    assert errors and isinstance(errors[0], flight.FlightCancelledError)
    assert f"cancelled while it waited for {WAITED_FOR[queue]}" in str(errors[0])


@pytest.mark.parametrize("queue", list(QUEUES))
def test_a_waiting_query_whose_client_deadline_passes_leaves_at_once(make_gateway, queue):
    gw, _ = QUEUES[queue](make_gateway)
    started = time.monotonic()
    with _waiting(gw, options=flight.FlightCallOptions(timeout=1)) as (_, worker, errors):
        _left(gw, worker, started)
    assert errors and isinstance(errors[0], flight.FlightTimedOutError)


@pytest.mark.parametrize("queue", list(QUEUES))
def test_a_drain_refuses_the_waiting_queries_at_once(make_gateway, queue):
    gw, _ = QUEUES[queue](make_gateway)
    with _waiting(gw) as (_, worker, errors):
        started = time.monotonic()
        gw.server.begin_drain("SIGTERM received")
        _left(gw, worker, started)
    assert errors and isinstance(errors[0], flight.FlightUnavailableError)  # retryable
    assert "shutting down (SIGTERM received)" in str(errors[0])


@pytest.mark.parametrize("queue", list(QUEUES))
def test_stopping_the_gateway_does_not_wait_for_the_waiting_queries(make_gateway, queue):
    gw, free = QUEUES[queue](make_gateway)
    try:
        with _waiting(gw) as (_, worker, errors):
            started = time.monotonic()
            assert gw.shutdown(wait_seconds=10)
            _left(gw, worker, started)
        assert errors and isinstance(errors[0], flight.FlightUnavailableError)
        assert "the gateway is stopping" in str(errors[0])
    finally:
        free()


@pytest.mark.parametrize("queue", list(QUEUES))
def test_a_cancel_sent_to_another_replica_reaches_a_query_waiting_here(make_gateway, tmp_path, queue):
    """A cancel another replica passes on through the shared catalog stops a query still waiting in a queue here.

    The replica that received the cancel answers CANCELLED when no replica answers in time (nothing runs the query
    yet); the query waiting here must then leave its queue, not start once a slot or memory frees, however late.
    """
    from nexus_flight.catalog.cancel_requests import CatalogCancels
    from nexus_flight.catalog.store import CatalogStore
    from nexus_flight.server.flight import protocol
    from nexus_flight.server.query.remote_cancel import RemoteCancel

    store = CatalogStore(data_dir=tmp_path / "catalog")
    try:
        gw, free = QUEUES[queue](make_gateway)
        gw.service.share_cancels(CatalogCancels(store))
        elsewhere = RemoteCancel(CatalogCancels(store), list, lambda key: False)  # the replica asked to cancel
        with _waiting(gw) as (info, worker, errors):
            handle = protocol.unpack_any(info.endpoints[0].ticket.ticket).statement_handle
            started = time.monotonic()
            assert elsewhere.ask([handle])  # CANCELLED
            _left(gw, worker, started)
            assert errors and isinstance(errors[0], flight.FlightCancelledError), errors
        free()
    finally:
        store.close()
