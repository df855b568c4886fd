"""Per-query memory limits, the gateway-wide memory budget and bounded buffering, against real engines.

Each DuckDB-run query has a database instance of its own under its own limit (spilling past it); every family's
stream refuses an engine batch larger than the limit; a memory budget admits queries by their limits through a
bounded queue; a slow reader makes the engine wait. RSS is the gateway's process (the tests serve in-process).
"""

from __future__ import annotations

import threading
import time

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.core.source import SourceSpec
from nexus_flight.server.query.principal import Principal
from nexus_flight.server.query.service import QueryRequest, QueryRun
from tests.support.flightsql_raw import descriptor
from tests.support.memory import PeakRss
from tests.support.services import wait_until


@pytest.fixture(scope="module")
def wide_db(tmp_path_factory):
    """A DuckDB file of 2M rows with a 32-character text column (about 100 MB as Arrow)."""
    path = tmp_path_factory.mktemp("memory") / "wide.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(2000000)")
    return path


def wide_source(path, **options) -> SourceSpec:
    return SourceSpec(name="wide", kind="duckdb", options={"path": str(path), "threads": 1, **options})


def ticket(client: flight.FlightClient, sql: str) -> flight.Ticket:
    info = client.get_flight_info(descriptor(pb.CommandStatementQuery(query=sql)))
    return info.endpoints[0].ticket


def test_a_sort_bigger_than_its_limit_spills_while_another_query_on_the_source_runs(make_gateway, wide_db):
    gw = make_gateway(sources=(wide_source(wide_db, memory_limit="40MB"),), demo_scale=None)
    # Grouping 2M distinct strings holds well over 100 MB: far more than 40 MB, so DuckDB must spill to finish.
    heavy = "SELECT count(*) AS n, max(s) AS hi FROM (SELECT s, count(*) AS c FROM wide.main.t GROUP BY s) WHERE c = 1"
    results: dict[str, object] = {}

    def run_heavy() -> None:
        with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(heavy)
            results["heavy"] = cur.fetchall()

    worker = threading.Thread(target=run_heavy)
    worker.start()
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        while worker.is_alive():  # the other client's queries are served while the sort runs
            cur.execute("SELECT count(*) FROM wide.main.t WHERE i < 10")
            assert cur.fetchall() == [(10,)]
            results["light"] = True
            time.sleep(0.05)
    worker.join()
    with duckdb.connect() as con:  # the engine's own answer, through its own client
        con.execute(f"ATTACH '{wide_db}' AS wide (READ_ONLY)")
        expected = con.execute(heavy).fetchall()
    assert results == {"heavy": expected, "light": True}
    assert expected[0][0] == 2_000_000
    assert gw.service.memory_budget.used == 0


def test_what_cannot_spill_fails_naming_the_limit_and_the_source(make_gateway, wide_db):
    gw = make_gateway(sources=(wide_source(wide_db, memory_limit="40MB"),), demo_scale=None)
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(flightsql.ProgrammingError) as info:
            cur.execute("SELECT list(s || s) AS l FROM wide.main.t")  # a list() aggregate cannot spill
            cur.fetchall()
        message = str(info.value)
        assert "memory_limit=40MB" in message and "source=wide" in message and "INVALID_ARGUMENT" in message
        cur.execute("SELECT count(*) FROM wide.main.t")
        assert cur.fetchall() == [(2_000_000,)]


def test_concurrent_queries_each_hold_their_own_limit(make_gateway, wide_db):
    """Two streams open at once, run for callers with different limits, each see their own DuckDB limit."""
    gw = make_gateway(sources=(wide_source(wide_db),), demo_scale=None)
    service = gw.service
    sql = "SELECT current_setting('memory_limit') AS m, i FROM wide.main.t"
    streams = []
    for megabytes in (64, 96):
        principal = Principal("user", limits={"memory_limit_mb": megabytes})
        prepared = service.plan(QueryRequest(sql, principal=principal))
        streams.append(service.open(QueryRun(prepared.plan, prepared.dataset_schema, principal)))
    try:
        firsts = [next(iter(running)) for running in streams]  # both running at once
        # Each instance's DuckDB gets ENGINE_SHARE (80%) of its query's limit: 51.1 and 76.7 MiB (DuckDB rounds down).
        assert [batch.column("m")[0].as_py() for batch in firsts] == ["51.1 MiB", "76.7 MiB"]
        assert service.memory_budget.used == (64 + 96) * 2**20
    finally:
        for running in streams:
            running.finish()
    assert service.memory_budget.used == 0


