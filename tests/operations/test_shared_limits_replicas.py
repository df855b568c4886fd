"""A principal's rate and concurrency limits hold across three ``nexus-flight serve`` replicas sharing one catalog.

Three served processes on one SQLite catalog file (what the catalog's rows are on PostgreSQL is proven by
``tests/catalog/test_shared_limits.py``, processes racing on both), each client talking to a given replica
through pyarrow.flight. Without shared counts each replica would admit a principal's whole budget again.
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
from tests.operations.serving import serve_many, share_demo
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
}


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, demo_data_dir):
    data_dir = share_demo(tmp_path_factory.mktemp("shared-limits") / "data", demo_data_dir)
    config = data_dir.parent / "gateway.toml"
    config.write_text(f"[server]\nslot_lease_seconds = {LEASE_SECONDS}\n[server.auth]\nenabled = true\n")
    with module_store(data_dir) as store:
        add_grant(store, "analyst", "demo")
        for name, limits in LIMITED.items():
            add_user(store, name, BOB_PASSWORD, roles=["analyst"], limits=limits)
        started = serve_many(3, data_dir, "--config", str(config))
        try:
            yield started
        finally:
            for served in started:
                served.stop()


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


def test_a_query_queued_on_one_replica_starts_when_another_replica_gives_the_slot_back(replicas, germany):
    (a, a_opt), (b, b_opt) = (_signed_in(served, "queued") for served in replicas[:2])
    held = _query(a, a_opt, ENDLESS)
    held.read_chunk()
    answer: list = []
    waiting = threading.Thread(target=lambda: answer.append(_query(b, b_opt).read_all().to_pylist()))
    waiting.start()
    time.sleep(1.0)
    assert waiting.is_alive() and not answer  # queued on B behind A's query
    freed = time.monotonic()
    held.cancel()
    waiting.join(10)
    assert answer == [germany]
    assert time.monotonic() - freed < 3.0  # B asks the catalog every 0.25 s


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
