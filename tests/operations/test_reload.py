"""SIGHUP reloads sources and limits into the served gateway while its clients stay connected."""

from __future__ import annotations

import signal
import threading

import adbc_driver_flightsql.dbapi as flightsql
import pytest

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


def _answers(cur, source: str):
    try:
        cur.execute(f"SELECT answer FROM {source}.main.answers")
        return cur.fetchall()
    except Exception:
        return None
