"""The MySQL-family backend against this run's own MariaDB (``mariadb_server``: root, no password)."""

from __future__ import annotations

import time
from decimal import Decimal

import pyarrow as pa
import pytest

from backends.base import DATABASE_TYPE_NAME, QueryLimits, SourceSpec
from backends.errors import (
    AuthenticationError,
    BackendUnavailableError,
    InvalidQueryError,
    NotFoundError,
    QueryCancelledError,
    QueryTimeoutError,
    ReadOnlyViolationError,
)
from backends.mysql import MySQLBackend
from tests.backends.conftest import TPCH_QUERIES, normalized
from tests.support.results import cancel_after_first_batch, read_in_background, run
from tests.support.services import free_port

DB = "nexus_tpch"


def make(server, **options) -> MySQLBackend:
    secrets = {k: options.pop(k) for k in ("password",) if k in options}
    return MySQLBackend(SourceSpec("mysrc", "mysql", {**server.options(DB), **options}, secrets))


@pytest.fixture(scope="module")
def prepared(mysql_tpch, mariadb_server):
    """Objects the read-only checks need: a table to count, a stored function that writes, charset columns."""
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
def backend(prepared, mariadb_server):
    with make(mariadb_server, pool_size=4) as b:
        yield b


def audit_count(server) -> int:
    con = server.connect()
    with con.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {DB}.nexus_audit")
        n = cur.fetchone()[0]
    con.close()
    return n


@pytest.mark.parametrize("name", sorted(TPCH_QUERIES))
def test_tpch_matches_duckdb_over_parquet(backend, duckdb_tpch, name):
    expected = duckdb_tpch.execute(TPCH_QUERIES[name].format(s="")).to_arrow_table()
    got = run(backend, TPCH_QUERIES[name].format(s=f"{DB}."))
    assert got.column_names == expected.column_names
    assert normalized(got) == normalized(expected)


def test_unqualified_tables_use_the_configured_database(backend):
    assert run(backend, "SELECT count(*) AS n FROM region").column("n").to_pylist() == [5]


def test_mysql_dialect_is_transpiled(backend):
    table = run(
        backend,
        "SELECT `n_name`, DATE_FORMAT(DATE '2024-03-05', '%Y-%m') AS ym, IFNULL(NULL, 7) AS x "
        "FROM nation WHERE n_nationkey = 1",
    )
    assert table.to_pylist() == [{"n_name": "ARGENTINA", "ym": "2024-03", "x": 7}]


def test_type_matrix(backend):
    table = run(backend, f"SELECT * FROM {DB}.nexus_types")
    types = {f.name: f.type for f in table.schema}
    assert types["t"] == pa.int8()
    assert types["ti1"] == pa.bool_()
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
    assert pa.types.is_timestamp(types["ts"])
    row = table.to_pylist()[0]
    assert row["d"] == Decimal("1234567890.12")
    assert row["dw"] == Decimal("12345678901234567890.0123456789")
    assert row["bu"] == 18446744073709551615
    assert row["bl"] == b"\xde\xad\xbe\xef"
    assert row["ts"].microsecond == 123456
    assert backend.get_schema(f"SELECT * FROM {DB}.nexus_types") == table.schema


def test_charsets_arrive_as_utf8(backend):
    row = run(backend, f"SELECT g, u, l1 FROM {DB}.nexus_types").to_pylist()[0]
    assert row == {"g": "中文字符", "u": "😀 é", "l1": "café"}


def test_bound_parameters(backend):
    table = run(backend, "SELECT n_name FROM nation WHERE n_nationkey = ? OR n_name = ?", [[1, "CHINA"]])
    assert sorted(table.column("n_name").to_pylist()) == ["ARGENTINA", "CHINA"]
    rows = run(backend, "SELECT n_name FROM nation WHERE n_nationkey = ?", [[3], [1]])
    assert rows.column("n_name").to_pylist() == ["CANADA", "ARGENTINA"]


def test_parameter_schema_is_concrete(backend):
    schema = backend.get_parameter_schema("SELECT * FROM orders WHERE o_orderkey = ? AND o_orderdate > ?", 2)
    assert [f.type for f in schema] == [pa.int64(), pa.date32()]


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
def test_writes_refused_by_the_read_only_attachment(backend, sql):
    with pytest.raises(ReadOnlyViolationError, match="read-only"):
        run(backend, sql)
    assert run(backend, f"SELECT count(*) AS n FROM {DB}.region").column("n").to_pylist() == [5]


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT * FROM mysql_query('src', 'SELECT {DB}.nexus_write()')",
        f"SELECT mysql_execute('src', 'DELETE FROM {DB}.region')",
    ],
)
def test_pass_through_functions_refused(backend, sql, mariadb_server):
    before = audit_count(mariadb_server)
    with pytest.raises(ReadOnlyViolationError, match="mysql_"):
        run(backend, sql)
    assert audit_count(mariadb_server) == before


def test_unparsed_statements_are_refused(backend):
    for sql in ("CALL mysql_clear_cache()", "LOAD 'x'"):
        with pytest.raises(ReadOnlyViolationError):
            run(backend, sql)


def test_stored_function_that_writes_cannot_run(backend, mariadb_server):
    before = audit_count(mariadb_server)
    with pytest.raises((InvalidQueryError, NotFoundError)):
        run(backend, f"SELECT {DB}.nexus_write() AS w")
    assert audit_count(mariadb_server) == before


def test_cancel_mid_stream(backend):
    execution = backend.execute("SELECT l.*, n.* FROM lineitem l, nation n", None, QueryLimits(batch_rows=2048))
    cancel_after_first_batch(execution)
    assert run(backend, "SELECT count(*) AS n FROM region").column("n").to_pylist() == [5]


def test_cancel_while_the_first_batch_is_computed(backend):
    execution = backend.execute(
        "SELECT count(*) FROM lineitem a, lineitem b WHERE a.l_orderkey + b.l_orderkey = 7",
        None,
        QueryLimits(),
    )
    thread, errors = read_in_background(execution)
    thread.join(0.3)
    execution.cancel()
    thread.join(20)
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], QueryCancelledError)
    execution.close()


def test_timeout(backend):
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError):
        run(
            backend,
            "SELECT count(*) FROM lineitem a, lineitem b WHERE a.l_orderkey + b.l_orderkey = 7",
            timeout_seconds=0.5,
        )
    assert time.monotonic() - started < 10


def test_introspection(backend):
    assert DB in backend.list_schemas()
    assert "mysql" not in backend.list_schemas()
    tables = {t.name: t.table_type for t in backend.list_tables(DB)}
    assert tables["lineitem"] == "TABLE"
    assert tables["nation_names"] == "VIEW"
    assert [(k.column, k.key_sequence) for k in backend.primary_keys(DB, "lineitem")] == [
        ("l_orderkey", 1),
        ("l_linenumber", 2),
    ]
    assert backend.table_schema(DB, "orders").field("o_totalprice").type == pa.decimal128(15, 2)
    with pytest.raises(NotFoundError):
        backend.table_schema(DB, "no_such_table")


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
