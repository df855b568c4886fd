"""Cancel, deadlines, server timeouts and concurrency: the engine stops, the server keeps serving."""

from __future__ import annotations

import threading
import time

import duckdb
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.server.flight.protocol import flight as fpb
from tests.support import flightsql_raw as raw
from tests.support.held_queries import hold_after_admission, read_ticket_in_background
from tests.support.services import wait_until

SLOW = "SELECT count(*) FROM range(100000000000) a"  # runs for minutes unless interrupted


def _expect_failure(client, ticket, options=None):
    try:
        client.do_get(ticket, options).read_all()
    except flight.FlightError:
        return
    raise AssertionError("the slow query finished instead of being stopped")


def test_cancel_flight_info_interrupts_duckdb(gateway):
    client = flight.connect(gateway.location)
    info = client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(query=SLOW)))
    worker, outcome = read_ticket_in_background(client, info.endpoints[0].ticket)
    assert wait_until(lambda: gateway.service.running_count() == 1)
    with flight.connect(gateway.location) as other:
        request = fpb.CancelFlightInfoRequest(info=info.serialize())
        [result] = other.do_action(flight.Action("CancelFlightInfo", request.SerializeToString()))
        status = fpb.CancelFlightInfoResult()
        status.ParseFromString(result.body.to_pybytes())
        assert status.status == 1  # CANCELLED
        worker.join(10)
        assert not worker.is_alive()
        assert isinstance(outcome.get("error"), flight.FlightCancelledError | flight.FlightServerError), outcome
        assert wait_until(lambda: gateway.service.running_count() == 0)
        # the server keeps serving
        _, table = raw.info_and_table(other, pb.CommandStatementQuery(query="SELECT 42 AS x"))
        assert table.column("x").to_pylist() == [42]
    client.close()


def test_deprecated_cancel_query_action(gateway):
    client = flight.connect(gateway.location)
    info = client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(query=SLOW)))
    worker = threading.Thread(target=_expect_failure, args=(client, info.endpoints[0].ticket))
    worker.start()
    assert wait_until(lambda: gateway.service.running_count() == 1)
    with flight.connect(gateway.location) as other:
        body = raw.pack(pb.ActionCancelQueryRequest(info=info.serialize()))
        [result] = other.do_action(flight.Action("CancelQuery", body))
        assert raw.unpack(result.body.to_pybytes(), pb.ActionCancelQueryResult).result == 1
    worker.join(10)
    assert not worker.is_alive()
    client.close()


def test_cancel_of_a_finished_query_is_not_cancellable(gateway):
    with flight.connect(gateway.location) as client:
        info, _ = raw.info_and_table(client, pb.CommandStatementQuery(query="SELECT 1"))
        request = fpb.CancelFlightInfoRequest(info=info.serialize())
        [result] = client.do_action(flight.Action("CancelFlightInfo", request.SerializeToString()))
        status = fpb.CancelFlightInfoResult()
        status.ParseFromString(result.body.to_pybytes())
        assert status.status == 3  # NOT_CANCELLABLE


def test_client_deadline_stops_the_query(gateway):
    with flight.connect(gateway.location) as client:
        info = client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(query=SLOW)))
        started = time.monotonic()
        with pytest.raises(flight.FlightTimedOutError):
            client.do_get(info.endpoints[0].ticket, flight.FlightCallOptions(timeout=0.5)).read_all()
        assert time.monotonic() - started < 5
    assert wait_until(lambda: gateway.service.running_count() == 0, 15)


def test_client_disconnect_mid_stream_releases_the_query(gateway):
    client = flight.connect(gateway.location)
    info = client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(
        query="SELECT * FROM range(1000000000) t(i)")))
    reader = client.do_get(info.endpoints[0].ticket)
    reader.read_chunk()
    assert gateway.service.running_count() == 1
    reader.cancel()
    client.close()
    assert wait_until(lambda: gateway.service.running_count() == 0, 15)


def test_server_side_timeout(make_gateway):
    gw = make_gateway(query_timeout_seconds=0.5)
    events = []
    gw.service.observers.append(events.append)
    with flight.connect(gw.location) as client:
        info = client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(query=SLOW)))
        started = time.monotonic()
        with pytest.raises(flight.FlightError):
            client.do_get(info.endpoints[0].ticket).read_all()
        assert time.monotonic() - started < 10
    assert wait_until(lambda: any(e.status != "success" for e in events))


def test_concurrent_queries_run_in_parallel(gateway):
    """Four slow-ish queries are in their engine at the same time: no global lock serialises them.

    Proven by the service's own count of running queries, not by timing (a loaded machine makes any time bound
    flaky); the answers are DuckDB's own.
    """
    query = "SELECT sum(a.i * b.i) AS s FROM range(6000) a(i), range(6000) b(i)"
    results, most = [], [0]
    done = threading.Event()

    def run():
        with flight.connect(gateway.location) as c:
            results.append(raw.info_and_table(c, pb.CommandStatementQuery(query=query))[1])

    def sample():
        while not done.is_set():
            most[0] = max(most[0], gateway.service.running_count())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    sampler.join()
    expected = duckdb.sql(query).fetchone()[0]
    assert len(results) == 4 and all(r.column("s").to_pylist() == [expected] for r in results)
    assert most[0] == 4