def test_the_budget_admits_two_queries_queues_the_rest_and_refuses_them_after_the_timeout(make_gateway, wide_db):
    gw = make_gateway(sources=(wide_source(wide_db),), demo_scale=None, memory_limit="64MB",
                      memory_budget="128MB", admission_queue_size=2, admission_timeout_seconds=2)
    client = flight.connect(gw.location)
    sql = "SELECT i, s FROM wide.main.t"
    held = []
    for _ in range(2):
        reader = client.do_get(ticket(client, sql))
        reader.read_chunk()  # admitted and streaming
        held.append(reader)
    budget = gw.service.memory_budget
    assert budget.used == 128_000_000
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            flight.connect(gw.location).do_get(ticket(client, "SELECT 1 AS one FROM wide.main.t LIMIT 1")).read_all()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertions
            errors.append(exc)

    waiters = [threading.Thread(target=waiter) for _ in range(2)]
    for thread in waiters:
        thread.start()
    assert wait_until(lambda: budget.queued == 2, 5)
    assert b"nexus_queued_queries 2.0" in gw.metrics.text()
    with pytest.raises(flight.FlightUnavailableError, match="admission_queue_size=2"):
        client.do_get(ticket(client, sql)).read_all()  # a fifth: the queue is full, refused at once
    for thread in waiters:
        thread.join(10)
    assert len(errors) == 2
    for error in errors:
        assert isinstance(error, flight.FlightUnavailableError)
        assert "memory_budget=122 MiB" in str(error) and "admission_timeout_seconds=2" in str(error)
    for reader in held:
        reader.cancel()
    assert wait_until(lambda: budget.used == 0, 10)  # released once each, by the abandoned streams too
    counted = client.do_get(ticket(client, "SELECT count(*) AS n FROM wide.main.t")).read_all()
    assert counted["n"].to_pylist() == [2_000_000]
    text = gw.metrics.text()
    assert b"nexus_memory_budget_bytes 1.28e+08" in text and b"nexus_memory_budget_used_bytes 0.0" in text


def test_a_slow_reader_makes_the_engine_wait(make_gateway, wide_db):
    """The result is ~100 MB; a client reading a few batches slowly costs the gateway a few batches, not it."""
    gw = make_gateway(sources=(wide_source(wide_db),), demo_scale=None, batch_rows=16_384)
    client = flight.connect(gw.location)
    with PeakRss() as peak:
        reader = client.do_get(ticket(client, "SELECT i, s, s AS s2 FROM wide.main.t"))
        for _ in range(6):
            reader.read_chunk()
            time.sleep(0.25)
        reader.cancel()
    assert peak.growth < 48 * 2**20, f"RSS grew {peak.growth / 2**20:.0f} MiB"
    assert wait_until(lambda: gw.service.memory_budget.used == 0, 10)


def test_a_postgres_batch_over_the_limit_fails_clearly_without_the_gateway_holding_the_result(
    make_gateway, postgres_server
):
    source = SourceSpec("pgwide", "postgres", postgres_server.options())
    gw = make_gateway(sources=(source,), demo_scale=None, memory_limit="4MB")
    # 20,000 rows of 10 kB: 200 MB, arriving from the driver in batches of several MB.
    sql = "SELECT g, repeat('x', 10000) AS wide FROM generate_series(1, 20000) AS g"
    with PeakRss() as peak, flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(flightsql.ProgrammingError) as info:
            cur.execute(sql)
            cur.fetchall()
    message = str(info.value)
    assert "memory_limit=4 MiB" in message and "source=pgwide" in message and "INVALID_ARGUMENT" in message
    assert peak.growth < 4 * 2**20 + 64 * 2**20, f"RSS grew {peak.growth / 2**20:.0f} MiB"
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 AS one")
        assert cur.fetchall() == [(1,)]
    assert gw.service.memory_budget.used == 0



@pytest.fixture
def spill_settings_restored():
    """A gateway started with its own spill cap sets it for the process: the next tests get the old one back."""
    from nexus_flight.backends import duckdb_engine

    saved = (duckdb_engine._INSTANCES.root, duckdb_engine._INSTANCES.max_size, duckdb_engine._INSTANCES.idle)
    yield
    duckdb_engine.configure_spill(*saved)


def test_a_query_spilling_past_its_disk_cap_is_stopped_naming_the_cap(
    make_gateway, wide_db, tmp_path, spill_settings_restored
):
    """DuckDB's own max_temp_directory_size lets this grouping write hundreds of MB; the gateway's cap holds."""
    from nexus_flight.backends.spill_guard import disk_use

    gw = make_gateway(sources=(wide_source(wide_db, memory_limit="40MB"),), demo_scale=None,
                      data_dir=tmp_path, max_temp_directory_size="24MB")
    heavy = "SELECT count(*) AS n, max(s) AS hi FROM (SELECT s, count(*) AS c FROM wide.main.t GROUP BY s) WHERE c = 1"
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], disk_use(str(tmp_path / "spill")))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
            with pytest.raises(flightsql.Error) as info:
                cur.execute(heavy)
                cur.fetchall()
            cur.execute("SELECT count(*) FROM wide.main.t WHERE i < 10")  # the source goes on serving
            assert cur.fetchall() == [(10,)]
    finally:
        done.set()
        sampler.join()
    message = str(info.value)
    assert "max_temp_directory_size=24MB" in message and "INVALID_ARGUMENT" in message, message
    assert "Traceback" not in message
    assert peak[0] <= 2 * 24 * 2**20 + 64 * 2**20, f"spilled {peak[0] / 2**20:.0f} MB past a 24 MB cap"
    print(f"peak spill {peak[0] / 2**20:.1f} MB")
    assert gw.service.memory_budget.used == 0
