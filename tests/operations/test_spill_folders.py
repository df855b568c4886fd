"""Spill files of a gateway killed mid-query: removed by the next start, never those of a gateway still running."""

from __future__ import annotations

import signal
import threading

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import pytest

from nexus_flight.backends.spill_guard import disk_use
from tests.operations.serving import serve, serve_many, wait_for

#: Grouping 2M distinct strings under a 40 MB limit: DuckDB spills for seconds (tests/flight_sql/test_memory_limits).
HEAVY = "SELECT count(*) AS n FROM (SELECT s, count(*) AS c FROM wide.main.t GROUP BY s) WHERE c = 1"


@pytest.fixture
def wide_config(tmp_path):
    db = tmp_path / "wide.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(2000000)")
    config = tmp_path / "gateway.toml"
    config.write_text(f'[[sources]]\nname = "wide"\ntype = "duckdb"\n'
                      f'options = {{ path = "{db}", memory_limit = "40MB", threads = 1 }}\n')
    return config


def _answer(location: str, sql: str) -> list[tuple]:
    with flightsql.connect(location, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _instance_bases(spill) -> set:
    """The base database file of every DuckDB query instance with a folder under ``spill``."""
    return set(spill.rglob("nexus_query_base*.duckdb"))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # ADBC's cursor of the killed call
def test_a_killed_gateways_spill_goes_at_the_next_start_and_a_running_ones_stays(tmp_path, wide_config):
    data = tmp_path / "data"
    spill = data / "spill"
    killed, running = serve_many(2, data, "--no-demo", "--config", str(wide_config))
    try:
        assert _answer(running.location, "SELECT count(*) FROM wide.main.t WHERE i < 10") == [(10,)]
        kept = _instance_bases(spill)  # the running gateway's idle instance
        assert len(kept) == 1

        def heavy() -> None:
            try:
                _answer(killed.location, HEAVY)
            except flightsql.Error:  # the server dies under it
                pass

        client = threading.Thread(target=heavy, daemon=True)
        client.start()
        wait_for(lambda: any(p.name.startswith("duckdb_temp_storage") for p in spill.rglob("*.tmp")), 60)
        wait_for(lambda: disk_use(str(spill)) > 4 * 2**20, 60)
        killed.signal(signal.SIGKILL)
        killed.wait(10)
        client.join(30)
        left = disk_use(str(spill))

        restarted = serve(data, "--no-demo", "--config", str(wide_config))
        try:
            assert kept <= _instance_bases(spill)  # a running gateway's folders are not touched
            assert disk_use(str(spill)) < left - 4 * 2**20, (disk_use(str(spill)), left)  # the dead one's are gone
            assert any("left by gateways that stopped without closing" in line for line in restarted.err)
            for served in (running, restarted):  # both serve, the survivor on the instance it kept
                assert _answer(served.location, "SELECT count(*) FROM wide.main.t WHERE i < 10") == [(10,)]
        finally:
            restarted.signal(signal.SIGTERM)
            restarted.wait(30)
    finally:
        for served in (killed, running):
            served.stop()


def test_a_gateway_that_stops_cleanly_leaves_no_folder(tmp_path, wide_config):
    data = tmp_path / "data"
    served = serve(data, "--no-demo", "--config", str(wide_config))
    try:
        assert _answer(served.location, "SELECT count(*) FROM wide.main.t WHERE i < 10") == [(10,)]
        assert len(_instance_bases(data / "spill")) == 1
    finally:
        served.signal(signal.SIGTERM)
        assert served.wait(30) == 0
    assert list((data / "spill").iterdir()) == []
