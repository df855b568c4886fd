"""The catalog behind a running gateway, through the real ADBC Flight SQL client."""

from __future__ import annotations

import datetime
import json
import time
from decimal import Decimal

import duckdb
import psycopg
import pyarrow as pa
import pytest

from nexus_flight.catalog.directory import CatalogSourceDirectory, history_observer
from nexus_flight.catalog.health import NOT_RETRIED, check_source
from nexus_flight.catalog.history import search_history
from nexus_flight.core.errors import BackendUnavailableError
from nexus_flight.core.settings import ServerSettings
from nexus_flight.server.app.gateway import Gateway

PASSWORD = "gw-Plaintext-Secret-4242"


@pytest.fixture
def duck_file(tmp_path):
    path = tmp_path / "sales.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE orders AS SELECT range AS id, range * 2.5 AS amount FROM range(10)")
    con.close()
    return path


@pytest.fixture
def served(sqlite_store, duck_file, tmp_path, postgres_server):
    sqlite_store.add_source("sales", "duckdb", {"path": str(duck_file)})
    sqlite_store.add_source(
        "pgsrc",
        "postgresql",
        postgres_server.options(),
        {"password": PASSWORD},
    )
    sqlite_store.add_source("ora", "oracle", {"host": "127.0.0.1", "username": "scott"}, {"password": PASSWORD})
    history = history_observer(sqlite_store)
    directory = CatalogSourceDirectory(
        sqlite_store, default="sales", refresh_seconds=0, schema_ttl_seconds=0, history=history
    )
    config = ServerSettings(port=0, data_dir=tmp_path, demo_scale=None)
    gateway = Gateway(config, sources=directory, observers=[history]).start()
    yield sqlite_store, gateway
    gateway.shutdown()
    history.close()


def connect(gateway):
    import adbc_driver_flightsql.dbapi as flightsql

    return flightsql.connect(gateway.location, autocommit=True)


def fetch(conn, sql, catalog=None):
    if catalog:
        conn.adbc_current_catalog = catalog
    cur = conn.cursor()
    cur.execute(sql)
    table = cur.fetch_arrow_table()
    cur.close()
    return table


