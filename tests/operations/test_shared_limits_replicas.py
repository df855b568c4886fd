"""A principal's rate and concurrency limits hold across three ``nexus-flight serve`` replicas sharing one catalog.

Three served processes on one SQLite catalog file (what the catalog's rows are on PostgreSQL is proven by
``tests/catalog/test_shared_limits.py``, processes racing on both), each client talking to a given replica
through pyarrow.flight. Without shared counts each replica would admit a principal's whole budget again. A
fourth process on the same catalog runs with ``limit_counts = "process"``: it counts alone.
"""

from __future__ import annotations

import shutil
import threading
import time

import duckdb
import pyarrow.flight as flight
import pytest

from nexus_flight.catalog.grants import add_grant
from nexus_flight.catalog.users import add_user
from tests.operations.serving import serve, serve_many, share_demo
from tests.security.conftest import BOB_PASSWORD, bearer, module_store, sign_in
from tests.support import flightsql_raw as raw

pytestmark = pytest.mark.timeout(120)

SMALL = "SELECT n_name FROM nation WHERE n_nationkey = 7"
ENDLESS = "SELECT range AS a, repeat('x', 100) AS c FROM range(100000000)"
#: The slots' lease the replicas run with: a killed replica's slots free within it.
LEASE_SECONDS = 3.0
#: rated: a token a second, three at once.
RATE_PER_MINUTE, BURST = 60, 3
LIMITED = {
    "rated": {"queries_per_minute": RATE_PER_MINUTE, "query_burst": BURST},
    "single": {"max_concurrent_queries": 1},
    "queued": {"max_concurrent_queries": 1, "queue_timeout_seconds": 20},
    "killed": {"max_concurrent_queries": 1},
    "paid": {"queries_per_minute": 1, "query_burst": 2},
    "queue-one": {"max_concurrent_queries": 1, "queue_timeout_seconds": 20},
    "alone": {"max_concurrent_queries": 1},
    "warm": {},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory, demo_data_dir):
    """Three replicas counting limits in the catalog, and a fourth on the same catalog counting in its process."""
    data_dir = share_demo(tmp_path_factory.mktemp("shared-limits") / "data", demo_data_dir)
    config, lone = data_dir.parent / "gateway.toml", data_dir.parent / "lone.toml"
    config.write_text(f"[server]\nslot_lease_seconds = {LEASE_SECONDS}\n[server.auth]\nenabled = true\n")
    lone.write_text('[server]\nlimit_counts = "process"\n[server.auth]\nenabled = true\n')
    with module_store(data_dir) as store:
        add_grant(store, "analyst", "demo")
        for name, limits in LIMITED.items():
            add_user(store, name, BOB_PASSWORD, roles=["analyst"], limits=limits)
        started = serve_many(3, data_dir, "--config", str(config))
        try:
            started.append(serve(data_dir, "--config", str(lone)))
            for one in started:  # a replica's first query opens what later ones reuse: the timed tests time these
                _query(*_signed_in(one, "warm")).read_all()
            yield started
        finally:
            for one in started:
                one.stop()


@pytest.fixture(scope="module")
def replicas(served):
    return served[:3]


@pytest.fixture(scope="module")
def germany(demo_data_dir, tmp_path_factory) -> list[dict]:
    """SMALL's answer from DuckDB itself, on a copy (this process may hold the demo file open otherwise configured)."""
    copy = tmp_path_factory.mktemp("reference") / "demo.duckdb"
    shutil.copyfile(next(demo_data_dir.glob("tpch_*.duckdb")), copy)
    with duckdb.connect(str(copy), read_only=True) as conn:
        return conn.execute(SMALL).to_arrow_table().to_pylist()


def _signed_in(served, user: str) -> tuple[flight.FlightClient, flight.FlightCallOptions]:
    client = flight.FlightClient(served.location)
    return client, bearer(sign_in(client, user, BOB_PASSWORD))


def _query(client: flight.FlightClient, options: flight.FlightCallOptions, sql: str = SMALL):
    info = client.get_flight_info(raw.descriptor(raw.pb.CommandStatementQuery(query=sql)), options)
    return client.do_get(info.endpoints[0].ticket, options)


def test_the_rate_of_a_principal_is_one_budget_across_the_replicas(replicas, germany):
    """Queries sent without pause through three replicas in turn: the burst plus a token a second, in all."""
    clients = [_signed_in(served, "rated") for served in replicas]
    admitted = [0, 0, 0]
    refusals = []
    started = time.monotonic()
    while time.monotonic() - started < 4.0:
        for i, (client, options) in enumerate(clients):
            try:
                assert _query(client, options).read_all().to_pylist() == germany
                admitted[i] += 1
            except flight.FlightUnavailableError as exc:
                refusals.append(str(exc))
    elapsed = time.monotonic() - started
    budget = BURST + RATE_PER_MINUTE / 60 * elapsed
    assert budget - 2 <= sum(admitted) <= budget + 1, (admitted, elapsed)  # per replica it would be 3× that
    assert all(admitted), admitted
    assert refusals and all("queries_per_minute=60, query_burst=3" in text for text in refusals)


