"""A catalog outage (a PostgreSQL catalog restarting, failing over) does not stop a gateway serving its sources.

The gateway is wired as ``serve`` wires it (shared sessions and cancels, a history writer) on a PostgreSQL catalog
of this module's own, which the test stops and starts. While it is down: queries on a source already open answer
as DuckDB itself does, metadata is read from the source, a source never opened is UNAVAILABLE naming the catalog
(not an internal error); once it is back, the queries made meanwhile are in the history.
"""

from __future__ import annotations

import time

import duckdb
import pytest

from nexus_flight.catalog.directory import CatalogSourceDirectory, history_observer
from nexus_flight.catalog.history import search_history
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.core.settings import ServerSettings
from nexus_flight.server.app.gateway import Gateway
from nexus_flight.server.app.replicas import share_cancels, shared_sessions
from tests.support.servers import PrivatePostgres, private_server

QUERY = "SELECT id % 3 AS k, count(*) AS n, sum(id) AS s FROM orders GROUP BY k ORDER BY k"


@pytest.fixture(scope="module")
def outage_pg():
    """A PostgreSQL of this module's own: the test stops and starts it."""
    with private_server(PrivatePostgres) as server:
        yield server


def test_sources_already_open_serve_through_a_catalog_outage(outage_pg, keys, tmp_path):
    import adbc_driver_flightsql.dbapi as flightsql

    files = {}
    for name in ("sales", "later"):
        files[name] = tmp_path / f"{name}.duckdb"
        with duckdb.connect(str(files[name])) as con:
            con.execute("CREATE TABLE orders AS SELECT range AS id FROM range(100)")
    with duckdb.connect(str(files["sales"]), read_only=True) as con:
        expected = con.execute(QUERY).fetchall()
    store = CatalogStore(f"postgresql+psycopg://{outage_pg.user}@{outage_pg.host}:{outage_pg.port}/"
                         f"{outage_pg.database}", keys=keys)
    for name, path in files.items():
        store.add_source(name, "duckdb", {"path": str(path)})
    history = history_observer(store)
    gateway = Gateway(ServerSettings(port=0, data_dir=tmp_path, demo_scale=None),
                      sources=CatalogSourceDirectory(store, default="sales", refresh_seconds=0),
                      observers=[history], sessions=shared_sessions(store)).start()
    share_cancels(gateway.service, store)
    try:
        with flightsql.connect(gateway.location, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(QUERY)
            assert cur.fetchall() == expected
            outage_pg.stop()
            for _ in range(3):
                cur.execute(QUERY)
                assert cur.fetchall() == expected
            tables = conn.adbc_get_objects(depth="tables", catalog_filter="sales").read_all().to_pylist()
            assert [t["table_name"] for s in tables[0]["catalog_db_schemas"] for t in s["db_schema_tables"]] \
                == ["orders"]
            with pytest.raises(flightsql.OperationalError, match="catalog database cannot be reached"):
                cur.execute("SELECT count(*) FROM later.main.orders")
                cur.fetchall()
            outage_pg.start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    cur.execute("SELECT count(*) AS n FROM later.main.orders")
                    assert cur.fetchall() == [(100,)]
                    break
                except flightsql.OperationalError:
                    time.sleep(0.5)
            else:
                pytest.fail("the gateway did not come back with its catalog")
        assert history.flush(30)
        statuses = [(r["sql_text"], r["status"]) for r in search_history(store, limit=None)]
        assert statuses.count((QUERY, "success")) == 4  # the three made during the outage included
    finally:
        gateway.shutdown()
        history.close()
        store.close()