def ipc_bytes(*tables: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    for table in tables:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_sources_history_and_system_catalog_through_flight_sql(served, duck_file, caplog):
    caplog.set_level("DEBUG")
    store, gateway = served
    responses = []
    with connect(gateway) as conn:
        catalogs = conn.adbc_get_objects(depth="catalogs").read_all()
        responses.append(catalogs)
        assert sorted(catalogs.column("catalog_name").to_pylist()) == ["ora", "pgsrc", "sales", "system"]

        result = fetch(conn, "SELECT count(*) AS n, sum(amount) AS total FROM orders", "sales")
        responses.append(result)
        assert result.to_pylist() == [{"n": 10, "total": 112.5}]

        with pytest.raises(Exception, match="no_such_table") as refused:
            fetch(conn, "SELECT * FROM no_such_table", "sales")
        with pytest.raises(Exception, match="DS-010: .*backend family 'oracle'") as unimplemented:
            fetch(conn, "SELECT 1 FROM dual", "ora")

        via_postgres = fetch(conn, "SELECT 1 AS one", "pgsrc")  # the password travels to a real server
        responses.append(via_postgres)
        assert via_postgres.to_pylist() == [{"one": 1}]

        objects = conn.adbc_get_objects(depth="all", catalog_filter="sales").read_all()
        responses.append(objects)
        assert "orders" in json.dumps(objects.to_pylist(), default=str)

        history = fetch(
            conn,
            "SELECT source_name, status, sql_text, error_message, total_ms FROM query_history ORDER BY created_at",
            "system",
        )
        sources = fetch(conn, "SELECT name, type, family, status, config FROM sources ORDER BY name", "system")
        versions = fetch(
            conn,
            "SELECT source_name, is_current, stale, table_count FROM schema_versions WHERE source_name = 'sales'",
            "system",
        )
        responses += [history, sources, versions]

    rows = history.to_pylist()
    assert rows[0]["source_name"] == "sales"  # failures while planning reach history without their source
    assert rows[0]["status"] == "success" and rows[0]["sql_text"].startswith("SELECT count(*)")
    assert rows[1]["status"] in ("error", "rejected") and "no_such_table" in rows[1]["error_message"]
    assert rows[2]["status"] == "error" and rows[2]["error_message"].startswith("DS-010")
    assert rows[0]["total_ms"] > 0
    by_name = {r["name"]: r for r in sources.to_pylist()}
    assert (
        json.loads(by_name["pgsrc"]["config"])["password"] == "***" == json.loads(by_name["ora"]["config"])["password"]
    )
    assert by_name["sales"]["family"] == "duckdb"
    assert versions.to_pylist() == [{"source_name": "sales", "is_current": True, "stale": False, "table_count": 1}]

    # The history the gateway wrote is the catalog's history, with the server's query ids.
    stored = search_history(store, source="sales")
    assert {r["status"] for r in stored} >= {"success"}

    # A query and a connection test word DS-010 alike: one message, from catalog/connect.py.
    tested = check_source(store, "ora").last_error
    assert tested.startswith("DS-010: backend family 'oracle'") and tested.endswith(NOT_RETRIED)
    assert tested.removesuffix(NOT_RETRIED) in str(unimplemented.value)

    blob = ipc_bytes(*responses) + str(refused.value).encode() + str(unimplemented.value).encode()
    assert PASSWORD.encode() not in blob
    assert "DS-010" in caplog.text and PASSWORD not in caplog.text  # server and catalog logs


def test_metadata_answers_from_the_stale_cache_when_the_source_is_down(served, duck_file):
    store, gateway = served
    with connect(gateway) as conn:
        first = conn.adbc_get_objects(depth="all", catalog_filter="sales").read_all().to_pylist()
        store.update_source("sales", options={"memory_limit": "512MB"})  # the next call opens the source again
        duck_file.rename(duck_file.with_suffix(".gone"))
        second = conn.adbc_get_objects(depth="all", catalog_filter="sales").read_all().to_pylist()
        assert second == first  # same schemas, tables and columns, from the cache
        versions = fetch(
            conn,
            "SELECT source_name, stale FROM schema_versions WHERE is_current AND source_name = 'sales'",
            "system",
        )
        assert versions.to_pylist() == [{"source_name": "sales", "stale": True}]
        with pytest.raises(Exception, match="not found"):
            fetch(conn, "SELECT count(*) FROM orders", "sales")
    info = store.get_source("sales")
    assert info.status == "error" and info.health_failures == 1 and info.next_check_at is not None


def test_disabled_sources_are_not_served(served):
    store, gateway = served
    store.set_status("pgsrc", "inactive")
    with connect(gateway) as conn:
        names = conn.adbc_get_objects(depth="catalogs").read_all().column("catalog_name").to_pylist()
        assert "pgsrc" not in names
        with pytest.raises(Exception, match="catalog"):
            fetch(conn, "SELECT 1", "pgsrc")


def test_system_catalog_is_read_only(served):
    store, gateway = served
    with connect(gateway) as conn:
        with pytest.raises(Exception, match="read-only|not allowed|QV-"):
            fetch(conn, "DELETE FROM query_history", "system")
        with pytest.raises(Exception, match="(?i)permission|disabled|not allowed|external"):
            fetch(conn, "SELECT * FROM read_csv('/etc/passwd')", "system")


def test_system_catalog_refuses_writes_in_duckdb_itself(sqlite_store, duck_file):
    """With the validator out of the way, DuckDB's read-only database refuses, and no query leaves a trace."""
    from nexus_flight.catalog.system_backend import SystemBackend
    from nexus_flight.core.errors import NotFoundError, ReadOnlyViolationError
    from nexus_flight.core.plan import plan_sql
    from nexus_flight.core.source import QueryLimits

    sqlite_store.add_source("sales", "duckdb", {"path": str(duck_file)})

    def run(backend, sql):
        execution = backend.execute(plan_sql(sql, "duckdb", "system"), None, QueryLimits(timeout_seconds=30))
        try:
            return execution.reader.read_all().to_pylist()
        finally:
            execution.close()

    with SystemBackend(sqlite_store) as backend:
        for write in ("CREATE TABLE kept AS SELECT 1 AS a", "DELETE FROM sources"):
            with pytest.raises(ReadOnlyViolationError):
                run(backend, write)
        run(backend, "CREATE TEMP TABLE kept AS SELECT 1")  # the cursor's own scratch space, gone with it
        with pytest.raises(NotFoundError):
            run(backend, "SELECT * FROM kept")
        assert run(backend, "SELECT name FROM sources") == [{"name": "sales"}]


def test_two_gateways_on_one_postgresql_catalog(pg_url, keys, duck_file, tmp_path):
    """Two gateways (as two replicas would run) share sources and history through one PostgreSQL catalog."""
    from nexus_flight.catalog.store import CatalogStore

    stores = [CatalogStore(pg_url, keys=keys) for _ in range(2)]
    stores[0].add_source("sales", "duckdb", {"path": str(duck_file)})
    observers = [history_observer(store) for store in stores]
    gateways = [
        Gateway(
            ServerSettings(port=0, data_dir=tmp_path, demo_scale=None),
            sources=CatalogSourceDirectory(store, refresh_seconds=0),
            observers=[observer],
        ).start()
        for store, observer in zip(stores, observers, strict=True)
    ]
    try:
        with connect(gateways[0]) as conn:
            assert fetch(conn, "SELECT count(*) AS n FROM orders", "sales").to_pylist() == [{"n": 10}]
        stores[1].add_source("more", "duckdb", {"path": str(duck_file)})
        with connect(gateways[1]) as conn:
            assert fetch(conn, "SELECT max(id) AS m FROM orders", "more").to_pylist() == [{"m": 9}]
        with connect(gateways[0]) as conn:
            names = conn.adbc_get_objects(depth="catalogs").read_all().column("catalog_name").to_pylist()
            assert sorted(names) == ["more", "sales", "system"]
            deadline = time.monotonic() + 10
            while True:
                seen = fetch(
                    conn,
                    "SELECT source_name FROM query_history WHERE status = 'success' "
                    "AND source_name IN ('sales', 'more')",
                    "system",
                )
                if sorted(seen.column("source_name").to_pylist()) == ["more", "sales"] or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert sorted(seen.column("source_name").to_pylist()) == ["more", "sales"]
    finally:
        for gateway in gateways:
            gateway.shutdown()
        for observer in observers:
            observer.close()
        for store in stores:
            store.close()


def test_object_store_source_with_vault_secrets_through_the_gateway(sqlite_store, tmp_path):
    """An s3_parquet source whose keys live in the vault, queried through Flight SQL from the S3 emulator."""
    import io

    import boto3
    import pyarrow.parquet as pq

    from tests.lake.emulators import moto_s3

    secret = "vault-S3-Secret-Key-0042"
    with moto_s3() as s3:
        client = boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            aws_access_key_id="AKIACATALOG",
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="shop")
        buffer = io.BytesIO()
        pq.write_table(pa.table({"id": list(range(12)), "region": ["eu", "us", "ap"] * 4}), buffer)
        client.put_object(Bucket="shop", Key="orders/part-0.parquet", Body=buffer.getvalue())
        sqlite_store.add_source(
            "lake",
            "s3_parquet",
            {
                "tables": [{"name": "orders", "location": "s3://shop/orders/"}],
                "s3_endpoint": f"127.0.0.1:{s3.port}",
                "s3_use_ssl": False,
                "s3_path_style": True,
                "s3_region": "us-east-1",
            },
            {"s3_access_key_id": "AKIACATALOG", "s3_secret_access_key": secret},
            "iam",
        )
        history = history_observer(sqlite_store)
        directory = CatalogSourceDirectory(sqlite_store, refresh_seconds=0, history=history)
        gateway = Gateway(
            ServerSettings(port=0, data_dir=tmp_path, demo_scale=None), sources=directory, observers=[history]
        ).start()
        try:
            with connect(gateway) as conn:
                result = fetch(conn, "SELECT region, count(*) AS n FROM orders GROUP BY region ORDER BY region", "lake")
                shown = fetch(conn, "SELECT config FROM sources WHERE name = 'lake'", "system")
        finally:
            gateway.shutdown()
            history.close()
    assert result.to_pylist() == [{"region": "ap", "n": 4}, {"region": "eu", "n": 4}, {"region": "us", "n": 4}]
    config = json.loads(shown.column("config")[0].as_py())
    assert config["s3_secret_access_key"] == "***" and config["tables"][0]["format"] == "parquet"
    assert secret.encode() not in ipc_bytes(result, shown)


