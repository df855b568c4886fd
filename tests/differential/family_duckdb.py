"""The DuckDB family: a DuckDB file loaded straight from tpchgen-cli's parquet, compared with DuckDB's own Arrow."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from nexus_flight.core.source import SourceSpec
from tests.differential.harness import Family, NativeColumn, TypeCase
from tests.support.tpch import TPCH_TABLES

#: Every DuckDB type a user meets, the literal of the row that is not NULL, and the gateway's Arrow type.
_ZOO = (
    (TypeCase("ti", "TINYINT", pa.int8(), -128), "-128"),
    (TypeCase("si", "SMALLINT", pa.int16(), -32768), "-32768"),
    (TypeCase("i", "INTEGER", pa.int32(), -2147483648), "-2147483648"),
    (TypeCase("bi", "BIGINT", pa.int64(), -9223372036854775808), "-9223372036854775808"),
    (
        TypeCase("hi", "HUGEINT", pa.decimal128(38, 0), note="as DuckDB exports it"),
        "1701411834604692317316873037158841057",
    ),
    (TypeCase("uti", "UTINYINT", pa.uint8(), 255), "255"),
    (TypeCase("usi", "USMALLINT", pa.uint16(), 65535), "65535"),
    (TypeCase("ui", "UINTEGER", pa.uint32(), 4294967295), "4294967295"),
    (
        TypeCase("ubi", "UBIGINT", pa.uint64(), note="not bound as a parameter: clients send Python ints as int64"),
        "18446744073709551615",
    ),
    (TypeCase("d41", "DECIMAL(4,1)", pa.decimal128(4, 1), Decimal("123.4")), "123.4"),
    (TypeCase("d92", "DECIMAL(9,2)", pa.decimal128(9, 2), Decimal("1234567.89")), "1234567.89"),
    (TypeCase("d184", "DECIMAL(18,4)", pa.decimal128(18, 4), Decimal("12345678901234.5678")), "12345678901234.5678"),
    (
        TypeCase("d3810", "DECIMAL(38,10)", pa.decimal128(38, 10), Decimal("1234567890123456789012345678.0123456789")),
        "1234567890123456789012345678.0123456789",
    ),
    (TypeCase("f", "FLOAT", pa.float32(), 1.5), "1.5"),
    (TypeCase("dbl", "DOUBLE", pa.float64(), 2.25), "2.25"),
    (TypeCase("dbl_nan", "DOUBLE", pa.float64(), note="NaN"), "NaN"),
    (TypeCase("dbl_inf", "DOUBLE", pa.float64(), float("inf"), note="infinity"), "inf"),
    (TypeCase("d", "DATE", pa.date32(), dt.date(2024, 2, 29)), "2024-02-29"),
    (TypeCase("tm", "TIME", pa.time64("us"), dt.time(23, 59, 59, 123456)), "23:59:59.123456"),
    (
        TypeCase("ts", "TIMESTAMP", pa.timestamp("us"), dt.datetime(2024, 1, 1, 12, 0, 0, 123456)),
        "2024-01-01 12:00:00.123456",
    ),
    (TypeCase("ts_s", "TIMESTAMP_S", pa.timestamp("s")), "2024-01-01 12:00:00"),
    (TypeCase("ts_ms", "TIMESTAMP_MS", pa.timestamp("ms")), "2024-01-01 12:00:00.123"),
    (TypeCase("ts_ns", "TIMESTAMP_NS", pa.timestamp("ns")), "2024-01-01 12:00:00.123456789"),
    (
        TypeCase(
            "tstz",
            "TIMESTAMPTZ",
            pa.timestamp("us", tz="Etc/UTC"),
            dt.datetime(2024, 6, 1, 6, 30, tzinfo=dt.UTC),
            note="the instant, in UTC",
        ),
        "2024-06-01 12:00:00+05:30",
    ),
    (TypeCase("iv", "INTERVAL", pa.month_day_nano_interval()), "1 year 2 months 3 days 04:05:06"),
    (TypeCase("b", "BOOLEAN", pa.bool_(), True), "true"),
    (TypeCase("txt", "VARCHAR", pa.string(), "héllo 中文 😀"), "héllo 中文 😀"),
    (TypeCase("txt_empty", "VARCHAR", pa.string(), "", note="empty string, not NULL"), ""),
    (TypeCase("bl", "BLOB", pa.binary(), b"\xde\xad"), "\\xDE\\xAD"),
    (TypeCase("j", "JSON", pa.string(), note="JSON text"), '{"k": [1, 2]}'),
    (
        TypeCase("u", "UUID", pa.string(), note="canonical text, as DuckDB exports it"),
        "2b3c1d5e-0000-4000-8000-000000000001",
    ),
    (TypeCase("en", "ENUM('a','b')", pa.string(), "b", note="the label, as text"), "b"),
)
_NESTED = (
    TypeCase("li", "INTEGER[]", pa.list_(pa.field("l", pa.int32()))),
    TypeCase("st", "STRUCT(a INTEGER, b VARCHAR)", pa.struct([("a", pa.int32()), ("b", pa.string())])),
    TypeCase("mp", "MAP(VARCHAR, INTEGER)", pa.map_(pa.string(), pa.int32())),
)
_NESTED_VALUES = "[1, 2, NULL], {'a': 1, 'b': 'x'}, MAP {'k': 1}"


def _load(path: Path, tpch_dir: Path) -> None:
    con = duckdb.connect(str(path))
    try:
        for table in TPCH_TABLES:
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet(?)", [str(tpch_dir / f"{table}.parquet")])
        scalar = [case for case, _ in _ZOO]
        columns = ", ".join(f"{c.column} {c.engine_type}" for c in (*scalar, *_NESTED))
        con.execute(f"CREATE TABLE type_zoo (id INTEGER, {columns})")
        values = ", ".join(f"CAST('{literal}' AS {case.engine_type})" for case, literal in _ZOO)
        con.execute(f"INSERT INTO type_zoo VALUES (1, {values}, {_NESTED_VALUES})")
        # NULL in every column, and a row where every value is NULL comes first in some scans.
        con.execute("INSERT INTO type_zoo (id) VALUES (0), (2)")
    finally:
        con.close()


@pytest.fixture(scope="session")
def family_duckdb(tpch_dir, tmp_path_factory) -> Family:
    path = tmp_path_factory.mktemp("diff-duckdb") / "tpch.duckdb"
    _load(path, tpch_dir)
    # The engine's own answer comes from a copy: one process cannot open a file twice with different settings.
    copy = path.with_name("reference.duckdb")
    shutil.copy(path, copy)
    reference = duckdb.connect(str(copy), read_only=True)

    def native(sql, parameters):
        return reference.execute(sql, parameters or []).to_arrow_table()

    def native_columns(table):
        rows = reference.execute(
            "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
        return [NativeColumn(*row) for row in rows]

    return Family(
        name="duckdb",
        source=SourceSpec("duck", "duckdb", {"path": str(path)}),
        dialect="duckdb",
        native=native,
        schema="main",
        zoo=(*(case for case, _ in _ZOO), *_NESTED),
        native_columns=native_columns,
    )

