"""The PostgreSQL backend against this run's own PostgreSQL (``postgres_server``: trust auth, database ``test``)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from nexus_flight.backends.postgres import PostgresBackend, numbered_placeholders
from nexus_flight.core.errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConfigError,
    ForbiddenError,
    InvalidQueryError,
    NotFoundError,
    QueryCancelledError,
    QueryTimeoutError,
    ReadOnlyViolationError,
    UnsupportedError,
)
from nexus_flight.core.source import QueryLimits, SourceSpec
from tests.backends.conftest import TPCH_QUERIES, normalized
from tests.support.results import cancel_after_first_batch, held_then_cancelled, late, plan_for, read_in_background, run
from tests.support.services import free_port, wait_until

SCHEMA = "nexus_tpch"
#: Unique per run, so queries of other test runs on the same server are never mistaken for ours.
RUN = uuid.uuid4().hex[:8]


def make(server, **options) -> PostgresBackend:
    secrets = {k: options.pop(k) for k in ("password",) if k in options}
    return PostgresBackend(SourceSpec("pgsrc", "postgres", {**server.options(), **options}, secrets))


@pytest.fixture(scope="module")
def backend(pg_tpch, postgres_server):
    with make(postgres_server, pool_size=4) as b:
        yield b


@pytest.mark.parametrize("name", sorted(TPCH_QUERIES))
def test_tpch_matches_duckdb_over_parquet(backend, duckdb_tpch, name):
    expected = duckdb_tpch.execute(TPCH_QUERIES[name].format(s="")).to_arrow_table()
    got = run(backend, TPCH_QUERIES[name].format(s=f"{SCHEMA}."))
    assert got.column_names == expected.column_names
    assert normalized(got) == normalized(expected)


def test_decimal_columns_keep_precision_and_scale(backend):
    schema = backend.table_schema(SCHEMA, "lineitem")
    assert schema.field("l_extendedprice").type == pa.decimal128(15, 2)
    assert schema.field("l_orderkey").type == pa.int64()
    assert schema.field("l_shipdate").type == pa.date32()


def test_type_matrix(backend):
    sql = """SELECT 1::smallint AS i2, 2::int AS i4, 3::bigint AS i8, 1.5::real AS f4, 2.5::float8 AS f8,
        12345.678::numeric(10,3) AS dec, 1.25::numeric AS num_free, 'x'::text AS txt, true AS b,
        DATE '2024-02-29' AS d, TIMESTAMP '2024-01-01 12:00:00' AS ts,
        TIMESTAMPTZ '2024-01-01 12:00:00+02' AS tstz, INTERVAL '1 month 2 days 3 seconds' AS iv,
        ARRAY[1,2,3]::int[] AS arr, '{"k": [1, 2]}'::jsonb AS jb, '{"k":1}'::json AS js,
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, '\\xdeadbeef'::bytea AS by"""
    table = run(backend, sql)
    types = {f.name: f.type for f in table.schema}
    assert types == {
        "i2": pa.int16(),
        "i4": pa.int32(),
        "i8": pa.int64(),
        "f4": pa.float32(),
        "f8": pa.float64(),
        "dec": pa.decimal128(10, 3),
        "num_free": pa.decimal128(38, 2),
        "txt": pa.utf8(),
        "b": pa.bool_(),
        "d": pa.date32(),
        "ts": pa.timestamp("us"),
        "tstz": pa.timestamp("us", tz="UTC"),
        "iv": pa.month_day_nano_interval(),
        "arr": pa.list_(pa.int32()),
        "jb": pa.utf8(),
        "js": pa.utf8(),
        "u": pa.utf8(),
        "by": pa.binary(),
    }
    row = table.to_pylist()[0]
    assert row["dec"] == Decimal("12345.678")
    assert row["num_free"] == Decimal("1.25")
    assert row["tstz"].hour == 10
    assert row["arr"] == [1, 2, 3]
    assert row["jb"] == '{"k": [1, 2]}'
    assert row["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert row["by"] == b"\xde\xad\xbe\xef"
    assert backend.get_schema(plan_for(backend, sql)) == table.schema


def test_uuid_text_handles_nulls_and_slices(backend):
    table = run(
        backend,
        "SELECT CASE WHEN g % 2 = 0 THEN NULL ELSE md5(g::text)::uuid END AS u FROM generate_series(1, 5) g",
    )
    import hashlib

    expected = [None if g % 2 == 0 else str(uuid.UUID(hashlib.md5(str(g).encode()).hexdigest())) for g in range(1, 6)]
    assert table.column("u").to_pylist() == expected


def test_bound_parameters_and_placeholder_renumbering(backend):
    plan = plan_for(backend, "SELECT '?', ?::int, a ?| b -- ?\n, ?")
    assert numbered_placeholders(plan.sql, plan.placeholders) == "SELECT '?', $1::int, a ?| b -- ?\n, $2"
    table = run(backend, f"SELECT n_name FROM {SCHEMA}.nation WHERE n_nationkey = ? OR n_name = ?", [[1, "CHINA"]])
    assert sorted(table.column("n_name").to_pylist()) == ["ARGENTINA", "CHINA"]


def test_several_parameter_rows_run_in_order(backend):
    table = run(backend, f"SELECT n_name FROM {SCHEMA}.nation WHERE n_nationkey = ?", [[3], [1], [2]])
    assert table.column("n_name").to_pylist() == ["CANADA", "ARGENTINA", "BRAZIL"]


def test_parameter_schema_is_concrete(backend):
    sql = f"SELECT * FROM {SCHEMA}.orders WHERE o_orderkey = ? AND o_orderdate > ? AND o_comment LIKE ?"
    schema = backend.get_parameter_schema(plan_for(backend, sql))
    assert [f.type for f in schema] == [pa.int64(), pa.date32(), pa.utf8()]


def test_show_runs_through_another_path(backend):
    assert run(backend, "SHOW default_transaction_read_only").to_pylist() == [{"default_transaction_read_only": "on"}]


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE nexus_written (a int)",
        "INSERT INTO nexus_tpch.region VALUES (99, 'X', 'y')",
        "UPDATE nexus_tpch.region SET r_comment = 'z'",
        "DELETE FROM nexus_tpch.region",
    ],
)
def test_writes_refused_by_read_only_sessions(backend, sql):
    with pytest.raises(ReadOnlyViolationError, match="read-only transaction"):
        run(backend, sql)
    assert run(backend, "SELECT count(*) AS n FROM nexus_tpch.region").column("n").to_pylist() == [5]


def test_side_effect_functions_refused_too(backend):
    # The reader has no grant on the sequence: PostgreSQL refuses before it gets to the read-only check.
    with pytest.raises(ForbiddenError, match="permission denied for sequence nexus_seq"):
        run(backend, f"SELECT nextval('{SCHEMA}.nexus_seq')")
    with pytest.raises(ReadOnlyViolationError):
        run(backend, "CREATE TEMP TABLE t AS SELECT 1")


def test_a_session_switched_to_read_write_is_reset_before_reuse(postgres_server):
    with make(postgres_server, pool_size=1) as b:
        run(b, "SELECT set_config('default_transaction_read_only', 'off', false)")
        with pytest.raises(ReadOnlyViolationError):
            run(b, f"CREATE TABLE {SCHEMA}.nexus_hole (a int)")
        run(b, "SET default_transaction_read_only = off")
        with pytest.raises(ReadOnlyViolationError):
            run(b, f"CREATE TABLE {SCHEMA}.nexus_hole (a int)")
        with pytest.raises(ReadOnlyViolationError):
            run(b, "SELECT set_config('transaction_read_only', 'off', false)")
        assert run(b, "SHOW statement_timeout").column(0).to_pylist() == ["5min"]


def _active(server, backend_pid_marker: str) -> int:
    import adbc_driver_postgresql.dbapi as pg

    with (
        pg.connect(server.uri(), autocommit=True) as con,
        con.cursor() as cur,
    ):
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 "
            "AND pid <> pg_backend_pid()",
            (f"%{backend_pid_marker}%",),
        )
        return cur.fetchone()[0]


def test_cancel_stops_the_server_side_query(backend, postgres_server):
    marker = f"nexus_cancel_{RUN}"
    execution = backend.execute(plan_for(backend, f"SELECT pg_sleep(30), '{marker}' AS m"), None, QueryLimits())
    thread, errors = read_in_background(execution)
    assert wait_until(lambda: _active(postgres_server, marker) == 1)
    execution.cancel()
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(errors[0], QueryCancelledError)
    assert wait_until(lambda: _active(postgres_server, marker) == 0)
    execution.close()


def test_a_cancel_that_arrives_before_the_statement_is_sent_still_stops_it(backend, postgres_server):
    """PostgreSQL ignores a cancel request while the connection runs nothing; that cancel must not be lost.

    The real server and query; only the moment is forced: the reading thread is held after the execution's own
    "cancelled?" check and before the driver sends the statement (as a busy server's scheduler may hold it), and
    the cancel lands there. The query alone would run for 30 seconds.
    """
    import threading

    marker, held = f"nexus_early_cancel_{RUN}", threading.Event()
    execution = backend.execute(plan_for(backend, f"SELECT pg_sleep(30), '{marker}' AS m"), None, QueryLimits())
    execution._run = late(execution._run, held)
    held_then_cancelled(execution, held)
    assert wait_until(lambda: _active(postgres_server, marker) == 0)


def test_a_cursor_is_not_closed_while_a_cancel_is_using_it(backend):
    """The driver cancels through the statement it is asked to free: the close waits for the cancel to return.

    The real server and driver; the cancel is held inside the driver's call (as a slow cancel request is) while the
    reading side closes the stream.
    """
    import threading

    execution = backend.execute(plan_for(backend, "SELECT g FROM generate_series(1, 3000000) g"), None,
                                QueryLimits(batch_rows=1000))
    execution.reader.read_next_batch()
    cursor, order, inside = execution._cursor, [], threading.Event()
    cancel_in_driver, close_in_driver = cursor.adbc_cancel, cursor.close

    def slow_cancel():
        if not inside.is_set():  # the first one: held in the driver
            inside.set()
            time.sleep(0.3)
        try:
            return cancel_in_driver()
        finally:
            order.append("cancel returned")

    def close():
        order.append("close")
        return close_in_driver()

    cursor.adbc_cancel, cursor.close = slow_cancel, close
    canceller = threading.Thread(target=execution.cancel)
    canceller.start()
    assert inside.wait(10)
    execution.close()
    canceller.join(10)
    assert "close" in order and "cancel returned" not in order[order.index("close"):], order


def test_cancel_mid_stream(backend, postgres_server):
    execution = backend.execute(
        plan_for(backend, f"SELECT g, repeat('x', 100) AS pad, 'nexus_stream_{RUN}' AS m "
                          "FROM generate_series(1, 5000000) g"),
        None,
        QueryLimits(),
    )
    cancel_after_first_batch(execution)
    assert wait_until(lambda: _active(postgres_server, f"nexus_stream_{RUN}") == 0)


def test_timeout_cancels_in_the_server(backend, postgres_server):
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError) as info:
        run(backend, f"SELECT pg_sleep(20), 'nexus_timeout_{RUN}' AS m", timeout_seconds=0.5)
    assert time.monotonic() - started < 5
    assert "timeout" in info.value.message
    assert wait_until(lambda: _active(postgres_server, f"nexus_timeout_{RUN}") == 0)


def test_statement_timeout_option_is_enforced_by_postgres(postgres_server):
    with make(postgres_server, statement_timeout_seconds=0.3) as b:
        with pytest.raises(QueryTimeoutError) as info:
            run(b, "SELECT pg_sleep(5)")
        assert "statement timeout" in info.value.message


def test_results_stream_in_bounded_batches(backend):
    execution = backend.execute(
        plan_for(backend, "SELECT g, repeat('y', 200) AS pad FROM generate_series(1, 300000) g"),
        None,
        QueryLimits(batch_rows=50_000),
    )
    batches = 0
    rows = 0
    for batch in execution.reader:
        batches += 1
        rows += batch.num_rows
        assert batch.num_rows <= 50_000
    execution.close()
    assert rows == 300000
    assert batches >= 6


def test_pool_reuses_and_bounds_connections(backend):
    for _ in range(5):
        run(backend, "SELECT 1 AS x")
    assert backend.pool.in_use == 0
    assert 1 <= backend.pool.idle <= 4


def test_pool_timeout_when_exhausted(postgres_server):
    with make(postgres_server, pool_size=1, pool_timeout_seconds=0.2) as b:
        held = b.execute(plan_for(b, "SELECT g FROM generate_series(1, 10) g"), None, QueryLimits())
        with pytest.raises(BackendUnavailableError, match="pool_size=1"):
            b.execute(plan_for(b, "SELECT 1"), None, QueryLimits())
        held.close()
        assert run(b, "SELECT 1 AS x").column("x").to_pylist() == [1]


def test_introspection(backend):
    assert SCHEMA in backend.list_schemas()
    assert "pg_catalog" not in backend.list_schemas()
    tables = {t.name: t.table_type for t in backend.list_tables(SCHEMA)}
    assert tables["lineitem"] == "TABLE"
    assert tables["nation_names"] == "VIEW"
    assert [(k.column, k.key_sequence) for k in backend.primary_keys(SCHEMA, "lineitem")] == [
        ("l_orderkey", 1),
        ("l_linenumber", 2),
    ]
    with pytest.raises(NotFoundError):
        backend.table_schema(SCHEMA, "no_such_table")


def test_foreign_keys_with_rules(backend):
    keys = {(k.fk.table, k.pk.table): k for k in backend.foreign_keys(SCHEMA, "nation")}
    nation_region = keys[("nation", "region")]
    assert (nation_region.fk.column, nation_region.pk.column) == ("n_regionkey", "r_regionkey")
    assert (nation_region.update_rule, nation_region.delete_rule) == (0, 1)  # CASCADE, RESTRICT
    customer_nation = keys[("customer", "nation")]
    assert (customer_nation.update_rule, customer_nation.delete_rule) == (3, 2)  # NO ACTION, SET NULL
    assert customer_nation.pk.key_name == "nation_pkey"


def test_invalid_sql_is_invalid_query_and_a_missing_table_not_found(backend):
    with pytest.raises(NotFoundError, match='relation "nope" does not exist'):
        run(backend, "SELECT * FROM nope")
    with pytest.raises(InvalidQueryError):
        backend.get_schema(plan_for(backend, "SELEC 1"))


def test_wrong_port_is_unavailable(postgres_server):
    with make(postgres_server, port=free_port()) as b:
        with pytest.raises(BackendUnavailableError) as info:
            b.ping()
        assert info.value.details["source"] == "pgsrc"
        assert "Connection refused" in info.value.message


def test_wrong_host_is_unavailable(postgres_server):
    with make(postgres_server, host="nexus-no-such-host.invalid", connect_timeout_seconds=2) as b:
        with pytest.raises(BackendUnavailableError):
            b.ping()


def test_wrong_credentials_are_authentication_errors_without_the_secret(postgres_server):
    with make(postgres_server, username="nexus_no_such_role", password="TopSecret-42") as b:
        with pytest.raises(AuthenticationError) as info:
            b.ping()
    assert "TopSecret-42" not in info.value.client_message()
    assert info.value.details["source"] == "pgsrc"


def test_unknown_database_is_not_found(postgres_server):
    with make(postgres_server, database="nexus_no_such_db") as b:
        with pytest.raises(NotFoundError, match="nexus_no_such_db"):
            b.ping()


def test_concurrent_clients_share_a_bounded_pool(postgres_server):
    from concurrent.futures import ThreadPoolExecutor

    # Unique per run: other test runs on this server must not be counted.
    name = f"nexus-pool-{uuid.uuid4().hex[:8]}"
    with make(postgres_server, pool_size=3, application_name=name) as b:

        def query(i):
            table = run(
                b,
                f"SELECT ?::int AS i, count(*) AS n FROM pg_stat_activity WHERE application_name = '{name}'",
                [[i]],
            )
            return table.to_pylist()[0]

        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(query, range(48)))
        assert sorted(r["i"] for r in results) == list(range(48))
        assert max(r["n"] for r in results) <= 3
        assert b.pool.in_use == 0 and b.pool.idle <= 3


def test_advisory_locks_do_not_survive_the_connections_return_to_the_pool(postgres_server):
    """With the validator out of the way a query can take a session-level advisory lock; the pool releases it."""
    import psycopg

    key = int(uuid.uuid4().int % 2**31)
    with make(postgres_server, pool_size=1) as b:
        assert run(b, f"SELECT pg_advisory_lock({key}) IS NULL AS taken").column(0).to_pylist() == [False]
        with psycopg.connect(postgres_server.dsn(), autocommit=True) as other:
            got = other.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
            assert got is True  # the gateway's pooled session no longer holds it
            other.execute("SELECT pg_advisory_unlock(%s)", (key,))


def test_a_superuser_login_is_refused_naming_the_problem_and_the_fix(postgres_server):
    with make(postgres_server, pool_size=1, username="postgres") as b, pytest.raises(ConfigError) as caught:
        run(b, "SELECT 1")
    message = caught.value.message
    assert "logs in to PostgreSQL as 'postgres', which is a superuser" in message
    assert "allow_privileged_login = true" in message and "CONNECT, USAGE and SELECT" in message


@pytest.mark.parametrize("role", ["pg_read_server_files", "pg_write_server_files", "pg_execute_server_program"])
def test_a_login_that_reaches_the_servers_files_is_refused(postgres_server, role):
    import psycopg

    user = f"nexus_{role}_{RUN}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {user} LOGIN IN ROLE {postgres_server.reader}, {role}")
    try:
        with make(postgres_server, pool_size=1, username=user) as b, pytest.raises(ConfigError) as caught:
            run(b, "SELECT 1")
        assert f"a member of {role}" in caught.value.message
    finally:
        with psycopg.connect(postgres_server.dsn(), autocommit=True) as admin:
            admin.execute(f"DROP ROLE {user}")


def test_allow_privileged_login_lets_a_superuser_in_with_a_warning(caplog, postgres_server):
    with caplog.at_level("WARNING", logger="nexus_flight.backends.postgres_privileges"), make(
        postgres_server, pool_size=1, username="postgres", allow_privileged_login=True
    ) as b:
        assert run(b, "SELECT 1 AS one").column("one").to_pylist() == [1]
    assert any("allowed by allow_privileged_login = true" in r.getMessage() for r in caplog.records)


# -- numeric, opaque types and parameters, as PostgreSQL's own client sees them --------------------------------


def test_computed_numeric_keeps_the_scale_postgresql_gives_it(backend):
    """sum, +, -, * and round fix the scale: decimal128(38, s); avg's scale follows the values: decimal256."""
    sql = (
        f"SELECT sum(l_quantity) AS q, sum(l_extendedprice * (1 - l_discount)) AS rev, round(avg(l_tax), 3) AS r, "
        f"avg(l_quantity) AS a, avg(l_quantity)::text AS a_text FROM {SCHEMA}.lineitem"
    )
    table = run(backend, sql)
    types = [f.type for f in table.schema]
    assert types[:4] == [pa.decimal128(38, 2), pa.decimal128(38, 4), pa.decimal128(38, 3), pa.decimal256(76, 38)]
    row = table.to_pylist()[0]
    assert row["a"] == Decimal(row["a_text"])  # every digit PostgreSQL computed, none rounded
    assert backend.get_schema(plan_for(backend, sql)) == table.schema


@pytest.mark.parametrize(
    ("expression", "why"),
    [("'NaN'::numeric", "no NaN"), ("1e40::numeric", "more digits"), ("1::numeric / 3e30", "more digits")],
)
def test_a_numeric_that_does_not_fit_fails_naming_the_column(backend, expression, why):
    with pytest.raises(InvalidQueryError, match=f"column 'v' does not fit decimal256\\(76, 38\\): .*{why}"):
        run(backend, f"SELECT {expression} AS v")


@pytest.mark.parametrize(
    ("expression", "kind"),
    [("'infinity'::date", "date"), ("'-infinity'::timestamptz", "timestamp"), ("'infinity'::timestamp", "timestamp")],
)
def test_infinite_dates_fail_naming_the_column(backend, expression, kind):
    """Arrow has no infinite dates: the driver would hand over a date in the year -5877641, never the answer."""
    with pytest.raises(InvalidQueryError, match=f"column 'v' holds {kind} infinity"):
        run(backend, f"SELECT d AS v FROM (VALUES (DATE '2024-01-01'), ({expression})) AS t(d)")
    assert run(backend, "SELECT '5874897-12-31'::date AS v").column("v").type == pa.date32()


def test_types_created_after_the_pool_connected_arrive_as_text_and_bind(backend, postgres_server):
    """The driver reads a type it did not know at connect time as opaque bytes: PostgreSQL's text replaces them."""
    import psycopg

    run(backend, "SELECT 1")  # the pooled connection exists before the type does
    enum, table = f"nexus_mood_{RUN}", f"nexus_moods_{RUN}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE TYPE {SCHEMA}.{enum} AS ENUM ('sad', 'ok')")
        conn.execute(f"CREATE TABLE {SCHEMA}.{table} (m {SCHEMA}.{enum}, r int4range)")
        conn.execute(f"INSERT INTO {SCHEMA}.{table} VALUES ('ok', '[1,5)'), ('sad', NULL)")
    got = run(backend, f"SELECT m, r FROM {SCHEMA}.{table} WHERE m = ?", [["ok"]])
    assert got.to_pylist() == [{"m": "ok", "r": "[1,5)"}]
    assert got.schema.types == [pa.utf8(), pa.utf8()]