def test_a_sources_own_validation_limits(sqlite_store, duck_file, tmp_path):
    """max_joins / max_query_length set on a source bind its queries only; its backend never sees them."""
    import adbc_driver_flightsql.dbapi as flightsql

    sqlite_store.add_source("tight", "duckdb", {"path": str(duck_file), "max_joins": 1, "max_query_length": 500})
    sqlite_store.add_source("roomy", "duckdb", {"path": str(duck_file)})
    assert "max_joins" not in sqlite_store.source_spec("tight").options
    directory = CatalogSourceDirectory(sqlite_store, default="roomy", refresh_seconds=0, schema_ttl_seconds=0)
    gateway = Gateway(ServerSettings(port=0, data_dir=tmp_path, demo_scale=None), sources=directory).start()
    two_joins = (
        "SELECT count(*) FROM {c}.main.orders a JOIN {c}.main.orders b USING (id) JOIN {c}.main.orders c USING (id)"
    )
    try:
        with connect(gateway) as conn:
            assert fetch(conn, two_joins.format(c="roomy")).column(0).to_pylist() == [10]
            with pytest.raises(flightsql.ProgrammingError, match="QV-008"):
                fetch(conn, two_joins.format(c="tight"))
            with pytest.raises(flightsql.ProgrammingError, match="QV-009"):
                fetch(conn, "SELECT 1 FROM tight.main.orders" + " " * 600)
            assert fetch(conn, "SELECT count(*) FROM tight.main.orders").column(0).to_pylist() == [10]
    finally:
        gateway.shutdown()


