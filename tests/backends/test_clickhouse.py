"""The ClickHouse family against ClickHouse's own engine, reached over HTTP through a stand-in.

Not a clickhouse-server process: none that clickhouse-connect can talk to installs here. Debian's
clickhouse-server is 18.16 (clickhouse-connect fails to connect: ``Unknown identifier: readonly`` in
``system.settings``; no Arrow formats, no ``{name:Type}`` parameters, no Date32/Map), and PyPI, npm, crates.io,
Maven Central and the Go proxy ship only clients (``clickhousectl`` downloads a server at run time, which fails
here). chDB 26.9 (pip ``chdb-core``) is ClickHouse's engine as a library; ``tests/support/clickhouse_standin.py``
puts a small HTTP front on it. Everything a query means — parsing, types, values, ArrowStream bytes, parameter
binding, ``readonly``, ``max_execution_time``, ``max_memory_usage``, ``system.processes`` — is ClickHouse's own;
the HTTP framing, and mapping ``KILL QUERY``'s query id to the running stream, are the stand-in's.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest

from nexus_flight.backends.clickhouse import ClickHouseBackend, bind_placeholders
from nexus_flight.core.errors import (
    BackendUnavailableError,
    ConfigError,
    InvalidQueryError,
    LimitExceededError,
    NotFoundError,
    QueryCancelledError,
    QueryTimeoutError,
    ReadOnlyViolationError,
)
from nexus_flight.core.source import QueryLimits, SourceSpec
from tests.backends.conftest import TPCH_QUERIES, normalized
from tests.support.results import plan_for, run
from tests.support.services import free_port, wait_until

#: An endless stream; the marker finds it in system.processes.
ENDLESS = "SELECT number, 'nexus-endless' AS marker FROM system.numbers WHERE number % 3 = 0"
SLOW = "SELECT count() AS n FROM numbers_mt(1000000000000) WHERE sipHash64(number) % 7 = 3 AND 'nexus-slow' != ''"


@pytest.fixture(scope="module")
def backend(clickhouse_server, clickhouse_tpch):
    made = ClickHouseBackend(SourceSpec("ch", "clickhouse", clickhouse_server.options()))
    yield made
    made.close()


def running(clickhouse_server, marker: str) -> int:
    """How many queries carrying ``marker`` the engine is running (its own system.processes)."""
    client = clickhouse_server.client()
    try:
        return client.query(
            "SELECT count() FROM system.processes WHERE query LIKE {m:String} AND query NOT LIKE '%system.processes%'",
            parameters={"m": f"%{marker}%"},
        ).result_rows[0][0]
    finally:
        client.close()


@pytest.mark.parametrize("name", sorted(TPCH_QUERIES))
def test_tpch_answers_match_duckdb(backend, duckdb_tpch, name):
    sql = TPCH_QUERIES[name]
    expected = duckdb_tpch.execute(sql.format(s="")).to_arrow_table()
    got = run(backend, sql.format(s="tpch."))
    assert got.column_names == expected.column_names
    assert normalized(got) == normalized(expected)


def test_decimals_stay_exact_and_typed(backend, duckdb_tpch):
    table = run(backend, "SELECT o_totalprice FROM tpch.orders WHERE o_orderkey = 1")
    assert str(table.schema.field(0).type) == "decimal128(15, 2)"
    expected = duckdb_tpch.execute("SELECT o_totalprice FROM orders WHERE o_orderkey = 1").fetchone()[0]
    assert table.column(0)[0].as_py() == expected


def test_writes_and_lifted_limits_refused_by_clickhouse_itself(backend):
    """The validator is not in front here: ``readonly=1`` on the request is what refuses."""
    for sql in (
        "INSERT INTO tpch.region VALUES (9, 'X', 'y')",
        "ALTER TABLE tpch.region DELETE WHERE 1",
        "DROP TABLE tpch.region",
        "CREATE TABLE tpch.evil (a Int8) ENGINE = Memory",
        "SELECT 1 SETTINGS readonly = 0",
        "SELECT count() FROM tpch.lineitem SETTINGS max_execution_time = 100000",
        "SELECT count() FROM tpch.lineitem SETTINGS max_memory_usage = 0",
        "OPTIMIZE TABLE tpch.region FINAL",
    ):
        with pytest.raises(ReadOnlyViolationError, match="readonly"):
            run(backend, sql)
    assert run(backend, "SELECT count() AS n FROM tpch.region").column(0).to_pylist() == [5]


def test_readonly_2_lets_settings_pass_but_still_no_writes(clickhouse_server, clickhouse_tpch):
    backend = ClickHouseBackend(SourceSpec("ch2", "clickhouse", clickhouse_server.options(readonly=2)))
    try:
        assert run(backend, "SELECT getSetting('max_threads') AS t SETTINGS max_threads = 1").num_rows == 1
        with pytest.raises(ReadOnlyViolationError):
            run(backend, "INSERT INTO tpch.region VALUES (9, 'X', 'y')")
        with pytest.raises(ReadOnlyViolationError):
            run(backend, "SELECT 1 SETTINGS readonly = 0")
    finally:
        backend.close()


def test_parameters_are_bound_by_clickhouse_as_typed_values(backend):
    plan = plan_for(backend, "SELECT ? , '?' , ?")
    assert bind_placeholders(plan.sql, plan.placeholders, [1, "x"]) == (
        "SELECT {p1:Int64} , '?' , {p2:String}",
        {"p1": 1, "p2": "x"},
    )
    cases = [
        ("SELECT n_name FROM tpch.nation WHERE n_nationkey = ?", [3], ["CANADA"]),
        ("SELECT n_name FROM tpch.nation WHERE n_name = ?", ["CANADA"], ["CANADA"]),
        ("SELECT n_name FROM tpch.nation WHERE n_name = ?", ["CANADA' OR '1'='1"], []),
        ("SELECT count() AS n FROM tpch.orders WHERE o_totalprice > ?", [Decimal("250000.50")], None),
        ("SELECT count() AS n FROM tpch.orders WHERE o_orderdate >= ?", [dt.date(1995, 1, 1)], None),
        ("SELECT count() AS n FROM tpch.orders WHERE o_orderdate >= ?", ["1995-01-01"], None),
        ("SELECT count() AS n FROM tpch.nation WHERE n_comment = ?", [None], [0]),
        ("SELECT ? AS t", [dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)], None),
        ("SELECT ? AS f, ? AS b", [0.5, True], None),
    ]
    for sql, row, expected in cases:
        table = run(backend, sql, [row])
        if expected is not None:
            assert table.column(0).to_pylist() == expected, sql
    stamp = run(backend, "SELECT ? AS t", [[dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)]]).column(0)[0].as_py()
    assert stamp.astimezone(dt.UTC) == dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)
    high = run(backend, "SELECT count() AS n FROM tpch.orders WHERE o_totalprice > ?", [[Decimal("250000.50")]])
    low = run(backend, "SELECT count() AS n FROM tpch.orders WHERE o_totalprice > ?", [[Decimal("250000.49")]])
    assert high.column(0)[0].as_py() <= low.column(0)[0].as_py()


def test_several_parameter_rows_run_once_each(backend):
    table = run(backend, "SELECT n_name FROM tpch.nation WHERE n_nationkey = ?", [[1], [2], [3]])
    assert table.column(0).to_pylist() == ["ARGENTINA", "BRAZIL", "CANADA"]


def test_cancel_stops_the_query_on_the_server(backend, clickhouse_server):
    execution = backend.execute(plan_for(backend, ENDLESS), None, QueryLimits(batch_rows=1000))
    assert execution.reader.read_next_batch().num_rows > 0
    assert running(clickhouse_server, "nexus-endless") == 1
    execution.cancel()
    with pytest.raises(QueryCancelledError):
        for _ in execution.reader:
            pass
    execution.close()
    assert wait_until(lambda: running(clickhouse_server, "nexus-endless") == 0, 10)
    assert run(backend, "SELECT count() AS n FROM tpch.region").column(0).to_pylist() == [5]


def test_timeout_stops_the_query_on_the_server(backend, clickhouse_server):
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError):
        run(backend, SLOW, timeout_seconds=1)
    assert time.monotonic() - started < 10
    assert wait_until(lambda: running(clickhouse_server, "nexus-slow") == 0, 10)


def test_memory_limit_is_the_servers_and_named(backend):
    with pytest.raises(LimitExceededError, match="max_memory_usage"):
        run(backend, "SELECT groupArray(toString(number)) AS a FROM numbers(20000000)", memory_limit_bytes=20 << 20)
    assert run(backend, "SELECT 1 AS one").num_rows == 1


def test_bad_sql_is_an_invalid_query_and_an_unknown_table_not_found(backend):
    """ClickHouse's error speaks of the statement as the client wrote it, nothing the gateway added."""
    with pytest.raises(InvalidQueryError, match="Syntax error") as broken:
        run(backend, "SELECT 1 +")
    assert "FORMAT" not in broken.value.message and "(end of query)" in broken.value.message
    with pytest.raises(ReadOnlyViolationError, match="only queries"):
        run(backend, "SELEC 1")
    with pytest.raises(NotFoundError, match="nexus_nope") as unknown:
        run(backend, "SELECT * FROM tpch.nexus_nope")
    assert "FORMAT" not in unknown.value.message
    with pytest.raises(InvalidQueryError, match="Syntax error") as described:
        backend.get_schema(plan_for(backend, "SELECT 1 +"))
    assert "FORMAT" not in described.value.message and "DESCRIBE" not in described.value.message


