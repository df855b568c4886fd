"""The MySQL-family backend against this run's own MariaDB, logged in as the least-privilege reader."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from decimal import Decimal

import pyarrow as pa
import pytest

from nexus_flight.backends.base import DATABASE_TYPE_NAME
from nexus_flight.backends.mysql import MySQLBackend
from nexus_flight.backends.mysql_grants import excess_privileges
from nexus_flight.core.dialects import sql_dialect
from nexus_flight.core.errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConfigError,
    ForbiddenError,
    GatewayError,
    NotFoundError,
    QueryCancelledError,
    QueryTimeoutError,
    ReadOnlyViolationError,
)
from nexus_flight.core.source import QueryLimits, SourceSpec
from tests.backends.conftest import TPCH_QUERIES, normalized
from tests.support.mysql_reader import READER_PASSWORD, ensure_reader, global_sql_mode
from tests.support.results import cancel_after_first_batch, held_then_cancelled, late, plan_for, read_in_background, run
from tests.support.services import free_port

DB = "nexus_tpch"
#: A statement that keeps the server busy for many seconds before its first row.
SLOW = "SELECT count(*) AS n FROM lineitem a, lineitem b WHERE a.l_orderkey + b.l_orderkey = 7"


def make(server, **options) -> MySQLBackend:
    """A backend logged in as root (allowed explicitly), or as ``username`` with ``password``."""
    secrets = {k: options.pop(k) for k in ("password",) if k in options}
    options = {"allow_privileged_login": True, **options}
    return MySQLBackend(SourceSpec("mysrc", "mysql", {**server.options(DB), **options}, secrets))


@pytest.fixture(scope="module")
def prepared(mysql_tpch, mariadb_server):
    """Objects the checks need: a table to count, a stored function that writes, charset columns."""
    con = mariadb_server.connect()
    with con.cursor() as cur:
        # Idempotent (no DROP, no DELETE): other test runs may use these objects at the same time.
        cur.execute(f"CREATE TABLE IF NOT EXISTS {DB}.nexus_audit (a int)")
        cur.execute(
            f"CREATE FUNCTION IF NOT EXISTS {DB}.nexus_write() RETURNS INT MODIFIES SQL DATA "
            f"BEGIN INSERT INTO {DB}.nexus_audit VALUES (1); RETURN 1; END"
        )
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {DB}.nexus_types (id int PRIMARY KEY, t tinyint, ti1 tinyint(1), s smallint, "
            "m mediumint, bu bigint unsigned, d decimal(12,2), dw decimal(38,10), f float, db double, "
            "c char(3), v varchar(20), tx text, e enum('a','b'), j json, bl blob, dt date, "
            "ts datetime(6), tz timestamp NULL, g varchar(20) CHARACTER SET gbk, "
            "u varchar(20) CHARACTER SET utf8mb4, l1 varchar(20) CHARACTER SET latin1)"
        )
        cur.execute(
            f"INSERT IGNORE INTO {DB}.nexus_types VALUES (1, -5, 1, 300, 70000, "
            f"18446744073709551615, 1234567890.12, "
            "12345678901234567890.0123456789, 1.5, 2.25, 'abc', 'vc', 'text', 'b', '{\"k\": "
            "1}', x'DEADBEEF', "
            "'2024-02-29', '2024-01-01 12:00:00.123456', '2024-01-01 12:00:00', %s, %s, %s)",
            ("中文字符", "😀 é", "café"),
        )
    con.close()
    return DB


@pytest.fixture(scope="module")
def reader_options(prepared, mariadb_server) -> dict:
    return ensure_reader(mariadb_server, DB)


@pytest.fixture(scope="module")
def backend(reader_options):
    spec = SourceSpec("mysrc", "mysql", {**reader_options, "pool_size": 4}, {"password": READER_PASSWORD})
    with MySQLBackend(spec) as b:
        yield b


@pytest.fixture(scope="module")
def root_backend(prepared, mariadb_server):
    """A privileged login, accepted only because its options say so: the read-only sessions must hold alone."""
    with make(mariadb_server, pool_size=2) as b:
        yield b


def audit_count(server) -> int:
    con = server.connect()
    with con.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {DB}.nexus_audit")
        n = cur.fetchone()[0]
    con.close()
    return n


def server_running(server, fragment: str) -> list[str]:
    """Statements containing ``fragment`` that the server is running now (processlist, seen as root)."""
    con = server.connect()
    with con.cursor() as cur:
        cur.execute(
            "SELECT INFO FROM information_schema.PROCESSLIST WHERE COMMAND IN ('Query', 'Execute') AND INFO LIKE %s "
            "AND ID <> CONNECTION_ID()",
            (f"%{fragment}%",),
        )
        rows = [r[0] for r in cur.fetchall()]
    con.close()
    return rows


def wait_until_gone(server, fragment: str, seconds: float = 5.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := server_running(server, fragment)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# -- answers with MariaDB's own semantics -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TPCH_QUERIES))
def test_tpch_matches_duckdb_over_parquet(backend, duckdb_tpch, name):
    expected = duckdb_tpch.execute(TPCH_QUERIES[name].format(s="")).to_arrow_table()
    got = run(backend, TPCH_QUERIES[name].format(s=f"{DB}."))
    assert got.column_names == expected.column_names
    assert normalized(got) == normalized(expected)


def test_unqualified_tables_use_the_configured_database(backend):
    assert run(backend, "SELECT count(*) AS n FROM region").column("n").to_pylist() == [5]


def test_mysql_functions_run_on_the_server(backend):
    table = run(
        backend,
        "SELECT `n_name`, DATE_FORMAT(DATE '2024-03-05', '%Y-%m') AS ym, IFNULL(NULL, 7) AS x "
        "FROM nation WHERE n_nationkey = 1",
    )
    assert table.to_pylist() == [{"n_name": "ARGENTINA", "ym": "2024-03", "x": 7}]


def test_avg_and_division_of_decimals_stay_exact_decimals(backend, mariadb_server):
    """MariaDB answers AVG(DECIMAL) and DECIMAL / n as DECIMAL; DuckDB's semantics turned them into doubles."""
    sql = "SELECT avg(l_quantity) AS a, sum(l_extendedprice) / 7 AS q FROM lineitem"
    got = run(backend, sql)
    con = mariadb_server.connect(DB)
    with con.cursor() as cur:
        cur.execute(sql)
        expected = cur.fetchone()
    con.close()
    assert pa.types.is_decimal(got.schema.field("a").type) and pa.types.is_decimal(got.schema.field("q").type)
    assert got.to_pylist() == [{"a": expected[0], "q": expected[1]}]
    assert isinstance(expected[0], Decimal) and got.schema.field("a").type.scale == 6