def test_a_source_has_one_profile_whichever_directory_serves_it(sqlite_store, duck_file, tmp_path):
    """The same source, given at start or registered in the catalog, is routed and validated alike.

    (A Flight SQL upstream was validated in ``postgres`` when static and in sqlglot's generic dialect from the
    catalog; a static source's table locations were no allowed paths.)
    """
    import sqlite3

    import pyarrow.parquet as pq

    from nexus_flight.core.source import SourceSpec
    from nexus_flight.server.query.directory import StaticSourceDirectory

    parquet = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1]}), parquet)
    lite = tmp_path / "lite.db"
    sqlite3.connect(lite).close()
    sources = {
        "upstream": ("flightsql", "flightsql", {"uri": "grpc://127.0.0.1:32010"}),
        "duck": ("duckdb", "duckdb", {"path": str(duck_file), "max_joins": 3, "allowed_functions": ["f"],
                                      "allowed_paths": [str(tmp_path / "views")]}),
        "lite": ("sqlite", "sqlite", {"path": str(lite)}),
        "files": ("local_files", "files", {"tables": [{"name": "t", "location": str(parquet)}]}),
    }
    static = StaticSourceDirectory([SourceSpec(name, fam, options) for name, (_, fam, options) in sources.items()])
    for name, (type_name, _, options) in sources.items():
        sqlite_store.add_source(name, type_name, options)
    catalog = CatalogSourceDirectory(sqlite_store, refresh_seconds=0)
    try:
        for name in sources:
            assert catalog.route_target(name) == static.route_target(name), name
        assert static.route_target("upstream").dialect == "postgres"
        duck = static.route_target("duck")
        assert duck.allowed_paths == (str(duck_file), str(tmp_path / "views"))
        assert (duck.engine, duck.limits.max_joins, duck.allowed_functions) == ("duckdb", 3, ("f",))
        assert static.route_target("files").allowed_paths == (str(parquet),)
        # The gateway's own options never reach the backend (DuckDB's options model would refuse them).
        assert "main" in static.backend("duck").list_schemas()
    finally:
        static.close()
        catalog.close()


@pytest.mark.parametrize("value", [1.5, 7, True, "twelve", Decimal("12.345"), datetime.date(2024, 2, 29)],
                         ids=repr)
def test_a_catalog_served_prepared_statement_takes_its_bound_values_types(served, postgres_server, value):
    """``SELECT ? AS x`` on a PostgreSQL source of the catalog: the result has the bound value's type, as psycopg's."""
    _, gateway = served
    with psycopg.connect(postgres_server.dsn()) as pg:
        cur = pg.execute("SELECT %s AS x", (value,))
        [(expected,)] = cur.fetchall()
    with connect(gateway) as conn:
        conn.adbc_current_catalog = "pgsrc"
        cur = conn.cursor()
        cur.execute("SELECT ? AS x", (value,))
        table = cur.fetch_arrow_table()
        cur.close()
    [got] = table.column("x").to_pylist()
    assert (type(got), got) == (type(expected), expected)
    assert table.schema.field("x").type == pa.array([expected]).type or isinstance(expected, Decimal | int)


