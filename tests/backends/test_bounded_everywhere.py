"""Every query is bounded on every path: planning, execution, the system catalog, SQLite, memory.

A server-side timeout ends with DEADLINE_EXCEEDED naming the limit (``query_timeout=1s`` here), wherever the query
was when time ran out; planning never runs a query to its end; the ``system`` catalog has the server's memory
limit, not most of the machine; SQLite statements can be cancelled and timed out although its driver cannot
interrupt them; a string built outside DuckDB's buffer manager cannot take the server past its memory ceiling.
"""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import adbc_driver_flightsql.dbapi as flightsql
import pytest
from adbc_driver_manager import AdbcStatusCode

from nexus_flight.backends.limits import planning
from nexus_flight.backends.sqlite import SQLiteBackend
from nexus_flight.core.errors import QueryCancelledError, QueryTimeoutError
from nexus_flight.core.source import QueryLimits, SourceSpec
from tests.support.results import plan_for, stream_of
from tests.support.services import free_port, port_open, wait_until

LIMIT = 1.0
#: Runs for minutes if nothing stops it.
ENDLESS = "SELECT sum(range) AS s FROM range(40000000000)"
RECURSIVE = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) AS n FROM r"


def timed_failure(action) -> tuple[float, Exception]:
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        action()
    return time.monotonic() - started, caught.value


def assert_deadline(error: Exception, elapsed: float, limit: float = LIMIT) -> None:
    text = str(error)
    assert getattr(error, "status_code", None) == AdbcStatusCode.TIMEOUT, text
    assert f"query_timeout={limit:g}s" in text and "Traceback" not in text, text
    assert elapsed < limit + 3, elapsed


def run(conn, sql: str, parameters=None):
    with conn.cursor() as cur:
        cur.execute(sql, parameters)
        return cur.fetchall()


# -- DuckDB: planning never runs the query --------------------------------------------------------------------


TAILS = ["-- a trailing comment swallowed the planner's parenthesis", "; -- and after a semicolon", "\n/* block */",
         "; -- über ü"]


@pytest.mark.parametrize("tail", TAILS)
def test_demo_prepared_statement_with_a_trailing_comment_is_planned_without_running(make_gateway, tail):
    gw = make_gateway(query_timeout_seconds=LIMIT)
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        started = time.monotonic()
        cur.adbc_prepare(f"{ENDLESS} {tail}")  # planning: bound, not run
        assert time.monotonic() - started < 1.5
        elapsed, error = timed_failure(lambda: (cur.execute(f"{ENDLESS} {tail}"), cur.fetchall()))
        assert_deadline(error, elapsed)
        assert run(conn, "SELECT count(*) FROM nation") == [(25,)]  # the server serves on


def test_demo_prepared_statement_with_parameters_is_planned_without_running(make_gateway):
    gw = make_gateway(query_timeout_seconds=LIMIT)
    sql = "SELECT sum(range) + ? AS s FROM range(40000000000) -- comment"
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        started = time.monotonic()
        cur.adbc_prepare(sql)
        assert time.monotonic() - started < 1.5
        elapsed, error = timed_failure(lambda: (cur.execute(sql, (1,)), cur.fetchall()))
        assert_deadline(error, elapsed)


def test_a_timeout_before_the_first_batch_is_deadline_exceeded_not_cancelled(make_gateway):
    gw = make_gateway(query_timeout_seconds=LIMIT)
    with flightsql.connect(gw.location, autocommit=True) as conn:
        elapsed, error = timed_failure(lambda: run(conn, ENDLESS))
        assert_deadline(error, elapsed)


# -- the system catalog ---------------------------------------------------------------------------------------


@pytest.fixture
def system_gateway(tmp_path, monkeypatch):
    from nexus_flight.catalog.directory import CatalogSourceDirectory
    from nexus_flight.catalog.store import CatalogStore
    from nexus_flight.catalog.vault import ENV_KEY, KeyRing, parse_key
    from nexus_flight.core.settings import ServerSettings
    from nexus_flight.server.app.gateway import Gateway

    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv(ENV_KEY, key)
    store = CatalogStore(data_dir=tmp_path / "data", keys=KeyRing(parse_key(key)))
    directory = CatalogSourceDirectory(store, default="system", memory_limit="1GB")
    gw = Gateway(ServerSettings(port=0, data_dir=tmp_path, demo_scale=None, query_timeout_seconds=LIMIT,
                                memory_limit="1GB"), sources=directory).start()
    yield gw
    gw.shutdown()
    store.close()