def test_date_minus_interval_is_a_date(backend):
    got = run(backend, "SELECT o_orderdate - INTERVAL 1 DAY AS d FROM orders WHERE o_orderkey = 1")
    assert got.schema.field("d").type == pa.date32()
    assert got.column("d").to_pylist() == [dt.date(1996, 1, 1)]


def test_column_names_are_the_ones_the_client_wrote(backend):
    got = run(backend, "SELECT count(*), sum(n_nationkey), n_regionkey FROM nation GROUP BY n_regionkey LIMIT 1")
    assert got.column_names == ["count(*)", "sum(n_nationkey)", "n_regionkey"]


def test_timestamp_columns_arrive_as_utc(backend):
    got = run(backend, f"SELECT tz FROM {DB}.nexus_types")
    assert got.schema.field("tz").type == pa.timestamp("us", tz="UTC")
    assert got.column("tz").to_pylist() == [dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)]


def test_cte_with_aggregate(backend):
    """``WITH x AS (…) SELECT count(*) AS n FROM x`` failed with an INTERNAL error through DuckDB."""
    assert run(backend, "WITH x AS (SELECT n_nationkey FROM nation) SELECT count(*) AS n FROM x").to_pylist() == [
        {"n": 25}
    ]


def test_type_matrix(backend):
    table = run(backend, f"SELECT * FROM {DB}.nexus_types")
    types = {f.name: f.type for f in table.schema}
    assert types["t"] == types["ti1"] == pa.int8()  # BOOLEAN is TINYINT(1): the engine answers 0/1
    assert types["s"] == pa.int16()
    assert types["m"] == pa.int32()
    assert types["bu"] == pa.uint64()
    assert types["d"] == pa.decimal128(12, 2)
    assert types["dw"] == pa.decimal128(38, 10)
    assert types["f"] == pa.float32()
    assert types["db"] == pa.float64()
    assert types["v"] == types["c"] == types["tx"] == types["e"] == types["j"] == pa.utf8()
    assert types["bl"] == pa.binary()
    assert types["dt"] == pa.date32()
    assert types["ts"] == pa.timestamp("us")
    row = table.to_pylist()[0]
    assert row["d"] == Decimal("1234567890.12")
    assert row["dw"] == Decimal("12345678901234567890.0123456789")
    assert row["bu"] == 18446744073709551615
    assert row["bl"] == b"\xde\xad\xbe\xef"
    assert row["ts"].microsecond == 123456
    assert backend.get_schema(plan_for(backend, f"SELECT * FROM {DB}.nexus_types")) == table.schema