def test_history_keeps_the_statement_as_the_client_wrote_it(served):
    """The catalog qualifier the gateway removes before the engine runs the statement stays in history."""
    store, gateway = served
    sql = "SELECT count(*) AS n FROM sales.main.orders"
    with connect(gateway) as conn:
        assert fetch(conn, sql).to_pylist() == [{"n": 10}]
        with pytest.raises(Exception, match="no_such_column"):
            fetch(conn, "SELECT no_such_column FROM sales.main.orders")
        rows = fetch(conn, "SELECT sql_text, status FROM query_history ORDER BY created_at", "system").to_pylist()
    assert rows[:2] == [{"sql_text": sql, "status": "success"},
                        {"sql_text": "SELECT no_such_column FROM sales.main.orders", "status": "rejected"}]


def test_a_full_connection_pool_refuses_a_query_but_leaves_the_source_as_it_is(sqlite_store, postgres_server, tmp_path):
    """A query refused because every pooled connection is lent out is load, not the source being away.

    The refusal is UNAVAILABLE (retry); the source keeps its backend and pool (opening a new one would open
    connections beyond ``pool_size`` while the old ones still run) and is not marked in error. The pool's one
    connection is held, as a long query would hold it.
    """
    import adbc_driver_flightsql.dbapi as flightsql

    from tests.support.servers import READER_PASSWORD

    sqlite_store.add_source("pgsrc", "postgresql", postgres_server.options(pool_size=1, pool_timeout_seconds=0.2),
                            {"password": READER_PASSWORD})
    directory = CatalogSourceDirectory(sqlite_store, default="pgsrc", refresh_seconds=0, schema_ttl_seconds=0)
    gateway = Gateway(ServerSettings(port=0, data_dir=tmp_path, demo_scale=None), sources=directory).start()
    try:
        with connect(gateway) as conn:
            assert fetch(conn, "SELECT 1 AS x", "pgsrc").column("x").to_pylist() == [1]
            source = directory.backend("pgsrc")
            live = source._live
            assert live is not None
            held = live.pool.acquire()  # the pool's only connection, lent out
            try:
                with pytest.raises(flightsql.OperationalError, match="pool_size=1"):
                    fetch(conn, "SELECT 2 AS x", "pgsrc")
            finally:
                live.pool.release(held)
        assert sqlite_store.get_source("pgsrc").status != "error"
        assert directory.backend("pgsrc")._live is live, "the source's backend was closed and opened again"
        with connect(gateway) as conn:
            assert fetch(conn, "SELECT 3 AS x", "pgsrc").column("x").to_pylist() == [3]
        assert live.pool.in_use == 0 and live.pool.idle == 1
    finally:
        gateway.shutdown()


def _gateway_connections(postgres_server) -> int:
    """Connections PostgreSQL itself counts for the gateway's login (its own client asks, as superuser)."""
    with psycopg.connect(postgres_server.dsn()) as admin:
        return admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (postgres_server.reader,)
        ).fetchone()[0]


