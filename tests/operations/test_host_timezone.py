"""A gateway on a host whose zone is not UTC answers as one on a UTC host (and as DuckDB does in UTC).

DuckDB's ``SET TimeZone`` holds for the connection that runs it; every cursor starts in the host's zone. The
gateway runs queries on cursors, so on a host in Asia/Kolkata a TIMESTAMPTZ column came back as
``timestamp[us, tz=Asia/Kolkata]``, ``CAST(ts AS DATE)`` gave the next day for instants after 18:30 UTC, and a naive
timestamp compared with a TIMESTAMPTZ shifted by five and a half hours. The server here is a process of its own with
``TZ`` set, the way a host's zone reaches it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.operations.serving import serving, wait_for

HOST_ZONE = "Asia/Kolkata"  # +05:30: a UTC instant after 18:30 falls on the next local day

INSTANTS = [datetime(2023, 12, 31, 23, 30, tzinfo=UTC), datetime(2024, 1, 1, 0, 30, tzinfo=UTC),
            datetime(2024, 3, 10, 19, 0, tzinfo=UTC), None]

QUERIES = [
    "SELECT id, ts FROM {t} ORDER BY id",
    "SELECT id, CAST(ts AS DATE) AS d, date_trunc('day', ts) AS day, hour(ts) AS h, "
    "strftime(ts, '%Y-%m-%d %H:%M') AS s FROM {t} ORDER BY id",
    "SELECT count(*) AS n FROM {t} WHERE ts >= TIMESTAMP '2024-01-01 00:00:00'",
    "SELECT id, CAST(CAST(ts AS TIMESTAMP) AS TIMESTAMPTZ) AS z, ts::VARCHAR AS text FROM {t} ORDER BY id",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("zone")
    table = pa.table({"id": pa.array(range(len(INSTANTS)), pa.int32()),
                      "ts": pa.array(INSTANTS, pa.timestamp("us", tz="UTC"))})
    pq.write_table(table, home / "events.parquet")
    db = home / "events.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{home / 'events.parquet'}')")
    config = home / "gateway.toml"
    config.write_text(
        f'[[sources]]\nname = "db"\ntype = "duckdb"\noptions = {{ path = "{db}" }}\n\n'
        f'[[sources]]\nname = "files"\ntype = "local_files"\n'
        f'options = {{ tables = [{{ name = "events", location = "{home / "events.parquet"}" }}] }}\n')
    with serving(home / "data", "--no-demo", "--config", str(config), env={"TZ": HOST_ZONE}) as server:
        yield server, home


def _gateway(location: str, sql: str) -> pa.Table:
    with flightsql.connect(location, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def _duckdb_in_utc(home, sql: str) -> pa.Table:
    """DuckDB's own answer, its session in UTC (what the gateway documents for every DuckDB-run source)."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'Etc/UTC'")
        con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{home / 'events.parquet'}')")
        return con.execute(sql.format(t="events")).to_arrow_table()


@pytest.mark.parametrize("table", ["db.main.events", "files.main.events"])
@pytest.mark.parametrize("sql", QUERIES)
def test_answers_do_not_follow_the_hosts_zone(served, table, sql):
    server, home = served
    got = _gateway(server.location, sql.format(t=table))
    expected = _duckdb_in_utc(home, sql)
    assert got.schema == expected.schema
    assert got.to_pylist() == expected.to_pylist()


def test_the_system_catalogs_recent_history_is_recent(served):
    """``created_at`` (UTC) against ``now() - INTERVAL``: in the host's zone the last hour's rows were not in it."""
    server, _ = served
    _gateway(server.location, "SELECT 42 AS marker FROM db.main.events LIMIT 1")

    def recent() -> int:
        return _gateway(server.location, "SELECT count(*) AS n FROM system.main.query_history "
                                         "WHERE created_at >= now() - INTERVAL 1 HOUR "
                                         "AND sql_text LIKE '%42 AS marker%'").column("n")[0].as_py()

    wait_for(lambda: recent() >= 1, 20)
    # A naive timestamp means UTC there too: in Asia/Kolkata this bound would lie four and a half hours ago.
    soon = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    got = _gateway(server.location, "SELECT count(*) AS n FROM system.main.query_history "
                                    f"WHERE created_at < TIMESTAMP '{soon}' AND sql_text LIKE '%42 AS marker%'")
    assert got.column("n")[0].as_py() >= 1