def test_charsets_arrive_as_utf8(backend):
    row = run(backend, f"SELECT g, u, l1 FROM {DB}.nexus_types").to_pylist()[0]
    assert row == {"g": "中文字符", "u": "😀 é", "l1": "café"}


def test_schema_of_statements_that_cannot_be_wrapped(backend):
    twice = plan_for(backend, "SELECT n_nationkey, n_nationkey FROM nation")
    assert backend.get_schema(twice).names == ["n_nationkey"] * 2
    assert backend.get_schema(plan_for(backend, "SHOW TABLES")).names == [f"Tables_in_{DB}"]
    assert run(backend, "SELECT 1 AS a -- a trailing comment").to_pylist() == [{"a": 1}]


# -- parameters: bound by the server's protocol -------------------------------------------------------------


def test_bound_parameters(backend):
    table = run(backend, "SELECT n_name FROM nation WHERE n_nationkey = ? OR n_name = ?", [[1, "CHINA"]])
    assert sorted(table.column("n_name").to_pylist()) == ["ARGENTINA", "CHINA"]
    rows = run(backend, "SELECT n_name FROM nation WHERE n_nationkey = ?", [[3], [1]])
    assert rows.column("n_name").to_pylist() == ["CANADA", "ARGENTINA"]


@pytest.mark.parametrize(
    "value",
    [
        "x\\' OR 1=1 -- ",
        "x\\' UNION SELECT CAST(load_file('/etc/hostname') AS CHAR) -- ",
        "x' OR '1'='1",
        "\\",
    ],
)
def test_a_parameter_never_becomes_sql(backend, value):
    """A backslash-escaped quote ended the string in DuckDB's pushed-down filter and returned every row."""
    assert run(backend, "SELECT n_name FROM nation WHERE n_name = ?", [[value]]).num_rows == 0


def test_parameter_types(backend):
    cases = [
        ("SELECT count(*) AS n FROM orders WHERE o_totalprice > ?", Decimal("250000.50")),
        ("SELECT count(*) AS n FROM orders WHERE o_orderdate >= ?", dt.date(1995, 1, 1)),
        ("SELECT count(*) AS n FROM orders WHERE o_orderdate >= ?", "1995-01-01"),
        ("SELECT count(*) AS n FROM lineitem WHERE l_discount < ?", 0.03),
        ("SELECT count(*) AS n FROM nation WHERE n_comment = ?", None),
    ]
    counts = [run(backend, sql, [[value]]).column("n")[0].as_py() for sql, value in cases]
    assert counts[1] == counts[2] > 0 and counts[0] > 0 and counts[3] > 0 and counts[4] == 0


def test_parameter_schema_is_concrete(backend):
    plan = plan_for(backend, "SELECT * FROM orders WHERE o_orderkey = ? AND o_orderdate > ?")
    schema = backend.get_parameter_schema(plan)
    assert [f.type for f in schema] == [pa.int64(), pa.date32()]


# -- read-only, twice ---------------------------------------------------------------------------------------


def test_a_privileged_login_is_refused(prepared, mariadb_server):
    with pytest.raises(ConfigError) as info:
        MySQLBackend(SourceSpec("mysrc", "mysql", mariadb_server.options(DB)))
    message = info.value.message
    assert "ALL PRIVILEGES" in message and "GRANT SELECT" in message and "allow_privileged_login" in message