def _settled_connections(postgres_server, expected: int) -> int:
    """The count once it reached ``expected`` or 5 s passed (a closed connection's server process ends soon after)."""
    deadline = time.monotonic() + 5
    while (count := _gateway_connections(postgres_server)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def test_a_source_changed_while_it_serves_keeps_its_queries_and_leaves_no_pool_open(
    sqlite_store, postgres_server, tmp_path
):
    """`sources update` on a source that is serving: nothing under way fails, no connection is left behind.

    Three moments of a query meet the change, each against the real PostgreSQL: a stream already running (it
    goes on to its last row, compared with psycopg's own answer), a call under way on the old backend (it
    finishes there, the source is not marked in error, the old pool closes when it ends), and a caller still
    holding the old backend (it is served by the new one rather than opening a pool nobody would close).
    """
    import threading

    from tests.support.servers import READER_PASSWORD

    sqlite_store.add_source("pgsrc", "postgresql", postgres_server.options(pool_size=2),
                            {"password": READER_PASSWORD})
    directory = CatalogSourceDirectory(sqlite_store, default="pgsrc", refresh_seconds=0, schema_ttl_seconds=0)
    before = _gateway_connections(postgres_server)
    gateway = Gateway(ServerSettings(port=0, data_dir=tmp_path, demo_scale=None), sources=directory).start()
    sql = "SELECT g AS n, repeat('x', 50) AS pad FROM generate_series(1, 300000) AS g ORDER BY g"
    try:
        with connect(gateway) as streaming, connect(gateway) as other:
            cursor = streaming.cursor()
            cursor.execute(sql)
            reader = cursor.fetch_record_batch()
            batches = [reader.read_next_batch()]
            old = directory.backend("pgsrc")
            old_live = old._live
            assert old_live is not None

            started, proceed = threading.Event(), threading.Event()

            def slow_ping(live):
                started.set()
                assert proceed.wait(30)
                live.ping()
                return live

            under_way: dict = {}
            caller = threading.Thread(target=lambda: under_way.update(live=old._call(slow_ping)))
            caller.start()
            assert started.wait(30)

            sqlite_store.update_source("pgsrc", options={"pool_size": 3})
            assert fetch(other, "SELECT 7 AS x", "pgsrc").column("x").to_pylist() == [7]
            new = directory.backend("pgsrc")
            assert new is not old and new._live is not None and new._live is not old_live
            assert not old_live.pool._closed, "closed under a call still running on it"

            proceed.set()
            caller.join(30)
            assert under_way["live"] is old_live
            assert old_live.pool._closed and old._live is None
            assert sqlite_store.get_source("pgsrc").status != "error"

            assert old.ping() is None and old._live is None, "the old backend opened a pool of its own"

            batches.extend(reader)
            streamed = pa.Table.from_batches(batches)
        with psycopg.connect(postgres_server.dsn()) as own:
            expected = [row[0] for row in own.execute(sql)]
        assert streamed.column("n").to_pylist() == expected
        in_new_pool = new._live.pool.in_use + new._live.pool.idle
        assert _settled_connections(postgres_server, before + in_new_pool) == before + in_new_pool
    finally:
        gateway.shutdown()


@pytest.mark.parametrize("gone", ["disabled", "removed"])
def test_a_disabled_or_removed_source_closes_its_connections(sqlite_store, postgres_server, tmp_path, gone):
    """Disabling a source for the database's maintenance (or removing it) leaves no connection of the gateway's
    open there once the gateway next lists its sources, as PostgreSQL itself counts them."""
    from tests.support.servers import READER_PASSWORD

    sqlite_store.add_source("pgsrc", "postgresql", postgres_server.options(pool_size=2),
                            {"password": READER_PASSWORD})
    directory = CatalogSourceDirectory(sqlite_store, default="pgsrc", refresh_seconds=0, schema_ttl_seconds=0)
    before = _gateway_connections(postgres_server)
    gateway = Gateway(ServerSettings(port=0, data_dir=tmp_path, demo_scale=None), sources=directory).start()
    try:
        with connect(gateway) as conn:
            assert fetch(conn, "SELECT 1 AS x", "pgsrc").column("x").to_pylist() == [1]
            old = directory.backend("pgsrc")
            assert _gateway_connections(postgres_server) > before
            if gone == "disabled":
                sqlite_store.set_status("pgsrc", "inactive")
            else:
                sqlite_store.remove_source("pgsrc")
            assert "pgsrc" not in directory.names()
            assert _settled_connections(postgres_server, before) == before
            with pytest.raises(BackendUnavailableError, match="removed or disabled"):
                old.ping()  # a caller still holding it opens nothing
            assert _settled_connections(postgres_server, before) == before
    finally:
        gateway.shutdown()


def test_a_slow_listing_of_the_sources_stalls_only_the_caller_that_lists(pg_store, pg_schema, postgres_server):
    """Every query asks the directory for its source; the one that found the list due read the catalog while holding
    the directory's lock, so a slow catalog (here: its table locked by another session) stopped every query."""
    import threading

    pg_store.add_source("mem", "duckdb", {"setup_sql": ["SELECT 1"]})
    directory = CatalogSourceDirectory(pg_store, refresh_seconds=0.1, system=False)
    assert "mem" in directory.names()
    locker = psycopg.connect(postgres_server.dsn())
    try:
        locker.execute(f'LOCK TABLE "{pg_schema}".data_sources IN ACCESS EXCLUSIVE MODE')
        time.sleep(0.2)  # the list is due
        lister = threading.Thread(target=directory.names)
        lister.start()
        wait_until_waiting = time.monotonic() + 10
        while not locker.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]:
            assert time.monotonic() < wait_until_waiting, "the listing never reached the locked table"
            time.sleep(0.02)
        answered: list[list[str]] = []
        other = threading.Thread(target=lambda: answered.append(directory.names()))
        other.start()
        other.join(5)
        assert answered == [["mem"]], "a query waited for another caller's listing"
    finally:
        locker.rollback()
        locker.close()
    lister.join(10)
    directory.close()
