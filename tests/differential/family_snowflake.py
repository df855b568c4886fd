"""The ``snowflake`` family: fakesnow (a Snowflake emulator: DuckDB behind Snowflake's HTTP protocol).

Loaded as a Snowflake user loads parquet: ``CREATE TABLE`` with Snowflake types, ``PUT`` each tpchgen-cli file to
the table's stage and ``COPY INTO … MATCH_BY_COLUMN_NAME``, all through the Snowflake connector. The reference is
the same connector's ``fetch_arrow_all`` against the same server (``tests/support/snowflake_reference.py``); the
gateway reaches fakesnow through adbc-driver-snowflake.

One difference of representation is folded before comparing: the connector types a ``NUMBER(p,0)`` column by the
values of each result chunk (int64 when they fit, as fakesnow always sends them), the gateway by the declared
type (``decimal128(p,0)``, so that a stream's schema does not change with its values and 38 digits fit). The
reference's integer columns of Snowflake type FIXED become ``decimal128(p,0)`` before values are compared, exactly.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nexus_flight.core.source import SourceSpec
from tests.differential.harness import Family, TypeCase
from tests.support.snowflake_reference import SnowflakeConnector, running_fakesnow
from tests.support.tpch import TPCH_TABLES

DATABASE, SCHEMA = "DIFF", "TPCH"
_UTC_NS = pa.timestamp("ns", tz="UTC")
_NO_FRACTIONAL_BINDING = (
    "fakesnow reads every NUMBER binding as an integer: a bound Decimal with a fraction fails in its server "
    "(HTTP 500) for the Snowflake connector itself"
)
_SERVER_FAILS_ON_OVERFLOW = "fakesnow answers an integer overflow with HTTP 500, to the Snowflake connector too"
_NOT_BOUND = "not compared with a bound Decimal: fakesnow cannot bind one with a fraction"

#: Each Snowflake type fakesnow holds, the literal of the row that is not NULL, and the gateway's Arrow type.
_ZOO = (
    (
        TypeCase("n380", "NUMBER(38,0)", pa.decimal128(38, 0), Decimal(-9223372036854775808),
                 note="fakesnow stores it as BIGINT: values beyond int64 do not load"),
        "-9223372036854775808",
    ),
    (TypeCase("n50", "NUMBER(5,0)", pa.decimal128(5, 0), Decimal(-12345)), "-12345"),
    (TypeCase("n92", "NUMBER(9,2)", pa.decimal128(9, 2), note=_NOT_BOUND), "1234567.89"),
    (TypeCase("n184", "NUMBER(18,4)", pa.decimal128(18, 4), note=_NOT_BOUND), "12345678901234.5678"),
    (
        TypeCase("n3810", "NUMBER(38,10)", pa.decimal128(38, 10), note=_NOT_BOUND),
        "1234567890123456789012345678.0123456789",
    ),
    (TypeCase("i", "INT", pa.decimal128(38, 0), Decimal(42), note="INT is NUMBER(38,0)"), "42"),
    (TypeCase("f", "FLOAT", pa.float64(), 1.5), "1.5"),
    (TypeCase("f_nan", "FLOAT", pa.float64(), note="NaN"), "'NaN'"),
    (TypeCase("f_inf", "FLOAT", pa.float64(), float("-inf"), note="-infinity"), "'-inf'"),
    (TypeCase("v", "VARCHAR", pa.string(), "héllo 中文 😀"), "'héllo 中文 😀'"),
    (TypeCase("v_empty", "VARCHAR", pa.string(), "", note="empty string, not NULL"), "''"),
    (TypeCase("v10", "VARCHAR(10)", pa.string(), "abc"), "'abc'"),
    (TypeCase("bin", "BINARY", pa.binary(), b"\xde\xad\xbe\xef"), "to_binary('DEADBEEF', 'HEX')"),
    (TypeCase("b", "BOOLEAN", pa.bool_(), True), "true"),
    (TypeCase("d", "DATE", pa.date32(), dt.date(2024, 2, 29)), "'2024-02-29'::date"),
    (TypeCase("t", "TIME", pa.time64("ns"), dt.time(23, 59, 59, 123456)), "'23:59:59.123456'::time"),
    (
        TypeCase("ts", "TIMESTAMP_NTZ", pa.timestamp("ns"), dt.datetime(2024, 1, 1, 12, 0, 0, 123456)),
        "'2024-01-01 12:00:00.123456'::timestamp_ntz",
    ),
    (
        TypeCase("ts3", "TIMESTAMP_NTZ(3)", pa.timestamp("ns"), dt.datetime(2024, 1, 1, 12, 0, 0, 123000)),
        "'2024-01-01 12:00:00.123'::timestamp_ntz(3)",
    ),
    (
        TypeCase("ltz", "TIMESTAMP_LTZ", _UTC_NS, dt.datetime(2024, 6, 1, 6, 30, tzinfo=dt.UTC),
                 note="the instant, in UTC"),
        "'2024-06-01 12:00:00 +05:30'::timestamp_ltz",
    ),
    (
        TypeCase("tz", "TIMESTAMP_TZ", _UTC_NS, dt.datetime(2024, 6, 1, 6, 30, tzinfo=dt.UTC),
                 note="the instant, in UTC (fakesnow keeps no offset)"),
        "'2024-06-01 12:00:00 +05:30'::timestamp_tz",
    ),
    (TypeCase("var", "VARIANT", pa.string(), note="JSON text"), "parse_json('{\"k\": [1, 2]}')"),
    (TypeCase("obj", "OBJECT", pa.string(), note="JSON text"), "object_construct('a', 1, 'b', 'x')"),
    (TypeCase("arr", "ARRAY", pa.string(), note="JSON text"), "array_construct(1, 2, 3)"),
)


def _snowflake_type(t: pa.DataType) -> str:
    if pa.types.is_decimal(t):
        return f"NUMBER({t.precision},{t.scale})"
    if pa.types.is_integer(t):
        return "NUMBER(38,0)"
    if pa.types.is_date(t):
        return "DATE"
    return "VARCHAR"


def _load(connector: SnowflakeConnector, tpch_dir: Path) -> None:
    """TPC-H as a Snowflake user loads parquet files, and the type zoo (a NULL row first, another last)."""
    connector.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    connector.execute(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.{SCHEMA}")
    connector.execute(f"USE SCHEMA {DATABASE}.{SCHEMA}")
    for table in TPCH_TABLES:
        path = tpch_dir / f"{table}.parquet"
        columns = ", ".join(f"{f.name} {_snowflake_type(f.type)} NOT NULL" for f in pq.read_schema(path))
        connector.execute(f"CREATE TABLE {table} ({columns})")
        connector.execute(f"PUT 'file://{path}' @%{table}")
        connector.execute(
            f"COPY INTO {table} FROM @%{table} FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE"
        )
    columns = ", ".join(f"{case.column} {case.engine_type}" for case, _ in _ZOO)
    connector.execute(f"CREATE TABLE type_zoo (id INT, {columns})")
    connector.execute("INSERT INTO type_zoo (id) VALUES (0)")
    connector.execute(f"INSERT INTO type_zoo SELECT 1, {', '.join(literal for _, literal in _ZOO)}")
    connector.execute("INSERT INTO type_zoo (id) VALUES (2)")


def _declared_numbers(table: pa.Table) -> pa.Table:
    """The connector's integer columns of Snowflake type FIXED as the declared ``decimal128(p,0)``."""
    fields = []
    for f in table.schema:
        metadata = f.metadata or {}
        if pa.types.is_integer(f.type) and metadata.get(b"logicalType") == b"FIXED":
            f = pa.field(f.name, pa.decimal128(int(metadata[b"precision"]), 0))
        fields.append(pa.field(f.name, f.type))
    return table.cast(pa.schema(fields))


@pytest.fixture(scope="session")
def family_snowflake(tpch_dir) -> Family:
    connector = SnowflakeConnector()  # imports while fakesnow starts
    with running_fakesnow() as port:
        connector.connect(port)
        _load(connector, tpch_dir)  # leaves the session in DIFF.TPCH, where the references run

        def native(sql, parameters):
            return _declared_numbers(connector.arrow(sql, parameters))

        options = {
            "account": "nexus",
            "username": "fake",
            "host": "127.0.0.1",
            "port": port,
            "protocol": "http",
            "database": DATABASE,
            "schema": SCHEMA,
        }
        yield Family(
            name="snowflake",
            source=SourceSpec("snow", "snowflake", options, {"password": "fake"}),
            dialect="snowflake",
            native=native,
            schema=SCHEMA,
            zoo=tuple(case for case, _ in _ZOO),
            repeat_blob="to_binary(repeat('78', {n}), 'HEX')",
            engine_cannot={"param_decimal": _NO_FRACTIONAL_BINDING}
            | dict.fromkeys(("integer_overflow", "absolute_value_out_of_range"), _SERVER_FAILS_ON_OVERFLOW),
            upper_case_names=True,
        )
        connector.close()