@pytest.mark.parametrize("privilege", ["FILE", "PROCESS", "SUPER", "INSERT", "EXECUTE"])
def test_each_dangerous_privilege_is_refused(prepared, mariadb_server, privilege):
    user = f"nexus_{privilege.lower()}"
    con = mariadb_server.connect()
    with con.cursor() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'pw'")
        cur.execute(f"GRANT SELECT ON {DB}.* TO '{user}'@'%'")
        target = "*.*" if privilege in ("FILE", "PROCESS", "SUPER") else f"{DB}.*"
        cur.execute(f"GRANT {privilege} ON {target} TO '{user}'@'%'")
    con.close()
    with pytest.raises(ConfigError, match=privilege):
        MySQLBackend(SourceSpec("s", "mysql", mariadb_server.options(DB, username=user), {"password": "pw"}))


def test_privileges_through_a_role_count(prepared, mariadb_server):
    con = mariadb_server.connect()
    with con.cursor() as cur:
        cur.execute("CREATE ROLE IF NOT EXISTS nexus_writer_role")
        cur.execute(f"GRANT INSERT ON {DB}.* TO nexus_writer_role")
        cur.execute("CREATE USER IF NOT EXISTS 'nexus_role_user'@'%' IDENTIFIED BY 'pw'")
        cur.execute(f"GRANT SELECT ON {DB}.* TO 'nexus_role_user'@'%'")
        cur.execute("GRANT nexus_writer_role TO 'nexus_role_user'@'%'")
    con.close()
    options = mariadb_server.options(DB, username="nexus_role_user")
    with pytest.raises(ConfigError, match="nexus_writer_role"):
        MySQLBackend(SourceSpec("s", "mysql", options, {"password": "pw"}))


def test_grant_lines_are_read():
    grants = [
        "GRANT USAGE ON *.* TO `r`@`%` IDENTIFIED BY PASSWORD '*ABC'",
        "GRANT SELECT (a, b), SHOW VIEW ON `db`.`t` TO `r`@`%`",
        "GRANT `role1` TO `r`@`%`",
    ]
    roles = {"`role1`": ["GRANT SELECT, LOCK TABLES ON `db`.* TO `role1`"]}
    assert excess_privileges(grants, lambda role: roles[role]) == ["LOCK TABLES"]
    assert excess_privileges(["GRANT SELECT ON *.* TO `u`@`%` WITH GRANT OPTION"], dict) == ["GRANT OPTION"]
    # An engine answering in another form cannot show a read-only login: refused, not waved through.
    assert excess_privileges(["'u'@'%'", "Select_priv"], dict) != []


@pytest.mark.parametrize(
    "sql",
    [
        f"INSERT INTO {DB}.region VALUES (99, 'X', 'y')",
        f"UPDATE {DB}.region SET r_comment = 'z'",
        f"DELETE FROM {DB}.region",
        f"CREATE TABLE {DB}.nexus_written (a int)",
        f"DROP TABLE {DB}.region",
    ],
)
def test_writes_refused_for_the_reader_and_for_a_privileged_read_only_session(backend, root_backend, sql):
    with pytest.raises(ReadOnlyViolationError):
        run(backend, sql)
    with pytest.raises(ReadOnlyViolationError, match="READ ONLY"):
        run(root_backend, sql)
    assert run(backend, f"SELECT count(*) AS n FROM {DB}.region").column("n").to_pylist() == [5]


def test_stored_function_that_writes_cannot_run(backend, root_backend, mariadb_server):
    before = audit_count(mariadb_server)
    with pytest.raises((ForbiddenError, ReadOnlyViolationError)):
        run(backend, f"SELECT {DB}.nexus_write() AS w")
    with pytest.raises(ReadOnlyViolationError):
        run(root_backend, f"SELECT {DB}.nexus_write() AS w")
    assert audit_count(mariadb_server) == before


def test_a_second_statement_is_never_run(root_backend):
    with pytest.raises(GatewayError):
        run(root_backend, f"SELECT 1; DROP TABLE {DB}.nexus_audit")
    assert run(root_backend, f"SELECT count(*) AS n FROM {DB}.nexus_audit").num_rows == 1


def test_session_changes_do_not_reach_the_next_query(root_backend):
    """Whatever a statement sets in its session (zone, read-write, variables), the next borrower starts clean."""
    # The pool lends its most recently returned connection first: each statement below meets the same session.
    for sql in ("SET SESSION TRANSACTION READ WRITE", "SET time_zone = '+05:00'", "SET @nexus_x = 1"):
        run(root_backend, sql)
    got = run(root_backend, "SELECT @@session.time_zone AS z, @@session.tx_read_only AS ro, @nexus_x AS x")
    assert got.to_pylist() == [{"z": "+00:00", "ro": 1, "x": None}]