def test_a_principal_running_its_one_query_on_one_replica_is_refused_on_the_others(replicas, germany):
    (a, a_opt), (b, b_opt), (c, c_opt) = (_signed_in(served, "single") for served in replicas)
    held = _query(a, a_opt, ENDLESS)
    held.read_chunk()
    for client, options in ((b, b_opt), (c, c_opt)):
        with pytest.raises(flight.FlightUnavailableError, match=r"already runs 1 queries \(max_concurrent_queries=1\)"):
            _query(client, options).read_all()
    assert held.read_chunk().data.num_rows > 0  # the running query goes on
    held.cancel()
    deadline = time.monotonic() + 10
    while True:  # the slot is given back once replica A has seen the stream end
        try:
            assert _query(b, b_opt).read_all().to_pylist() == germany
            break
        except flight.FlightUnavailableError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def _queued_behind(replicas, user: str):
    """A query of ``user`` running on the first replica, and one of theirs queued behind it on the second.

    Returns:
        The running query's stream, the thread waiting on the second replica, and where its answer goes.

    """
    (a, a_opt), (b, b_opt) = (_signed_in(served, user) for served in replicas[:2])
    held = _query(a, a_opt, ENDLESS)
    held.read_chunk()
    answer: list = []
    waiting = threading.Thread(target=lambda: answer.append(_query(b, b_opt).read_all().to_pylist()))
    waiting.start()
    time.sleep(1.0)
    assert waiting.is_alive() and not answer  # queued on B behind A's query
    return held, waiting, answer


def test_a_query_queued_on_one_replica_starts_when_another_replica_gives_the_slot_back(replicas, germany):
    held, waiting, answer = _queued_behind(replicas, "queued")
    freed = time.monotonic()
    held.cancel()
    waiting.join(10)
    assert answer == [germany]
    assert time.monotonic() - freed < 3.0  # B asks the catalog every 0.25 s


def test_a_query_planned_on_one_replica_and_fetched_on_another_takes_one_token(replicas, germany):
    """Two tokens (a token a minute): two queries whose calls land on different replicas, then nothing more.

    A statement planned on A and fetched on B; a statement prepared on A, executed on B and fetched on C. Each
    ticket carries its planning's credit, spent once in the catalog wherever the ticket is redeemed.
    """
    (a, a_opt), (b, b_opt), (c, c_opt) = (_signed_in(one, "paid") for one in replicas)
    info = a.get_flight_info(raw.descriptor(raw.pb.CommandStatementQuery(query=SMALL)), a_opt)
    assert b.do_get(info.endpoints[0].ticket, b_opt).read_all().to_pylist() == germany
    prepared = raw.prepare(a, SMALL, a_opt)
    executed = b.get_flight_info(raw.descriptor(raw.pb.CommandPreparedStatementQuery(
        prepared_statement_handle=prepared.prepared_statement_handle)), b_opt)
    assert c.do_get(executed.endpoints[0].ticket, c_opt).read_all().to_pylist() == germany
    # Both tokens are spent, and so are both credits: a ticket redeemed again pays, wherever it lands.
    for client, options, ticket in ((a, a_opt, info.endpoints[0].ticket), (c, c_opt, info.endpoints[0].ticket),
                                    (a, a_opt, executed.endpoints[0].ticket)):
        with pytest.raises(flight.FlightUnavailableError, match="queries_per_minute=1, query_burst=2"):
            client.do_get(ticket, options).read_all()
    with pytest.raises(flight.FlightUnavailableError, match="queries_per_minute=1, query_burst=2"):
        _query(c, c_opt)


def test_the_queue_of_a_principal_is_capped_across_the_replicas(replicas, germany):
    """One query running, one waiting on B: a query on C finds the queue full and is refused at once."""
    held, waiting, answer = _queued_behind(replicas, "queue-one")
    c, c_opt = _signed_in(replicas[2], "queue-one")
    started = time.monotonic()
    with pytest.raises(flight.FlightUnavailableError, match=r"already runs 1 queries \(max_concurrent_queries=1\);"):
        _query(c, c_opt).read_all()
    assert time.monotonic() - started < 2.0  # refused, not queued (on its own, C's queue was empty)
    held.cancel()
    waiting.join(10)
    assert answer == [germany]


def test_a_gateway_counting_in_its_process_does_not_share_its_counts(served, germany):
    """``limit_counts = "process"``: its principal's running query is not the replicas' and theirs is not its."""
    shared, lone = served[0], served[3]
    (a, a_opt), (d, d_opt) = _signed_in(shared, "alone"), _signed_in(lone, "alone")
    held = _query(a, a_opt, ENDLESS)
    held.read_chunk()
    assert _query(d, d_opt).read_all().to_pylist() == germany  # the one it counts runs nowhere else it knows
    alone = _query(d, d_opt, ENDLESS)
    alone.read_chunk()
    with pytest.raises(flight.FlightUnavailableError, match="max_concurrent_queries=1"):
        _query(d, d_opt).read_all()  # its own count holds
    held.cancel()
    alone.cancel()


def test_a_killed_replicas_slot_frees_within_the_lease(replicas, germany):
    victim = replicas[2]
    (a, a_opt), (c, c_opt) = _signed_in(replicas[0], "killed"), _signed_in(victim, "killed")
    held = _query(c, c_opt, ENDLESS)
    held.read_chunk()
    time.sleep(LEASE_SECONDS + 0.5)  # past the first lease: the replica renews it while the query runs
    with pytest.raises(flight.FlightUnavailableError, match="max_concurrent_queries=1"):
        _query(a, a_opt).read_all()
    victim.process.kill()
    victim.process.wait(10)
    killed = time.monotonic()
    while True:
        try:
            assert _query(a, a_opt).read_all().to_pylist() == germany
            break
        except flight.FlightUnavailableError:
            assert time.monotonic() - killed < LEASE_SECONDS + 1.5, "the killed replica's slot still counts"
            time.sleep(0.1)
    # Not before the lease it had when killed ran out (renewed every third of it: about two thirds were left).
    assert time.monotonic() - killed >= LEASE_SECONDS / 3
