"""What the file and lake-format families load, and the reference engine they are compared with.

Every family hands its format's own writer the same Arrow tables, untouched, as a user would: TPC-H as tpchgen-cli
wrote it (text is ``string_view``, money ``decimal128(15, 2)``, field ids in the metadata) and the parquet type zoo
below (``ZOO``: every Arrow type a parquet file holds, views, large and dictionary types included; each format
keeps the columns it can hold). The reference answer is DuckDB's own reader over the same files (``reference``):
its parquet reader, or its Iceberg reader, never the gateway's pyarrow route.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from nexus_flight.core.source import SourceSpec
from tests.differential.harness import Family, TypeCase
from tests.support.tpch import TPCH_TABLES

_KOLKATA = dt.timezone(dt.timedelta(hours=5, minutes=30))
_UTC_OUT = pa.timestamp("us", tz="Etc/UTC")
#: The value itself is bound as the ``?`` parameter (the default of ``ZooColumn.parameter``).
SAME = object()


@dataclass(frozen=True)
class ZooColumn:
    """One zoo column: the Arrow type written, its non-NULL value, and what each format makes of it.

    ``formats`` maps a format (``parquet``, ``delta``, ``iceberg``, ``hudi``) to the type the format stores
    (its own name for it) and the Arrow type the gateway returns; a format missing from it cannot hold the type.
    """

    name: str
    arrow: pa.DataType
    value: Any
    formats: dict[str, tuple[str, pa.DataType]]
    parameter: Any = SAME
    note: str = ""
    #: Per-format notes that replace ``note``.
    notes: dict[str, str] = field(default_factory=dict)

    def case(self, fmt: str) -> TypeCase:
        """The column as a TypeCase of a family on ``fmt``."""
        engine_type, out = self.formats[fmt]
        parameter = self.value if self.parameter is SAME else self.parameter
        return TypeCase(self.name, engine_type, out, parameter, self.notes.get(fmt, self.note))


def _same(t: str, out: pa.DataType, *fmts: str) -> dict[str, tuple[str, pa.DataType]]:
    return {f: (t, out) for f in fmts}


_ALL = ("parquet", "delta", "iceberg", "hudi")
_PQ_DELTA_HUDI = ("parquet", "delta", "hudi")

ZOO: tuple[ZooColumn, ...] = (
    ZooColumn("i8", pa.int8(), -128, {"parquet": ("int8", pa.int8()), "delta": ("byte", pa.int8()),
                                        **_same("int", pa.int32(), "iceberg", "hudi")},
              notes={"hudi": "written as int8"}),
    ZooColumn("i16", pa.int16(), -32768, {"parquet": ("int16", pa.int16()), "delta": ("short", pa.int16()),
                                          **_same("int", pa.int32(), "iceberg", "hudi")},
              notes={"hudi": "written as int16"}),
    ZooColumn("i32", pa.int32(), -2147483648, {"parquet": ("int32", pa.int32()), "delta": ("integer", pa.int32()),
                                               **_same("int", pa.int32(), "iceberg", "hudi")}),
    ZooColumn("i64", pa.int64(), -9223372036854775808, {"parquet": ("int64", pa.int64()),
                                                        **_same("long", pa.int64(), "delta", "iceberg", "hudi")}),
    ZooColumn("u8", pa.uint8(), 255, {"parquet": ("uint8", pa.uint8()), "iceberg": ("int", pa.int32())}),
    ZooColumn("u16", pa.uint16(), 65535, {"parquet": ("uint16", pa.uint16()), "iceberg": ("int", pa.int32())}),
    ZooColumn("u32", pa.uint32(), 4294967295, {"parquet": ("uint32", pa.uint32())}),
    ZooColumn("u64", pa.uint64(), 18446744073709551615, {"parquet": ("uint64", pa.uint64())}, parameter=None,
              note="not bound as a parameter: clients send Python ints as int64"),
    ZooColumn("f32", pa.float32(), 1.5, {**_same("float", pa.float32(), *_ALL)}),
    ZooColumn("f64", pa.float64(), 2.25, {**_same("double", pa.float64(), *_ALL)}),
    ZooColumn("f64_nan", pa.float64(), float("nan"), {**_same("double", pa.float64(), *_ALL)}, parameter=None,
              note="NaN"),
    ZooColumn("f64_inf", pa.float64(), float("-inf"), {**_same("double", pa.float64(), *_ALL)}, note="-infinity"),
    ZooColumn("d41", pa.decimal128(4, 1), Decimal("123.4"), {**_same("decimal(4,1)", pa.decimal128(4, 1), *_ALL)}),
    ZooColumn("d92", pa.decimal128(9, 2), Decimal("1234567.89"),
              {**_same("decimal(9,2)", pa.decimal128(9, 2), *_ALL)}),
    ZooColumn("d184", pa.decimal128(18, 4), Decimal("12345678901234.5678"),
              {**_same("decimal(18,4)", pa.decimal128(18, 4), *_ALL)}),
    ZooColumn("d3810", pa.decimal128(38, 10), Decimal("1234567890123456789012345678.0123456789"),
              {**_same("decimal(38,10)", pa.decimal128(38, 10), *_ALL)}),
    ZooColumn("dt32", pa.date32(), dt.date(2024, 2, 29), {**_same("date", pa.date32(), *_ALL)}),
    ZooColumn("dt64", pa.date64(), dt.date(1969, 12, 31), {**_same("date (written as date64)", pa.date32(),
                                                                   *_PQ_DELTA_HUDI)}),
    ZooColumn("tm_ms", pa.time32("ms"), dt.time(23, 59, 59, 123000), {"parquet": ("time32[ms]", pa.time64("us"))}),
    ZooColumn("tm_us", pa.time64("us"), dt.time(23, 59, 59, 123456),
              {"parquet": ("time64[us]", pa.time64("us")), "iceberg": ("time", pa.time64("us"))}),
    ZooColumn("tm_ns", pa.time64("ns"), dt.time(0, 0, 1, 5), {"parquet": ("time64[ns]", pa.time64("ns"))},
              parameter=None, note="filter on cast(tm_ns as time): DuckDB 1.5 neither pushes TIME_NS filters into an "
              "Arrow scan nor casts a bound TIME to TIME_NS"),
    ZooColumn("ts_s", pa.timestamp("s"), dt.datetime(2024, 1, 1, 12, 0, 0),
              {"parquet": ("timestamp[s] (stored as ms)", pa.timestamp("ms")),
               "delta": ("timestamp_ntz", pa.timestamp("us")), "iceberg": ("timestamp", pa.timestamp("us"))}),
    ZooColumn("ts_ms", pa.timestamp("ms"), dt.datetime(2024, 1, 1, 12, 0, 0, 123000),
              {"parquet": ("timestamp[ms]", pa.timestamp("ms")), "delta": ("timestamp_ntz", pa.timestamp("us")),
               "iceberg": ("timestamp", pa.timestamp("us"))}),
    ZooColumn("ts_us", pa.timestamp("us"), dt.datetime(2024, 1, 1, 12, 0, 0, 123456),
              {"parquet": ("timestamp[us]", pa.timestamp("us")),
               "delta": ("timestamp_ntz", pa.timestamp("us")), "iceberg": ("timestamp", pa.timestamp("us"))}),
    ZooColumn("ts_ns", pa.timestamp("ns"), dt.datetime(2024, 1, 1, 12, 0, 0, 123456),
              {"parquet": ("timestamp[ns]", pa.timestamp("ns")), "delta": ("timestamp_ntz", pa.timestamp("us"))}),
    ZooColumn("tstz_utc", pa.timestamp("us", tz="UTC"), dt.datetime(2024, 6, 1, 6, 30, tzinfo=dt.UTC),
              {"parquet": ("timestamp[us, tz=UTC]", _UTC_OUT), "delta": ("timestamp", _UTC_OUT),
               "iceberg": ("timestamptz", _UTC_OUT), "hudi": ("timestamp-micros", _UTC_OUT)},
              note="the instant, in UTC"),
    ZooColumn("tstz_kolkata", pa.timestamp("us", tz="Asia/Kolkata"), dt.datetime(2024, 6, 1, 12, 0, tzinfo=_KOLKATA),
              {"parquet": ("timestamp[us, tz=Asia/Kolkata]", _UTC_OUT), "delta": ("timestamp", _UTC_OUT)},
              note="the instant, in UTC"),
    ZooColumn("tstz_ny_ms", pa.timestamp("ms", tz="America/New_York"),
              dt.datetime(2024, 3, 10, 7, 30, tzinfo=dt.UTC),
              {"parquet": ("timestamp[ms, tz=America/New_York]", _UTC_OUT), "delta": ("timestamp", _UTC_OUT)},
              note="the instant, in UTC (microseconds)"),
    ZooColumn("tstz_ns", pa.timestamp("ns", tz="UTC"), dt.datetime(2024, 6, 1, 6, 30, 0, 1, tzinfo=dt.UTC),
              {"parquet": ("timestamp[ns, tz=UTC]", _UTC_OUT), "delta": ("timestamp", _UTC_OUT)},
              note="the instant, in UTC, to the microsecond (DuckDB's TIMESTAMPTZ)"),
    ZooColumn("b", pa.bool_(), True, {**_same("boolean", pa.bool_(), *_ALL)}),
    ZooColumn("txt", pa.string(), "héllo 中文 😀", {"parquet": ("string", pa.string()),
                                                   **_same("string", pa.string(), "delta", "iceberg", "hudi")}),
    ZooColumn("txt_empty", pa.string(), "", {**_same("string", pa.string(), *_ALL)}, note="empty string, not NULL"),
    ZooColumn("txt_large", pa.large_string(), "large ü", {"parquet": ("large_string", pa.string()),
                                                          **_same("string", pa.string(), "delta", "iceberg")},
              note="written as large_string"),
    ZooColumn("txt_view", pa.string_view(), "view ß", {"parquet": ("string_view", pa.string()),
                                                      **_same("string", pa.string(), "delta", "iceberg", "hudi")},
              note="written as string_view"),
    ZooColumn("txt_dict", pa.dictionary(pa.int32(), pa.string()), "dict é",
              {"parquet": ("dictionary<int32, string>", pa.string()),
               **_same("string", pa.string(), "delta", "iceberg")}, note="written dictionary-encoded"),
    ZooColumn("bl", pa.binary(), b"\xde\xad", {**_same("binary", pa.binary(), *_ALL)}),
    ZooColumn("bl_large", pa.large_binary(), b"\x00\xff", {"parquet": ("large_binary", pa.binary()),
                                                          **_same("binary", pa.binary(), "delta", "iceberg")},
              note="written as large_binary"),
    ZooColumn("bl_view", pa.binary_view(), b"\xbe\xef", {"parquet": ("binary_view", pa.binary()),
                                                        **_same("binary", pa.binary(), "delta", "iceberg")},
              note="written as binary_view"),
    ZooColumn("bl_fixed", pa.binary(4), b"\x01\x02\x03\x04",
              {"parquet": ("fixed_size_binary[4]", pa.binary()), "delta": ("binary", pa.binary()),
               "iceberg": ("fixed[4]", pa.binary())}),
    ZooColumn("li", pa.list_(pa.int32()), [1, 2, None],
              {"parquet": ("list<int32>", pa.list_(pa.field("l", pa.int32()))),
               "delta": ("array<integer>", pa.list_(pa.field("l", pa.int32()))),
               "iceberg": ("list<int>", pa.list_(pa.field("l", pa.int32())))}, parameter=None),
    ZooColumn("li_large", pa.large_list(pa.int64()), [7],
              {"parquet": ("large_list<int64>", pa.list_(pa.field("l", pa.int64()))),
               "delta": ("array<long>", pa.list_(pa.field("l", pa.int64()))),
               "iceberg": ("list<long>", pa.list_(pa.field("l", pa.int64())))}, parameter=None),
    ZooColumn("li_text", pa.list_(pa.string_view()), ["a", None, "ü"],
              {"parquet": ("list<string_view>", pa.list_(pa.field("l", pa.string()))),
               "delta": ("array<string>", pa.list_(pa.field("l", pa.string()))),
               "iceberg": ("list<string>", pa.list_(pa.field("l", pa.string())))}, parameter=None),
    ZooColumn("st", pa.struct([("a", pa.int32()), ("b", pa.string())]), {"a": 1, "b": "x"},
              {"parquet": ("struct<a: int32, b: string>", pa.struct([("a", pa.int32()), ("b", pa.string())])),
               "delta": ("struct<a: integer, b: string>", pa.struct([("a", pa.int32()), ("b", pa.string())])),
               "iceberg": ("struct<a: int, b: string>", pa.struct([("a", pa.int32()), ("b", pa.string())]))},
              parameter=None),
    ZooColumn("mp", pa.map_(pa.string(), pa.int32()), [("k", 1)],
              {"parquet": ("map<string, int32>", pa.map_(pa.string(), pa.int32())),
               "delta": ("map<string, integer>", pa.map_(pa.string(), pa.int32())),
               "iceberg": ("map<string, int>", pa.map_(pa.string(), pa.int32()))}, parameter=None),
)


def zoo_columns(fmt: str) -> tuple[ZooColumn, ...]:
    """The zoo columns ``fmt`` can hold."""
    return tuple(column for column in ZOO if fmt in column.formats)


def zoo_cases(fmt: str) -> tuple[TypeCase, ...]:
    """The type zoo of a family on ``fmt``."""
    return tuple(column.case(fmt) for column in zoo_columns(fmt))


def zoo_table(fmt: str) -> pa.Table:
    """The zoo as an Arrow table: ``id`` 0 and 2 are NULL in every column (a NULL row comes first), 1 has values."""
    arrays = {"id": pa.array([0, 1, 2], pa.int32())}
    for column in zoo_columns(fmt):
        values = [None, column.value, None]
        if pa.types.is_dictionary(column.arrow):
            arrays[column.name] = pa.array(values, column.arrow.value_type).dictionary_encode().cast(column.arrow)
        else:
            arrays[column.name] = pa.array(values, column.arrow)
    return pa.table(arrays)


def tpch_tables(tpch_dir: Path) -> dict[str, pa.Table]:
    """tpchgen-cli's tables as pyarrow reads them, untouched."""
    return {name: pq.read_table(tpch_dir / f"{name}.parquet") for name in TPCH_TABLES}


def reference(views: dict[str, str], setup: tuple[str, ...] = ()):
    """The engine's own answer: a DuckDB connection whose views read the same files with DuckDB's own readers.

    ``views`` maps each table to the SQL expression that reads it (``read_parquet([...])``, ``iceberg_scan(...)``).
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for statement in setup:
        con.execute(statement)
    for name, source in views.items():
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM {source}")

    def native(sql: str, parameters):
        return con.cursor().execute(sql, list(parameters or [])).to_arrow_table()

    return native


def lake_family(
    name: str, kind: str, options: dict, native, fmt: str, secrets: dict | None = None
) -> Family:
    """A file or lake family: its source (tables in schema ``main``), DuckDB's dialect and ``fmt``'s zoo."""
    return Family(
        name=name,
        source=SourceSpec(name, kind, options, secrets or {}),
        dialect="duckdb",
        native=native,
        schema="main",
        zoo=zoo_cases(fmt),
    )


def read_parquet(paths: list[str]) -> str:
    """DuckDB's parquet reader over ``paths``, as a table expression."""
    quoted = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    return f"read_parquet([{quoted}])"
