"""SIGHUP reloads sources and limits into the served gateway while its clients stay connected."""

from __future__ import annotations

import signal
import threading
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import pytest

from nexus_flight.backends.duckdb_engine import ENGINE_SHARE, memory_text
from nexus_flight.core.sizes import parse_size
from tests.operations.serving import SHORT_QUERY, serve, wait_for

pytestmark = pytest.mark.timeout(120)

BEFORE = """
[server]
max_query_length = 100000

[[sources]]
name = "first"
type = "duckdb"
options = { setup_sql = ["CREATE VIEW answers AS SELECT 1 AS answer"] }
"""

AFTER = """
[server]
max_query_length = 60
record_parameters = true

[[sources]]
name = "first"
type = "duckdb"
options = { setup_sql = ["CREATE VIEW answers AS SELECT 1 AS answer"] }

[[sources]]
name = "second"
type = "duckdb"
options = { setup_sql = ["CREATE VIEW answers AS SELECT 2 AS answer"] }
"""


@pytest.fixture
def data_dir(tmp_path, demo_data_dir):
    for demo in demo_data_dir.glob("tpch_*.duckdb"):
        (tmp_path / demo.name).symlink_to(demo)
    return tmp_path


def test_sighup_adds_sources_and_applies_limits_without_dropping_connections(data_dir, tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text(BEFORE)
    served = serve(data_dir, "--config", str(config))
    try:
        with flightsql.connect(served.location, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT answer FROM first.main.answers")
            assert cur.fetchall() == [(1,)]
            # A stream running across the reload, on a connection of its own.
            streaming: dict = {}

            def run() -> None:
                with flightsql.connect(served.location, autocommit=True) as other, other.cursor() as c:
                    c.execute(SHORT_QUERY)
                    streaming["rows"] = c.fetchall()

            thread = threading.Thread(target=run)
            thread.start()
            config.write_text(AFTER)
            served.signal(signal.SIGHUP)
            wait_for(lambda: any("configuration reloaded" in line for line in served.out))
            line = next(line for line in served.out if "configuration reloaded" in line)
            assert "max_query_length" in line and "second added" in line, line
            wait_for(lambda: any("apply only after a restart: record_parameters" in line for line in served.err))
            # The same connection sees the new source (within the catalog's refresh) and the new limit.
            wait_for(lambda: _answers(cur, "second") == [(2,)], seconds=10)
            with pytest.raises(Exception, match="QV-009: the query is 72 bytes, over the limit max_length=60"):
                cur.execute("SELECT answer FROM first.main.answers WHERE answer IN (1, 2, 3, 4, 5, 6)")
            thread.join(30)
            assert streaming.get("rows") and int(streaming["rows"][0][0]) > 0, streaming

        config.write_text("[server]\nmax_query_length = 'long'\n")
        served.signal(signal.SIGHUP)
        wait_for(lambda: any("not reloaded" in line for line in served.out))
        assert any("server.max_query_length" in line for line in served.out if "not reloaded" in line)
        with flightsql.connect(served.location, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT answer FROM second.main.answers")
            assert cur.fetchall() == [(2,)]
        served.signal(signal.SIGTERM)
        assert served.wait(30) == 0
    finally:
        served.stop()


def test_a_reload_names_what_only_a_restart_applies_and_applies_the_drain_time(data_dir, tmp_path):
    """These were reported as "settings changed" and never applied: read once, when the gateway started."""
    source = '[[sources]]\nname = "first"\ntype = "duckdb"\noptions = { setup_sql = ["SELECT 1"] }\n'
    config = tmp_path / "gateway.toml"
    config.write_text("[server]\ndrain_seconds = 30\n\n" + source)
    served = serve(data_dir, "--config", str(config))
    try:
        config.write_text("[server]\ndrain_seconds = 1\nsystem_table_rows = 10\naudit_retention_days = 7\n"
                          "max_endpoints = 2\n\n" + source)
        served.signal(signal.SIGHUP)
        wait_for(lambda: any("configuration reloaded" in line for line in served.out))
        wait_for(lambda: any("apply only after a restart" in line for line in served.err))
        warning = next(line for line in served.err if "apply only after a restart" in line)
        for name in ("system_table_rows", "audit_retention_days", "max_endpoints"):
            assert name in warning, warning
        line = next(line for line in served.out if "configuration reloaded" in line)
        assert "settings changed: drain_seconds;" in line, line
        served.signal(signal.SIGTERM)
        assert served.wait(30) == 0
        assert any("shutting down (drain_seconds=1)" in line for line in served.out), served.out
    finally:
        served.stop()


def _answers(cur, source: str):
    try:
        cur.execute(f"SELECT answer FROM {source}.main.answers")
        return cur.fetchall()
    except Exception:
        return None


MEMORY_BEFORE = """
[server]
memory_limit = "64MB"
memory_budget = "256MB"

[[sources]]
name = "first"
type = "duckdb"
options = { setup_sql = ["CREATE VIEW answers AS SELECT 1 AS answer"] }
"""

MEMORY_AFTER = MEMORY_BEFORE.replace('memory_limit = "64MB"', 'memory_limit = "32MB"').replace(
    'memory_budget = "256MB"',
    'memory_budget = "128MB"\nadmission_queue_size = 3\nadmission_timeout_seconds = 5\nidle_query_instances = 0',
)


def test_sighup_applies_the_memory_settings(data_dir, tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text(MEMORY_BEFORE)
    served = serve(data_dir, "--config", str(config), "--http-port", "0")
    try:
        with flightsql.connect(served.location, autocommit=True) as conn, conn.cursor() as cur:
            assert _engine_memory_limit(cur) == _duckdb_limit_for("64MB")
            metrics = _metrics(served.http)
            assert metrics["nexus_memory_budget_bytes"] == 256e6
            # The finished query's instance waits for the next query, counted at what DuckDB says it holds.
            assert 0 <= metrics["nexus_memory_budget_idle_bytes"] < 64e6
            config.write_text(MEMORY_AFTER)
            served.signal(signal.SIGHUP)
            wait_for(lambda: any("configuration reloaded" in line for line in served.out))
            line = next(line for line in served.out if "configuration reloaded" in line)
            for name in ("memory_limit", "memory_budget", "admission_queue_size", "admission_timeout_seconds",
                         "idle_query_instances"):
                assert name in line, line
            assert not any("apply only after a restart" in line for line in served.err), served.err
            metrics = _metrics(served.http)
            assert metrics["nexus_memory_budget_bytes"] == 128e6
            assert metrics["nexus_memory_budget_idle_bytes"] == 0  # no idle instance is kept any more
            # The same connection's next query runs under the new limit, and its instance is not kept.
            assert _engine_memory_limit(cur) == _duckdb_limit_for("32MB")
            assert _metrics(served.http)["nexus_memory_budget_idle_bytes"] == 0
        served.signal(signal.SIGTERM)
        assert served.wait(30) == 0
    finally:
        served.stop()


def _engine_memory_limit(cur) -> str:
    cur.execute("SELECT current_setting('memory_limit') AS m FROM first.main.answers")
    return cur.fetchall()[0][0]


def _duckdb_limit_for(query_limit: str) -> str:
    """What DuckDB itself reports for a query instance's share of ``query_limit`` (``ENGINE_SHARE``)."""
    share = memory_text(int(parse_size(query_limit) * ENGINE_SHARE))
    with duckdb.connect(config={"memory_limit": share}) as con:
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def _metrics(http: str) -> dict[str, float]:
    text = urllib.request.urlopen(http + "/metrics", timeout=5).read().decode()
    return {name: float(value) for name, value in
            (line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
            if "{" not in name}
