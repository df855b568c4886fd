"""The BigQuery family against bqemulator (a local BigQuery emulator; no real BigQuery is reachable here).

The emulator runs BigQuery SQL on DuckDB. What it cannot show is listed in the README: it bills nothing (so
``maximum_bytes_billed`` is checked as sent, not as enforced), runs jobs synchronously (a cancel arrives after the
job is done), types GEOGRAPHY as BYTES and cannot return INTERVAL through REST, and its Storage Read API cannot
serve query results (REST pages are used here); its dry run types a BIGNUMERIC literal as NUMERIC.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from nexus_flight.backends.bigquery import BigQueryBackend, credentials_for, query_parameter
from nexus_flight.core.errors import (
    ConfigError,
    NotFoundError,
    QueryCancelledError,
    ReadOnlyViolationError,
)
from nexus_flight.core.source import QueryLimits, SourceSpec
from tests.backends.conftest import TPCH_QUERIES, normalized
from tests.support.results import plan_for, run


@pytest.fixture(scope="module")
def backend(bigquery_emulator, bigquery_tpch):
    made = BigQueryBackend(SourceSpec("bq", "bigquery", bigquery_emulator.options(maximum_bytes_billed=10**12)))
    yield made
    made.close()


@pytest.mark.parametrize("name", sorted(TPCH_QUERIES))
def test_tpch_answers_match_duckdb(backend, duckdb_tpch, name):
    sql = TPCH_QUERIES[name]
    expected = duckdb_tpch.execute(sql.format(s="")).to_arrow_table()
    got = run(backend, sql.format(s="tpch."))
    assert got.column_names == expected.column_names
    assert normalized(got) == normalized(expected.cast(got.schema))


def test_types_are_the_documented_ones(backend):
    sql = (
        "SELECT 1 AS i, NUMERIC '1.25' AS n, 1.5 AS f, true AS b, 'x' AS s, b'ab' AS by, "
        "DATE '2024-02-29' AS d, DATETIME '2024-01-01 12:00:00' AS dtm, TIMESTAMP '2024-01-01 12:00:00+00' AS ts, "
        "TIME '12:34:56' AS t, JSON '{\"a\": 1}' AS j, [1, 2] AS a, STRUCT(1 AS x, 'y' AS y) AS st, "
        "ST_ASTEXT(ST_GEOGPOINT(1, 2)) AS g"
    )
    got = run(backend, sql)
    assert [str(f.type) for f in got.schema] == [
        "int64", "decimal128(38, 9)", "double", "bool", "string", "binary", "date32[day]",
        "timestamp[us]", "timestamp[us, tz=UTC]", "time64[us]", "string", "list<item: int64>",
        "struct<x: int64, y: string>", "string",
    ]
    row = got.to_pylist()[0]
    assert row["n"] == Decimal("1.25") and row["dtm"].tzinfo is None
    assert row["ts"] == dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC) and row["g"] == "POINT (1 2)"
    assert backend.get_schema(plan_for(backend, sql)) == got.schema


def test_dml_ddl_and_scripts_refused_before_and_by_the_dry_run(backend, monkeypatch):
    """No validator in front. What does not read as one query is not sent; and BigQuery's own dry run, asked with
    that check out of the way, types each of these as what it is, which the backend refuses too."""
    writes = (
        "INSERT INTO tpch.region (r_regionkey, r_name, r_comment) VALUES (9, 'X', 'y')",
        "DELETE FROM tpch.region WHERE true",
        "CREATE TABLE tpch.evil (a INT64)",
    )
    for sql in (*writes, "DECLARE x INT64 DEFAULT 1; SELECT x"):
        with pytest.raises(ReadOnlyViolationError, match="does not read as one query"):
            run(backend, sql)
    monkeypatch.setattr("nexus_flight.backends.bigquery._is_one_query", lambda sql: True)
    for sql, kind in zip(writes, ("INSERT", "DELETE", "CREATE_TABLE"), strict=True):
        with pytest.raises(ReadOnlyViolationError, match=f"typed the statement as {kind}"):
            run(backend, sql)
    assert run(backend, "SELECT count(*) AS n FROM tpch.region").column(0).to_pylist() == [5]


def test_parameters_are_bigquerys_own_typed_parameters(backend):
    assert query_parameter(Decimal("1.5")).type_ == "NUMERIC"
    assert query_parameter(Decimal("1.0000000001")).type_ == "BIGNUMERIC"
    assert query_parameter(dt.datetime(2024, 1, 1, tzinfo=dt.UTC)).type_ == "TIMESTAMP"
    assert query_parameter(dt.datetime(2024, 1, 1)).type_ == "DATETIME"
    assert run(backend, "SELECT n_name FROM tpch.nation WHERE n_nationkey = ?", [[3]]).column(0).to_pylist() == [
        "CANADA"
    ]
    injected = run(backend, "SELECT n_name FROM tpch.nation WHERE n_name = ?", [["CANADA' OR '1'='1"]])
    assert injected.num_rows == 0
    dated = run(backend, "SELECT count(*) AS n FROM tpch.orders WHERE o_orderdate >= ?", [[dt.date(1995, 1, 1)]])
    assert dated.column(0)[0].as_py() > 0


def test_job_carries_the_cost_guard_timeout_and_correlation_label(backend):
    config = backend.job_config([1], QueryLimits(timeout_seconds=7, correlation_id="Req-42/abc"))
    assert config.maximum_bytes_billed == 10**12
    assert int(config.job_timeout_ms) == 7000
    assert config.labels == {"nexus_gateway": "true", "nexus_correlation_id": "req-42_abc"}
    # The emulator accepts the labels but does not keep them on the job: what is sent is what is checked.
    execution = backend.execute(plan_for(backend, "SELECT 1 AS one"), None, QueryLimits(correlation_id="req-7"))
    assert execution.reader.read_all().num_rows == 1
    assert backend.client.get_job(execution.job_ids[0]).state == "DONE"
    execution.close()


def test_cancel_calls_cancel_job_and_ends_the_stream(backend):
    plan = plan_for(backend, "SELECT n_nationkey FROM tpch.nation")
    execution = backend.execute(plan, None, QueryLimits(batch_rows=5))
    assert execution.reader.read_next_batch().num_rows > 0
    execution.cancel()
    with pytest.raises(QueryCancelledError):
        for _ in execution.reader:
            pass
    execution.close()
    job = backend.client.get_job(execution.job_ids[0])
    assert job.state == "DONE"  # the emulator finishes jobs before a cancel can reach them


def test_metadata_datasets_tables_and_no_keys(backend):
    assert "tpch" in backend.list_schemas()
    assert {t.name for t in backend.list_tables("tpch")} >= {"nation", "lineitem"}
    schema = backend.table_schema("tpch", "nation")
    assert schema.names == ["n_nationkey", "n_name", "n_regionkey", "n_comment"]
    assert backend.primary_keys("tpch", "nation") == []
    with pytest.raises(NotFoundError):
        backend.table_schema("tpch", "nexus_no_such_table")
    with pytest.raises(NotFoundError):
        run(backend, "SELECT * FROM tpch.nexus_no_such_table")


def test_credentials_by_configuration():
    from google.auth.credentials import AnonymousCredentials
    from google.oauth2.credentials import Credentials

    anonymous = credentials_for(BigQueryBackend.config_model(project_id="p", endpoint="http://127.0.0.1:1"))
    assert isinstance(anonymous, AnonymousCredentials)
    oauth = credentials_for(BigQueryBackend.config_model(project_id="p", token="t", refresh_token="r", client_id="c"))
    assert isinstance(oauth, Credentials) and oauth.refresh_token == "r" and oauth.token == "t"
    with pytest.raises(ConfigError):
        BigQueryBackend(SourceSpec("bad", "bigquery", {"dataset": "x"}))


def test_a_null_parameter_takes_the_type_of_what_it_is_compared_with(backend):
    """A NULL sent as STRING fails against INT64, NUMERIC or DATE ("No matching signature"): it is typed instead."""
    cases = [
        ("SELECT count(*) AS n FROM tpch.orders WHERE o_totalprice > ?", "NUMERIC", pa.decimal128(38, 9)),
        ("SELECT count(*) AS n FROM tpch.orders WHERE o_orderdate >= ?", "DATE", pa.date32()),
        ("SELECT count(*) AS n FROM tpch.orders WHERE ? = o_orderkey", "INT64", pa.int64()),
        ("SELECT count(*) AS n FROM tpch.nation WHERE n_comment = ?", "STRING", pa.utf8()),
        ("SELECT count(*) AS n FROM tpch.lineitem WHERE l_quantity BETWEEN ? AND 10", "NUMERIC", pa.decimal128(38, 9)),
        ("SELECT CAST(? AS INT64) + 1 AS x", "INT64", pa.int64()),
    ]
    for sql, kind, arrow in cases:
        assert backend.get_parameter_schema(plan_for(backend, sql)).field(0).type == arrow, sql
        assert [p.type_ for p in backend.query_parameters(plan_for(backend, sql), [None])] == [kind], sql
        table = run(backend, sql, [[None]])
        assert table.to_pylist() in ([{"n": 0}], [{"x": None}]), sql
    # Typed values keep their own type; only the NULL borrows its neighbour's.
    mixed = "SELECT count(*) AS n FROM tpch.orders WHERE o_orderkey < ? AND o_orderdate >= ?"
    assert [p.type_ for p in backend.query_parameters(plan_for(backend, mixed), [100, None])] == ["INT64", "DATE"]
    assert run(backend, mixed, [[100, None]]).column(0).to_pylist() == [0]


def test_only_what_reads_as_one_query_is_sent_even_for_a_dry_run(backend, bigquery_emulator):
    """The emulator's dry run names no statement type for set operations and BEGIN/COMMIT, and runs scripts.

    Taking "no type" for SELECT ran BEGIN TRANSACTION, which left the emulator's one connection in a transaction
    that every later query failed in; the dry run of ``BEGIN DELETE …; END`` deleted the rows. A statement now
    leaves the gateway, dry run included, only when it parses as exactly one query.
    """
    client = bigquery_emulator.client()
    client.query("CREATE TABLE tpch.nexus_victim AS SELECT 1 AS a").result()
    for sql in ("BEGIN TRANSACTION", "COMMIT TRANSACTION", "BEGIN\n  DELETE FROM tpch.nexus_victim WHERE true;\nEND"):
        with pytest.raises(ReadOnlyViolationError, match="does not read as one query"):
            run(backend, sql)
    assert [tuple(r.values()) for r in client.query("SELECT a FROM tpch.nexus_victim").result()] == [(1,)]
    client.query("DROP TABLE tpch.nexus_victim").result()
    union = run(backend, "SELECT 1 AS x UNION ALL SELECT 2 ORDER BY x")
    assert union.column(0).to_pylist() == [1, 2]
    assert run(backend, "SELECT count(*) AS n FROM tpch.region").column(0).to_pylist() == [5]


@pytest.mark.parametrize(("reason", "code"), [("accessDenied", "PERMISSION_DENIED"),
                                              ("rateLimitExceeded", "UNAVAILABLE"),
                                              ("quotaExceeded", "UNAVAILABLE"),
                                              ("billingNotEnabled", "UNAVAILABLE")])
def test_a_403_is_read_by_its_reason(reason, code):
    """BigQuery's 403 names why: an object the login may not read, a rate or quota, or the credentials' project.

    The emulator never answers 403 (it has no IAM), so google-api-core's exception is built here as the client
    library raises it, with BigQuery's ``errors`` list, and given to the backend's classifier.
    """
    from google.api_core import exceptions as gexc

    from nexus_flight.backends.bigquery import classify
    from nexus_flight.core.errors import AuthenticationError

    refused = gexc.Forbidden("Access Denied: Table p:d.payroll: User does not have permission to query table",
                             errors=[{"reason": reason, "message": "…"}])
    error = classify(refused, "bq", [])
    assert error.code == code and "Access Denied: Table p:d.payroll" in error.message
    # Only the credentials' refusal marks the source down (``SOURCE_FAILURES``); a rate or an object does not.
    assert isinstance(error, AuthenticationError) == (reason == "billingNotEnabled")