NATIONS = "SELECT n_nationkey, n_name FROM tpch.nation WHERE n_nationkey < ? ORDER BY n_nationkey"


@pytest.mark.parametrize(
    "tail",
    [" -- the last line is a comment", " -- FORMAT JSON", "\n-- a comment on its own line\n", " /* a block */",
     "; -- after a semicolon", ";"],
)
def test_a_statement_ending_in_a_comment_streams_arrow(backend, tail):
    """The format travels in the ``X-ClickHouse-Format`` header, so a trailing comment cannot swallow it."""
    expected = run(backend, NATIONS, [[3]])
    assert expected.column("n_name").to_pylist() == ["ALGERIA", "ARGENTINA", "BRAZIL"]
    got = run(backend, NATIONS + tail, [[3]])
    assert got.schema == expected.schema and got.equals(expected)
    with_tail, without = plan_for(backend, NATIONS + tail), plan_for(backend, NATIONS)
    assert backend.get_schema(with_tail) == backend.get_schema(without) == expected.schema


def test_a_format_clause_of_the_statement_is_refused_by_name(backend):
    """The statement's own FORMAT wins over the header in ClickHouse: the gateway says so instead of misreading."""
    with pytest.raises(InvalidQueryError, match="FORMAT JSONEachRow"):
        run(backend, "SELECT 1 AS one FORMAT JSONEachRow")
    assert run(backend, "SELECT 1 AS one").column(0).to_pylist() == [1]