def _one_connection(reader_options) -> SourceSpec:
    return SourceSpec("mysrc", "mysql", {**reader_options, "pool_size": 1}, {"password": READER_PASSWORD})


def test_double_quotes_name_and_backslashes_escape_whatever_the_servers_own_mode(reader_options, mariadb_server):
    """Sessions read SQL as the gateway does (``core/dialects.py``): ``"c"`` names a column (ANSI_QUOTES) and ``\\'``
    escapes a quote, on a server whose own sql_mode says neither (NO_BACKSLASH_ESCAPES), after a reset too."""
    sql = """SELECT "c" AS quoted, 'it\\'s' AS text FROM nexus_types WHERE "id" = 1"""
    with global_sql_mode(mariadb_server, "NO_BACKSLASH_ESCAPES"), MySQLBackend(_one_connection(reader_options)) as b:
        answers = [run(b, sql).to_pylist() for _ in range(2)]  # the second on a connection reset
    assert answers == [[{"quoted": "abc", "text": "it's"}]] * 2


def test_sessions_read_mysqls_own_grammar_on_a_server_in_oracle_mode(reader_options, mariadb_server):
    """MariaDB's ORACLE mode parses another grammar (PL/SQL): the sessions drop it and the other reading modes,
    keeping the server's other modes (ORACLE's PIPES_AS_CONCAT among them) and adding ANSI_QUOTES."""
    with global_sql_mode(mariadb_server, "ORACLE,STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES"), \
            MySQLBackend(_one_connection(reader_options)) as b:
        [got] = run(b, "SELECT @@SESSION.sql_mode AS m").to_pylist()
    session = set(filter(None, got["m"].split(",")))
    assert {"ANSI_QUOTES", "STRICT_TRANS_TABLES", "PIPES_AS_CONCAT"} <= session
    assert not session & {"ORACLE", "NO_BACKSLASH_ESCAPES"}


def test_a_product_with_a_dialect_of_its_own_keeps_double_quotes_as_strings(reader_options):
    """Doris and StarRocks, like sqlglot's dialects of them, read ``"c"`` as a string: their sessions are left so."""
    assert sql_dialect("doris").parse('SELECT "c"')[0].selects[0].is_string
    options = {**reader_options, "pool_size": 1}
    with MySQLBackend(SourceSpec("mysrc", "mysql", options, {"password": READER_PASSWORD}, dialect="doris")) as b:
        assert run(b, """SELECT "c" AS q FROM nexus_types WHERE id = 1""").to_pylist() == [{"q": "c"}]


# -- cancel and timeouts reach the server ---------------------------------------------------------------------


def test_cancel_mid_stream(backend):
    plan = plan_for(backend, "SELECT l.*, n.* FROM lineitem l, nation n")
    execution = backend.execute(plan, None, QueryLimits(batch_rows=2048))
    cancel_after_first_batch(execution)
    assert run(backend, "SELECT count(*) AS n FROM region").column("n").to_pylist() == [5]


def test_cancel_kills_the_query_on_the_server(backend, mariadb_server):
    marker = uuid.uuid4().hex[:12]
    execution = backend.execute(plan_for(backend, f"{SLOW} AND '{marker}' <> ''"), None, QueryLimits())
    thread, errors = read_in_background(execution)
    deadline = time.monotonic() + 10
    while not server_running(mariadb_server, marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server_running(mariadb_server, marker), "the query never reached the server"
    execution.cancel()
    thread.join(20)
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], QueryCancelledError)
    assert wait_until_gone(mariadb_server, marker) == []
    execution.close()


def test_a_cancel_that_reaches_the_server_before_the_statement_still_kills_it(backend, mariadb_server,
                                                                               monkeypatch):
    """A KILL QUERY for a connection that runs nothing stops nothing; that cancel must not be lost.

    The real server and query; only the moment is forced: the reading thread is held after the execution marked
    itself running and before the statement leaves (binding its parameter, as a busy server's scheduler may
    hold it), and the cancel lands there. The query alone runs far longer than the test waits.
    """
    import threading

    marker, held = uuid.uuid4().hex[:12], threading.Event()
    monkeypatch.setattr(backend, "bindable", late(backend.bindable, held))
    execution = backend.execute(plan_for(backend, f"{SLOW} AND '{marker}' <> '' AND ? = 1"), [[1]], QueryLimits())
    held_then_cancelled(execution, held)
    assert wait_until_gone(mariadb_server, marker) == []