def test_opaque_columns_with_repeated_names_are_refused_clearly(backend):
    with pytest.raises(UnsupportedError, match="inet columns, which travel as PostgreSQL's text form"):
        run(backend, "SELECT '10.0.0.1'::inet AS a, 1 AS a")


@pytest.mark.parametrize(
    ("sql", "value"),
    [
        (f"SELECT count(*) AS n FROM {SCHEMA}.orders WHERE o_orderdate >= ?", "1995-01-01"),
        (f"SELECT count(*) AS n FROM {SCHEMA}.orders WHERE o_orderdate >= ?", date(1995, 1, 1)),
        (f"SELECT count(*) AS n FROM {SCHEMA}.orders WHERE o_totalprice > ?", Decimal("250000.50")),
        (f"SELECT count(*) AS n FROM {SCHEMA}.nation WHERE n_comment = ? OR n_nationkey = 3", None),
        ("SELECT count(*) AS n FROM (SELECT 1) t WHERE ? = TIMESTAMPTZ '2024-01-01 12:00:00+02'",
         datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("SELECT count(*) AS n FROM (SELECT 1) t WHERE ? = '\\x00ff'::bytea", b"\x00\xff"),
        ("SELECT count(*) AS n FROM (SELECT 1) t WHERE ?", True),
    ],
    ids=["date-as-text", "date", "decimal", "null", "aware-datetime", "bytes", "bool"],
)
def test_parameters_bind_as_the_type_the_placeholder_needs(backend, postgres_server, sql, value):
    """Each bound value means what it means to psycopg, PostgreSQL's own Python client."""
    import psycopg

    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        expected = conn.execute(sql.replace("?", "%s"), [value]).fetchone()[0]
    assert expected > 0
    assert run(backend, sql, [[value]]).column("n").to_pylist() == [expected]


def test_a_placeholder_postgresql_cannot_type_is_text(backend):
    """psycopg gives up on ``%s IS NULL`` (PostgreSQL cannot infer the type); the gateway binds such a one as text."""
    assert run(backend, "SELECT ? IS NULL AS x, ? AS y", [[None, "a"]]).to_pylist() == [{"x": True, "y": "a"}]


def test_a_bound_value_gives_its_type_to_the_result(backend):
    assert backend.get_schema(plan_for(backend, "SELECT ? AS x")).field("x").type == pa.utf8()
    assert backend.get_bound_schema(plan_for(backend, "SELECT ? AS x"), [[1.5]]).field("x").type == pa.float64()
    assert run(backend, "SELECT ? AS x", [[1.5]]).column("x").to_pylist() == [1.5]