def test_schema_without_running(backend, clickhouse_server):
    schema = backend.get_schema(plan_for(backend, SLOW))
    assert [(f.name, str(f.type)) for f in schema] == [("n", "uint64")]
    assert running(clickhouse_server, "nexus-slow") == 0


def test_metadata_databases_tables_views_comments_and_no_keys(backend):
    assert "tpch" in backend.list_schemas() and "system" not in backend.list_schemas()
    tables = {t.name: t.table_type for t in backend.list_tables("tpch")}
    assert tables["lineitem"] == "TABLE" and tables["nation_names"] == "VIEW"
    schema = backend.table_schema("tpch", "nation")
    assert schema.field("n_name").metadata == {b"comment": b"the nation's name"}
    assert backend.table_comments("tpch", "nation")[0] == "TPC-H nation"
    assert backend.primary_keys("tpch", "nation") == [] and backend.foreign_keys("tpch", "nation") == []
    with pytest.raises(NotFoundError):
        backend.table_schema("tpch", "nexus_no_such_table")


def test_unreachable_server_is_unavailable():
    backend = ClickHouseBackend(SourceSpec("gone", "clickhouse", {"port": free_port(), "connect_timeout_seconds": 2}))
    with pytest.raises(BackendUnavailableError):
        backend.ping()


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError):
        ClickHouseBackend(SourceSpec("bad", "clickhouse", {"readonly": 0}))


def test_the_engine_is_clickhouse(clickhouse_server):
    """What answers is ClickHouse's engine (a modern one), whatever HTTP front carries it."""
    client = clickhouse_server.client()
    version = client.command("SELECT version()")
    client.close()
    assert int(str(version).split(".")[0]) >= 25


def test_a_table_the_login_may_not_read_is_permission_denied_not_a_refused_login(make_gateway, clickhouse_server,
                                                                                  clickhouse_tpch):
    """ACCESS_DENIED (497) is about the statement: UNAVAILABLE would blame the gateway's credentials and mark the
    source down. The stand-in's login may not read ``system.users`` (no SHOW USERS grant)."""
    import adbc_driver_flightsql.dbapi as flightsql
    import adbc_driver_manager

    gw = make_gateway(sources=(SourceSpec("ch", "clickhouse", clickhouse_server.options()),), demo_scale=None)
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as refused:
            cur.execute("SELECT name FROM ch.system.users")
            cur.fetch_arrow_table()
        cur.execute("SELECT count(*) AS n FROM ch.tpch.nation")
        assert cur.fetch_arrow_table().column(0).to_pylist() == [25]
    message = str(refused.value)
    assert "(PermissionDenied;" in message and "Not enough privileges" in message, message
    assert "(source=ch)" in message and "credentials" not in message