def test_timeout_kills_the_query_on_the_server(backend, mariadb_server):
    marker = uuid.uuid4().hex[:12]
    started = time.monotonic()
    # The server's statement timeout and the gateway's deadline are both 0.5 s: whichever stops it, the error
    # names the limit.
    with pytest.raises(QueryTimeoutError, match=r"0\.5 ?s"):
        run(backend, f"{SLOW} AND '{marker}' <> ''", timeout_seconds=0.5)
    assert time.monotonic() - started < 10
    assert wait_until_gone(mariadb_server, marker) == []


#: Runs in a child process, so that a driver crash fails the test instead of ending the test run.
_READ_TO_THE_END = textwrap.dedent("""
    import json, sys
    from nexus_flight.backends.mysql import MySQLBackend
    from nexus_flight.core.errors import GatewayError
    from nexus_flight.core.source import SourceSpec
    from tests.support.results import run

    options, password, queries = json.loads(sys.argv[1])
    with MySQLBackend(SourceSpec("mysrc", "mysql", options, {"password": password})) as backend:
        for sql, limits in queries:
            try:
                answer = run(backend, sql, **limits).num_rows
            except GatewayError as exc:
                answer = f"{type(exc).__name__}: {exc.message}"
            print(json.dumps(answer), flush=True)
""")


def test_an_error_in_place_of_a_row_is_raised_not_read_as_a_row(reader_options):
    """The server's error where a row was expected is the query's error (the driver makes a row of it).

    Before its first row (the statement stopped at its time limit), after rows of earlier batches, and a value
    that fails mid-result: each ends with its own error, and the process lives on to answer the next query.
    """
    queries = [
        ("SELECT 1 AS a, sleep(5) AS b", {"timeout_seconds": 0.3}),
        ("SELECT seq, IF(seq = 3000, sleep(5), 0) AS s FROM seq_1_to_5000",
         {"timeout_seconds": 1.0, "batch_rows": 1000}),
        ("SELECT seq, (SELECT x FROM (SELECT 1 AS x UNION SELECT 2) AS t WHERE seq = 2500) AS y FROM seq_1_to_9000",
         {}),
        ("SELECT count(*) AS n FROM region", {}),
    ]
    argument = json.dumps([reader_options, READER_PASSWORD, queries])
    child = subprocess.run([sys.executable, "-c", _READ_TO_THE_END, argument], capture_output=True, text=True,
                           timeout=60)
    assert child.returncode == 0, f"the child ended with {child.returncode}: {child.stderr[-2000:]}"
    answers = [json.loads(line) for line in child.stdout.splitlines()]
    # The server's statement timeout or the gateway's deadline stops it: either way the error names the limit.
    assert answers[0].startswith("QueryTimeoutError") and re.search(r"0\.3 ?s", answers[0])
    assert answers[1].startswith("QueryTimeoutError") and re.search(r"\b1 ?s", answers[1])
    assert answers[2].startswith("InvalidQueryError") and "Subquery returns more than 1 row" in answers[2]
    assert answers[3] == 1


def test_server_side_statement_timeout_is_set(backend):
    got = run(backend, "SELECT @@session.max_statement_time AS t", timeout_seconds=7)
    assert got.column("t").to_pylist() == [7.0]


# -- metadata from the configured database, as it is now ----------------------------------------------------


def test_introspection(backend):
    assert backend.list_schemas() == [DB]
    tables = {t.name: t.table_type for t in backend.list_tables(DB)}
    assert tables["lineitem"] == "TABLE"
    assert tables["nation_names"] == "VIEW"
    assert backend.list_tables("mysql") == []
    assert [(k.column, k.key_sequence) for k in backend.primary_keys(DB, "lineitem")] == [
        ("l_orderkey", 1),
        ("l_linenumber", 2),
    ]
    schema = backend.table_schema(DB, "orders")
    assert schema.field("o_totalprice").type == pa.decimal128(15, 2)
    assert not schema.field("o_totalprice").nullable
    with pytest.raises(NotFoundError):
        backend.table_schema(DB, "no_such_table")


