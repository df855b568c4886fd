"""The Snowflake backend against fakesnow (a Snowflake HTTP-protocol emulator; no real Snowflake runs here).

fakesnow pins its own duckdb and snowflake-connector-python<5, so it lives in its own virtual environment
(``tests/install-emulators.sh`` makes it; ``tests/support/snowflake_reference.py`` starts it).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from nexus_flight.backends.base import DATABASE_TYPE_NAME
from nexus_flight.core.errors import (
    BackendUnavailableError,
    ConfigError,
    ForbiddenError,
    InvalidQueryError,
    NotFoundError,
    ReadOnlyViolationError,
    UnsupportedError,
)
from nexus_flight.core.source import SourceSpec
from tests.backends.conftest import normalized, options
from tests.support.results import run
from tests.support.services import free_port


@pytest.fixture(scope="module")
def backend(loaded):
    from nexus_flight.backends.snowflake import SnowflakeBackend

    with SnowflakeBackend(SourceSpec("snow", "snowflake", options(loaded), {"password": "x"})) as b:
        yield b


def test_config_needs_exactly_one_credential():
    from nexus_flight.backends.snowflake import SnowflakeBackend

    with pytest.raises(ConfigError):
        SnowflakeBackend(SourceSpec("s", "snowflake", {"account": "a", "username": "u"}))
    with pytest.raises(ConfigError):
        SnowflakeBackend(
            SourceSpec("s", "snowflake", {"account": "a", "username": "u"}, {"password": "p", "token": "t"})
        )


def test_join_matches_duckdb(backend, duckdb_tpch):
    sql = (
        "SELECT r.r_name, count(*) AS nations FROM nation n JOIN region r ON n.n_regionkey = r.r_regionkey "
        "GROUP BY r.r_name ORDER BY r.r_name"
    )
    expected = duckdb_tpch.execute(sql).to_arrow_table()
    got = run(backend, sql)
    assert [tuple(int(v) if not isinstance(v, str) else v for v in r) for r in normalized(got)] == normalized(expected)


def test_type_matrix(backend):
    table = run(backend, "SELECT * FROM TYPES")
    types = {f.name: f.type for f in table.schema}
    assert types["I"] == pa.decimal128(38, 0)
    assert types["D"] == pa.decimal128(12, 2)
    assert types["F"] == pa.float64()
    assert types["S"] == pa.utf8() and types["V"] == pa.utf8()
    assert types["B"] == pa.bool_()
    assert types["DT"] == pa.date32()
    assert pa.types.is_timestamp(types["TS"])
    assert types["BIN"] == pa.binary()
    row = table.to_pylist()[0]
    assert str(row["D"]) == "1234.56"
    assert row["BIN"] == b"\xde\xad\xbe\xef"
    assert all(not f.metadata for f in table.schema)


def test_bound_parameters(backend):
    table = run(backend, "SELECT n_name FROM nation WHERE n_nationkey = ?", [[3], [1]])
    assert table.column("N_NAME").to_pylist() == ["CANADA", "ARGENTINA"]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("d", Decimal("1234.56")),
        ("dt", dt.date(2024, 2, 29)),
        ("ts", dt.datetime(2024, 1, 1, 12, 0)),
        ("bin", b"\xde\xad\xbe\xef"),
    ],
    ids=["decimal", "date", "datetime", "bytes"],
)
def test_parameters_the_driver_cannot_bind_travel_as_their_snowflake_type(backend, column, value):
    """adbc-driver-snowflake binds only booleans, numbers and text; other values are cast back from text.

    fakesnow cannot bind a Decimal with a fraction for the Snowflake connector itself, so the differential suite
    cannot compare that parameter with the engine: here its answer is the row that holds the value.
    """
    table = run(backend, f"SELECT i FROM TYPES WHERE {column} = ?", [[value]])
    assert table.column("I").to_pylist() == [7]
    assert run(backend, f"SELECT count(*) AS n FROM TYPES WHERE {column} <> ?", [[value]]).column("N")[0].as_py() == 0


def test_a_parameter_of_a_type_snowflake_cannot_bind_is_unsupported(backend):
    with pytest.raises(UnsupportedError, match="Unsupported bind param"):
        run(backend, "SELECT i FROM TYPES WHERE i = ?", [[dt.timedelta(days=1)]])


def test_non_queries_are_refused_locally(backend):
    for sql in ("INSERT INTO region VALUES (9, 'x', 'y')", "CREATE TABLE t2 (a int)", "DROP TABLE region"):
        with pytest.raises(ReadOnlyViolationError):
            run(backend, sql)
    assert run(backend, "SELECT count(*) AS n FROM region").column("N").to_pylist()[0] == 5


def test_introspection(backend):
    assert "TPCH" in backend.list_schemas()
    assert {t.name for t in backend.list_tables("TPCH")} >= {"NATION", "REGION", "TYPES"}
    assert [k.column for k in backend.primary_keys("TPCH", "NATION")] == ["N_NATIONKEY"]
    assert backend.table_schema("TPCH", "NATION").names == [
        "N_NATIONKEY",
        "N_NAME",
        "N_REGIONKEY",
        "N_COMMENT",
    ]
    with pytest.raises(NotFoundError):
        backend.table_schema("TPCH", "NOPE")


def test_table_schema_carries_describe_tables_type_names_and_not_nulls(backend):
    expected = [(r[0], r[1], r[3] == "Y") for r in backend._rows("DESCRIBE TABLE TPCH.NATION")]
    schema = backend.table_schema("TPCH", "NATION")
    assert [(f.name, f.metadata[DATABASE_TYPE_NAME].decode(), f.nullable) for f in schema] == expected
    assert expected[0] == ("N_NATIONKEY", "NUMBER(38,0)", False)


def test_invalid_sql(backend):
    with pytest.raises(InvalidQueryError, match="NOPE"):
        run(backend, "SELECT * FROM nope")


def test_wrong_port_is_unavailable_without_the_password():
    from nexus_flight.backends.snowflake import SnowflakeBackend

    with SnowflakeBackend(
        SourceSpec("snow", "snowflake", options(free_port(), login_timeout_seconds=2), {"password": "Pw-Secret-9"})
    ) as b:
        with pytest.raises(BackendUnavailableError) as info:
            b.ping()
    assert "Pw-Secret-9" not in info.value.client_message()
    assert info.value.details["source"] == "snow"


def test_insufficient_privileges_are_the_sources_refusal(backend):
    """Snowflake's 42501 ("SQL access control error: Insufficient privileges …"), as its ADBC driver raises it.

    The emulator has no roles and never refuses a read, so the driver's exception is built here (its text and
    SQLSTATE as Snowflake sends them) and given to the backend's classifier.
    """
    import adbc_driver_manager

    refused = adbc_driver_manager.ProgrammingError(
        "PROGRAMMING_ERROR: [Snowflake] 3001 (42501): SQL access control error: Insufficient privileges to operate "
        "on table 'PAYROLL'", status_code=adbc_driver_manager.AdbcStatusCode.UNAUTHORIZED, vendor_code=3001,
        sqlstate="42501")
    error = backend._classify(refused)
    assert isinstance(error, ForbiddenError) and error.code == "PERMISSION_DENIED"
    assert "Insufficient privileges to operate on table 'PAYROLL'" in error.message
