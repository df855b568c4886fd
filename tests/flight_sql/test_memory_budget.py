"""The memory budget holds on every path a query can take: reservations come back, waiting queries can leave.

Each way a query ends (read to the end, failing before or after its first batch, a client that goes away, a
cancel, a deadline, a time limit, a prepared statement, a closed connection) gives its reservation back; a query
waiting for room leaves the queue at once on every path (``test_admission_waits.py``); idle DuckDB instances
count in the budget and give way to running queries. Every check is against the served gateway's own budget,
through real Flight SQL clients.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.core.settings import ServerSettings
from nexus_flight.core.sizes import parse_size
from nexus_flight.server.app.gateway import Gateway, memory_budget_bytes
from nexus_flight.server.flight.protocol import flight as fpb
from nexus_flight.server.query.principal import Principal
from nexus_flight.server.query.service import QueryRequest, QueryRun
from tests.support import flightsql_raw as raw
from tests.support.services import wait_until

SLOW = "SELECT count(*) FROM range(100000000000) a"  # runs for minutes unless interrupted
LONG_STREAM = "SELECT * FROM range(1000000000) t(i)"  # a stream far longer than any test reads
#: Rows wide enough that the result cap is far beyond what gRPC buffers: a client that never reads holds it running.
WIDE_STREAM = "SELECT i, repeat('x', 2000) AS pad FROM range(1000000000) t(i)"
MB64 = parse_size("64MB")


@pytest.fixture(scope="module")
def budgeted(demo_data_dir):
    """A gateway whose budget admits many 64 MB queries, and whose results stop at 200,000 rows."""
    settings = ServerSettings(port=0, data_dir=demo_data_dir, memory_limit="64MB", memory_budget="1GB",
                              max_result_rows=200_000)
    gw = Gateway(settings).start()
    yield gw
    gw.shutdown()


def _ticket(client: flight.FlightClient, sql: str) -> tuple[flight.FlightInfo, flight.Ticket]:
    info = client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(query=sql)))
    return info, info.endpoints[0].ticket


def _success(gw: Gateway) -> None:
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM nation")
        assert cur.fetchall() == [(25,)]


def _error_before_the_first_batch(gw: Gateway) -> None:
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(flightsql.Error, match="Could not convert string"):
            cur.execute("SELECT CAST(n_name AS INTEGER) FROM nation")
            cur.fetchall()


def _error_mid_stream(gw: Gateway) -> None:
    with flight.connect(gw.location) as client:
        reader = client.do_get(_ticket(client, LONG_STREAM)[1])
        reader.read_chunk()  # batches went out before the result cap stops the stream
        with pytest.raises(pa.ArrowInvalid, match="max_result_rows=200000"):  # INVALID_ARGUMENT
            reader.read_all()


def _client_goes_away_mid_stream(gw: Gateway) -> None:
    client = flight.connect(gw.location)
    reader = client.do_get(_ticket(client, LONG_STREAM)[1])
    reader.read_chunk()
    reader.cancel()
    client.close()


def _client_never_reads(gw: Gateway) -> None:
    client = flight.connect(gw.location)
    client.do_get(_ticket(client, WIDE_STREAM)[1])
    assert wait_until(lambda: gw.service.running_count() == 1)
    client.close()


def _cancel_flight_info(gw: Gateway) -> None:
    client = flight.connect(gw.location)
    info, ticket = _ticket(client, SLOW)
    errors: list[BaseException] = []
    worker = threading.Thread(target=_read_into, args=(client, ticket, errors))
    worker.start()
    assert wait_until(lambda: gw.service.running_count() == 1)
    assert _cancel_flight_info_status(gw, info) == 1  # CANCELLED
    worker.join(15)
    assert errors and isinstance(errors[0], flight.FlightCancelledError)
    client.close()


def _client_deadline(gw: Gateway) -> None:
    with flight.connect(gw.location) as client:
        with pytest.raises(flight.FlightTimedOutError):
            client.do_get(_ticket(client, SLOW)[1], flight.FlightCallOptions(timeout=0.5)).read_all()


def _server_time_limit(gw: Gateway) -> None:
    limits = gw.service.limits
    gw.service.limits = dataclasses.replace(limits, timeout_seconds=0.5)  # as a reload would set it
    try:
        with flight.connect(gw.location) as client, pytest.raises(flight.FlightTimedOutError, match="0.5"):
            client.do_get(_ticket(client, SLOW)[1]).read_all()
    finally:
        gw.service.limits = limits


def _prepared_statement(gw: Gateway) -> None:
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT n_name FROM nation WHERE n_nationkey = ?", (7,))
        assert cur.fetchall() == [("GERMANY",)]


def _connection_closed_mid_stream(gw: Gateway) -> None:
    conn = flightsql.connect(gw.location, autocommit=True)
    cur = conn.cursor()
    cur.execute(LONG_STREAM)
    assert cur.fetch_record_batch().read_next_batch().num_rows > 0
    cur.close()
    conn.close()


def _cancel_flight_info_status(gw: Gateway, info: flight.FlightInfo) -> int:
    """CancelFlightInfo from another connection; the status the server answers."""
    with flight.connect(gw.location) as other:
        request = fpb.CancelFlightInfoRequest(info=info.serialize())
        [result] = other.do_action(flight.Action("CancelFlightInfo", request.SerializeToString()))
    status = fpb.CancelFlightInfoResult()
    status.ParseFromString(result.body.to_pybytes())
    return status.status


def _read_into(client: flight.FlightClient, ticket: flight.Ticket, errors: list[BaseException]) -> None:
    try:
        client.do_get(ticket).read_all()
    except BaseException as exc:  # noqa: BLE001 - collected for the assertions
        errors.append(exc)


PATHS: dict[str, Callable[[Gateway], None]] = {
    "success": _success,
    "error before the first batch": _error_before_the_first_batch,
    "error mid-stream": _error_mid_stream,
    "client goes away mid-stream": _client_goes_away_mid_stream,
    "client never reads": _client_never_reads,
    "CancelFlightInfo": _cancel_flight_info,
    "client deadline": _client_deadline,
    "server time limit": _server_time_limit,
    "prepared statement": _prepared_statement,
    "connection closed mid-stream": _connection_closed_mid_stream,
}


@pytest.mark.parametrize("path", list(PATHS))
def test_every_way_a_query_ends_gives_its_reservation_back(budgeted, path):
    budget = budgeted.service.memory_budget
    assert budget.used == 0
    PATHS[path](budgeted)
    assert wait_until(lambda: budget.used == 0 and budgeted.service.running_count() == 0, 15), budget.used
    assert budget.queued == 0
    assert budget.used + budget.idle <= budget.total
    _success(budgeted)  # and the gateway serves on


def test_idle_duckdb_instances_count_in_the_budget_and_give_way_to_running_queries(make_gateway):
    gw = make_gateway(memory_limit="64MB", memory_budget="128MB")
    budget = gw.service.memory_budget
    budget.idle_memory.trim(budget.idle)  # other gateways of this test process keep theirs: start from none
    _success(gw)
    assert wait_until(lambda: budget.used == 0)
    # The finished query's instance waits for the next query, counted at what DuckDB says it holds.
    assert 0 < budget.idle == _held_by_idle_instances(gw) < MB64
    with flight.connect(gw.location) as client:
        readers = []
        for expected_idle in (0, 0):  # the first reuses the idle instance, the second opens one
            reader = client.do_get(_ticket(client, LONG_STREAM)[1])
            reader.read_chunk()
            readers.append(reader)
            assert (budget.used, budget.idle) == (len(readers) * MB64, expected_idle)
        for reader in readers:
            reader.cancel()
    assert wait_until(lambda: budget.used == 0 and _idle_count(gw) == 2, 15)
    held = budget.idle
    assert 0 < held == _held_by_idle_instances(gw) < 2 * MB64
    assert f"nexus_memory_budget_idle_bytes {float(held)}".encode() in gw.metrics.text()
    # A caller whose limit leaves no room for what the idle instances hold: they are closed to make it.
    budget.resize(96 * 2**20 + held - 1, budget.queue_size, budget.timeout_seconds)  # as a reload would
    principal = Principal("big", limits={"memory_limit_mb": 96})
    prepared = gw.service.plan(QueryRequest("SELECT current_setting('memory_limit') AS m", principal=principal))
    running = gw.service.open(QueryRun(prepared.plan, prepared.dataset_schema, principal))
    try:
        [batch] = list(running)
        # The larger idle instance was closed (largest first); the other still fits beside the running query.
        assert budget.used == 96 * 2**20 and _idle_count(gw) == 1
        assert budget.used + budget.idle <= budget.total
        with duckdb.connect(config={"memory_limit": f"{int(96 * 2**20 * 0.8)}B"}) as con:  # the engine's own view
            expected = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        assert batch.column("m").to_pylist() == [expected]
    finally:
        running.finish()
    assert budget.used == 0 and budget.used + budget.idle <= budget.total


def _idle_instances(gw: Gateway) -> list:
    engine = gw.service.sources.backend("demo")._engine
    return [instance for pool in engine._idle.values() for instance in pool]


def _idle_count(gw: Gateway) -> int:
    return len(_idle_instances(gw))


def _held_by_idle_instances(gw: Gateway) -> int:
    """DuckDB's own count of the memory each idle instance holds, asked of the instance itself."""
    return sum(instance.db.execute("SELECT coalesce(sum(memory_usage_bytes), 0)::BIGINT FROM duckdb_memory()")
               .fetchone()[0] for instance in _idle_instances(gw))


def test_the_budget_is_on_by_default_at_three_quarters_of_the_process_ceiling():
    assert memory_budget_bytes(ServerSettings()) == parse_size("4GB") * 3 // 4
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert memory_budget_bytes(ServerSettings(process_memory_limit="none")) == machine * 3 // 4
    assert memory_budget_bytes(ServerSettings(memory_budget="none")) is None
