"""Queries answered while the catalog is down, by a gateway stopped before it came back, are in the history.

Real parts: ``nexus-flight serve`` as a process of its own on a PostgreSQL catalog of this module's own, stopped
(a failover) while ADBC clients query the demo; the gateway gets SIGTERM during the outage; the catalog comes back and
the next start, on the same data directory, writes what the first kept in its journal.
"""

from __future__ import annotations

import signal
import time

import adbc_driver_flightsql.dbapi as flightsql
import psycopg
import pytest

from nexus_flight.catalog.vault import generate_key
from tests.operations.serving import catalog_config, serve, serving, share_demo
from tests.support.servers import PrivatePostgres, private_server

pytestmark = pytest.mark.timeout(180)


def test_queries_of_a_gateway_stopped_during_a_catalog_outage_reach_the_history(tmp_path, demo_data_dir):
    with private_server(PrivatePostgres) as catalog:
        config = catalog_config(tmp_path / "gateway.toml", catalog, url_query="?connect_timeout=2")
        data = share_demo(tmp_path / "data", demo_data_dir)
        env = {"NEXUS_FLIGHT_MASTER_KEY": generate_key()}
        first = serve(data, "--config", str(config), env=env)
        try:
            with flightsql.connect(first.location, autocommit=True) as conn, conn.cursor() as cur:
                cur.execute("SELECT 'before' AS kept")
                cur.fetchall()
                time.sleep(0.5)  # written: the history writer batches for 0.2 s
                catalog.stop()
                for n in range(5):
                    cur.execute(f"SELECT {n} AS during_the_outage")
                    assert cur.fetchall() == [(n,)]
            stopping = time.monotonic()
            first.signal(signal.SIGTERM)
            assert first.wait(60) == 0
            assert time.monotonic() - stopping < 15  # the stop does not wait on the catalog
        finally:
            first.stop()
        assert len(list((data / "journal").glob("history-*.jsonl"))) == 1

        catalog.start()
        with serving(data, "--config", str(config), env=env):
            deadline = time.monotonic() + 30
            while list((data / "journal").glob("*.jsonl")):
                assert time.monotonic() < deadline, "the journal was not written"
                time.sleep(0.2)
        with psycopg.connect(catalog.dsn()) as conn:
            texts = sorted(r[0] for r in conn.execute("SELECT sql_text FROM query_history"))
        assert texts == sorted(["SELECT 'before' AS kept", *(f"SELECT {n} AS during_the_outage" for n in range(5))])