def test_objects_created_after_first_use_are_visible(backend, mariadb_server):
    assert backend.list_schemas() == [DB]
    name = f"nexus_late_{uuid.uuid4().hex[:8]}"
    con = mariadb_server.connect()
    with con.cursor() as cur:
        cur.execute(f"CREATE TABLE {DB}.{name} (a int NOT NULL)")
        cur.execute(f"INSERT INTO {DB}.{name} VALUES (41), (42)")
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {name}")  # another database: not this source's
    con.close()
    try:
        assert run(backend, f"SELECT sum(a) AS s FROM {name}").column("s").to_pylist() == [Decimal(83)]
        assert name in {t.name for t in backend.list_tables(DB)}
        assert backend.table_schema(DB, name).field("a").type == pa.int32()
        assert backend.list_schemas() == [DB]
    finally:
        con = mariadb_server.connect()
        with con.cursor() as cur:
            cur.execute(f"DROP TABLE {DB}.{name}")
            cur.execute(f"DROP DATABASE {name}")
        con.close()


def test_unknown_table_is_not_found(backend):
    with pytest.raises(NotFoundError, match="doesn't exist"):
        run(backend, "SELECT * FROM no_such_table_here")


def test_table_schema_carries_the_servers_type_names_and_not_nulls(backend, mariadb_server):
    """As information_schema.COLUMNS says: COLUMN_TYPE, and NOT NULL (o_custkey was made NULL for its key)."""
    con = mariadb_server.connect()
    try:
        with con.cursor() as cur:
            cur.execute(
                "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE = 'YES' FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'orders' ORDER BY ORDINAL_POSITION",
                (DB,),
            )
            expected = [(name, kind, bool(nullable)) for name, kind, nullable in cur.fetchall()]
    finally:
        con.close()
    schema = backend.table_schema(DB, "orders")
    got = [(f.name, f.metadata[DATABASE_TYPE_NAME].decode(), f.nullable) for f in schema]
    assert got == expected
    assert ("o_totalprice", "decimal(15,2)", False) in got and ("o_custkey", "bigint(20)", True) in got


def test_foreign_keys_with_rules(backend):
    keys = {(k.fk.table, k.pk.table): k for k in backend.foreign_keys(DB, "nation")}
    nation_region = keys[("nation", "region")]
    assert (nation_region.fk.column, nation_region.pk.column) == ("n_regionkey", "r_regionkey")
    assert (nation_region.update_rule, nation_region.delete_rule) == (0, 1)
    customer_nation = keys[("customer", "nation")]
    assert (customer_nation.update_rule, customer_nation.delete_rule) == (3, 2)


# -- connecting ----------------------------------------------------------------------------------------------


def test_wrong_port_is_unavailable(mariadb_server):
    with pytest.raises(BackendUnavailableError) as info:
        make(mariadb_server, port=free_port())
    assert info.value.details["source"] == "mysrc"


def test_wrong_credentials_are_authentication_errors_without_the_secret(mariadb_server):
    with pytest.raises(AuthenticationError) as info:
        make(mariadb_server, username="root", password="Wrong-Secret-77")
    assert "Wrong-Secret-77" not in info.value.client_message()
    assert "Access denied" in info.value.message


def test_unknown_database_is_not_found(mariadb_server):
    with pytest.raises(NotFoundError, match="nexus_no_such_db"):
        make(mariadb_server, database="nexus_no_such_db")


def test_parallel_queries_share_the_pool(backend):
    results: list[int] = []

    def one() -> None:
        results.append(run(backend, "SELECT count(*) AS n FROM orders").column("n")[0].as_py())

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 6 and len(set(results)) == 1


@pytest.mark.parametrize(
    "sql",
    [
        SLOW,
        f"{SLOW} LIMIT 1",
        f"{SLOW} UNION ALL SELECT 1",
        "SELECT sleep(3) AS s",
        "SELECT sleep(3) AS s UNION SELECT 1",
    ],
)
def test_planning_does_not_run_the_query(backend, sql):
    started = time.monotonic()
    assert backend.get_schema(plan_for(backend, sql)).names in (["n"], ["s"])
    assert time.monotonic() - started < 1.5