def test_slow_query_does_not_block_others(gateway):
    client = flight.connect(gateway.location)
    info = client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(query=SLOW)))
    worker = threading.Thread(target=_expect_failure,
                              args=(client, info.endpoints[0].ticket, flight.FlightCallOptions(timeout=3)))
    worker.start()
    assert wait_until(lambda: gateway.service.running_count() >= 1)
    with flight.connect(gateway.location) as other:
        started = time.monotonic()
        _, table = raw.info_and_table(other, pb.CommandStatementQuery(query="SELECT count(*) AS n FROM nation"))
        assert table.column("n").to_pylist() == [25]
        assert time.monotonic() - started < 2
        # Shown: stop the slow one now instead of at its client's deadline (the safety net, 3 s).
        request = fpb.CancelFlightInfoRequest(info=info.serialize())
        list(other.do_action(flight.Action("CancelFlightInfo", request.SerializeToString())))
    worker.join(10)
    client.close()


def test_history_event_per_query(make_gateway):
    gw = make_gateway()
    events = []
    gw.service.observers.append(events.append)
    with flight.connect(gw.location) as client:
        options = flight.FlightCallOptions(headers=[(b"x-correlation-id", b"corr-123")])
        raw.info_and_table(client, pb.CommandStatementQuery(query="SELECT 1 AS one"), options)
        with pytest.raises(flight.FlightUnauthorizedError):
            client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(query="DROP TABLE nation")))
    assert wait_until(lambda: len(events) == 2)
    ok, refused = events
    assert ok.status == "success" and ok.correlation_id == "corr-123" and ok.source == "demo"
    assert {"validate", "plan", "connect", "execute", "first_batch", "stream", "total"} <= set(ok.timings_ms)
    assert ok.rows == 1 and ok.bytes > 0
    assert refused.status == "rejected" and refused.error_code == "PERMISSION_DENIED"
    assert pa.__version__  # keep the import used


def _read_until_error(reader) -> Exception:
    try:
        while True:
            reader.read_chunk()
    except StopIteration:
        raise AssertionError("the stream ended instead of being stopped") from None
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc


def test_cancel_mid_stream_reaches_the_client_as_cancelled(gateway):
    with flight.connect(gateway.location) as client, flight.connect(gateway.location) as other:
        info = client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(
            query="SELECT i, i * 2 AS j FROM range(10000000000) t(i)")))
        reader = client.do_get(info.endpoints[0].ticket)
        reader.read_chunk()
        request = fpb.CancelFlightInfoRequest(info=info.serialize())
        list(other.do_action(flight.Action("CancelFlightInfo", request.SerializeToString())))
        error = _read_until_error(reader)
        assert isinstance(error, flight.FlightCancelledError), error
        assert "Traceback" not in str(error)
    assert wait_until(lambda: gateway.service.running_count() == 0)


def test_server_timeout_mid_stream_is_deadline_exceeded(make_gateway):
    gw = make_gateway(query_timeout_seconds=1.0)
    with flight.connect(gw.location) as client:
        info = client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(
            query="SELECT i FROM range(10000000000) t(i)")))
        reader = client.do_get(info.endpoints[0].ticket)
        reader.read_chunk()
        time.sleep(1.5)
        error = _read_until_error(reader)
        assert isinstance(error, flight.FlightTimedOutError), error
        assert "query_timeout=1s" in str(error)


def test_a_cancel_that_arrives_while_the_query_is_being_started_still_stops_it(make_gateway):
    """Between its admission and its stream being registered, a query is still reachable by CancelFlightInfo.

    The real gateway, DuckDB and a cancel from another connection; only the moment is forced: the query's thread
    is held after it was admitted and before its stream is registered (as a busy server's scheduler may hold it
    while the engine opens its cursor), and the cancel lands there. Unstopped, the query would run to the time
    limit.
    """
    gw = make_gateway(query_timeout_seconds=60)
    budget = gw.service.memory_budget
    held, cancel_sent = hold_after_admission(gw)
    client = flight.connect(gw.location)
    info = client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(query=SLOW)))
    worker, outcome = read_ticket_in_background(client, info.endpoints[0].ticket)
    try:
        assert held.wait(10)
        with flight.connect(gw.location) as other:
            request = fpb.CancelFlightInfoRequest(info=info.serialize())
            [result] = other.do_action(flight.Action("CancelFlightInfo", request.SerializeToString()))
        cancel_sent.set()
        status = fpb.CancelFlightInfoResult()
        status.ParseFromString(result.body.to_pybytes())
        assert status.status == 1  # CANCELLED: the query was there to be cancelled
        worker.join(10)
        assert not worker.is_alive(), "the cancel was lost: the query still runs"
        assert isinstance(outcome.get("error"), flight.FlightCancelledError), outcome
    finally:
        cancel_sent.set()
        while worker.is_alive():  # without the fix: end the runaway query before the gateway stops
            gw.service.cancel_all()
            worker.join(0.1)
        client.close()
    assert wait_until(lambda: gw.service.running_count() == 0 and budget.used == 0)