def test_system_catalog_queries_honour_the_timeout_and_a_memory_limit(system_gateway):
    with flightsql.connect(system_gateway.location, autocommit=True) as conn:
        conn.adbc_current_catalog = "system"
        elapsed, error = timed_failure(lambda: run(conn, ENDLESS))
        assert_deadline(error, elapsed)
        # The query's limit (the server's 1GB), of which DuckDB gets 80% (762.9 MiB), not 80% of the machine.
        assert run(conn, "SELECT current_setting('memory_limit') AS m") == [("762.9 MiB",)]
        with conn.cursor() as cur:
            started = time.monotonic()
            cur.adbc_prepare(f"{ENDLESS} -- planned, not run")
            assert time.monotonic() - started < 1.5
        assert run(conn, "SELECT count(*) >= 0 FROM query_history") == [(True,)]


# -- SQLite: cancelled and timed out, planning bounded ---------------------------------------------------------


@pytest.fixture
def sqlite_source(tmp_path):
    path = tmp_path / "lite.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (a INTEGER)")
    con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])
    con.commit()
    con.close()
    return SourceSpec("lite", "sqlite", {"path": str(path)})


def _workers(backend: SQLiteBackend) -> list[int]:
    return [item.connection.pid for item in backend.pool._idle]


def test_sqlite_statement_is_stopped_at_the_deadline_in_the_engine(sqlite_source):
    with SQLiteBackend(sqlite_source) as backend:
        # The server's time limit is the result stream's (the gateway's), which stops the engine.
        stream = stream_of(backend.execute(plan_for(backend, RECURSIVE), None, QueryLimits()), timeout_seconds=1.0)
        elapsed, error = timed_failure(lambda: list(stream))
        stream.close()
        assert isinstance(error, QueryTimeoutError) and "query_timeout=1s" in error.message
        assert elapsed < 4
        assert backend.pool.in_use == 0
        # A fresh worker serves on.
        assert backend.get_schema(plan_for(backend, "SELECT count(*) AS n FROM t")).names == ["n"]


def test_sqlite_statement_is_cancelled_in_the_engine(sqlite_source):
    with SQLiteBackend(sqlite_source) as backend:
        execution = backend.execute(plan_for(backend, RECURSIVE), None, QueryLimits(timeout_seconds=60))
        threading.Timer(0.5, execution.cancel).start()
        elapsed, error = timed_failure(lambda: execution.reader.read_all())
        execution.close()
        assert isinstance(error, QueryCancelledError) and elapsed < 4


def test_sqlite_planning_of_an_endless_query_is_bounded_and_its_worker_killed(sqlite_source):
    with SQLiteBackend(sqlite_source) as backend:
        with planning(QueryLimits(timeout_seconds=1.0)):
            elapsed, error = timed_failure(lambda: backend.get_schema(plan_for(backend, RECURSIVE)))
        assert isinstance(error, QueryTimeoutError) and elapsed < 4
        assert backend.pool.in_use == 0 and _workers(backend) == []  # killed, not returned to the pool


def test_sqlite_endless_query_through_the_gateway_ends_with_deadline_exceeded(make_gateway, sqlite_source):
    gw = make_gateway(sources=(sqlite_source,), demo_scale=None, query_timeout_seconds=LIMIT)
    with flightsql.connect(gw.location, autocommit=True) as conn:
        elapsed, error = timed_failure(lambda: run(conn, RECURSIVE))
        assert_deadline(error, elapsed)
        assert run(conn, "SELECT count(*) AS n FROM t") == [(10,)]


# -- memory: the server's ceiling holds for allocations outside DuckDB's buffer manager -----------------------


def _peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def test_a_huge_string_fails_instead_of_growing_the_server(demo_data_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for demo in demo_data_dir.glob("tpch_sf*.duckdb"):
        shutil.copy(demo, data / demo.name)
    (tmp_path / "gateway.toml").write_text('[server]\nprocess_memory_limit = "2GB"\nhealth_checks = false\n')
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nexus_flight.server", "serve", "--port", str(port), "--data-dir", str(data),
         "--query-timeout", "3",
         "--config", str(tmp_path / "gateway.toml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "NEXUS_FLIGHT_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()},
    )
    try:
        assert wait_until(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, seconds=60)
        assert proc.poll() is None, proc.stdout.read()
        with flightsql.connect(f"grpc://127.0.0.1:{port}", autocommit=True) as conn:
            elapsed, error = timed_failure(lambda: run(conn, "SELECT length(repeat('x', 2500000000)) AS n"))
            text = str(error)
            assert error.status_code == AdbcStatusCode.INVALID_ARGUMENT and "memory" in text.lower(), text
            assert elapsed < 10 and "Traceback" not in text
            assert run(conn, "SELECT count(*) FROM nation") == [(25,)]
        assert _peak_rss(proc.pid) < 1.5 * 2**30  # the 2.5 GB string was never built
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
