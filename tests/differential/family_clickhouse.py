"""The ClickHouse family: TPC-H loaded from tpchgen-cli's parquet, compared with clickhouse-connect's own answer.

What answers is ClickHouse's engine (chDB) behind the tests' HTTP stand-in, not a clickhouse-server process (see
``tests/support/clickhouse_standin.py``: none that clickhouse-connect can use installs here). The reference is
clickhouse-connect's own row path (``client.query(...).result_rows``, its own Native-format decoding; parameters
written as exact literals) against the same server, never the gateway's ArrowStream route. Its Python values are
put in the form the gateway documents (an ``IPv6Address`` as ClickHouse's text, a ``UUID`` as text, an Int128 as
an exact decimal, a Map as its pairs ...) by the rules below, driven by clickhouse-connect's own column types.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from decimal import Decimal

import pyarrow as pa
import pytest

from nexus_flight.core.source import SourceSpec
from tests.differential.harness import EngineRows, Family, TypeCase

_TZ = "UTC"  # the stand-in runs with TZ=UTC: DateTime without a zone is the server's, UTC
_DEC39 = pa.decimal256(39, 0)


def _list(t: pa.DataType) -> pa.DataType:
    return pa.list_(t)


#: Every ClickHouse type a user meets: the column's type, its non-NULL value (as SQL), the Arrow type the gateway
#: documents, and the value bound as a ``?`` parameter when comparing the column with one.
_ZOO: tuple[tuple[TypeCase, str], ...] = (
    (TypeCase("i8", "Int8", pa.int8(), -128), "-128"),
    (TypeCase("i16", "Int16", pa.int16(), -32768), "-32768"),
    (TypeCase("i32", "Int32", pa.int32(), -2147483648), "-2147483648"),
    (TypeCase("i64", "Int64", pa.int64(), -9223372036854775808), "-9223372036854775808"),
    (TypeCase("i128", "Int128", _DEC39, note="exact; not bound: clients send Python ints as int64"),
     "-170141183460469231731687303715884105728"),
    (TypeCase("i256", "Int256", pa.utf8(), note="exact decimal text (77 digits exceed every Arrow decimal)"),
     "-57896044618658097711785492504343953926634992332820282019728792003956564819968"),
    (TypeCase("u8", "UInt8", pa.uint8(), 255), "255"),
    (TypeCase("u16", "UInt16", pa.uint16(), 65535), "65535"),
    (TypeCase("u32", "UInt32", pa.uint32(), 4294967295), "4294967295"),
    (TypeCase("u64", "UInt64", pa.uint64(), note="not bound: clients send Python ints as int64"),
     "18446744073709551615"),
    (TypeCase("u128", "UInt128", _DEC39, note="exact"), "340282366920938463463374607431768211455"),
    (TypeCase("u256", "UInt256", pa.utf8(), note="exact decimal text"),
     "115792089237316195423570985008687907853269984665640564039457584007913129639935"),
    (TypeCase("f32", "Float32", pa.float32(), 1.5), "1.5"),
    (TypeCase("f64", "Float64", pa.float64(), 2.25), "2.25"),
    (TypeCase("bf16", "BFloat16", pa.float32(), note="sent by ClickHouse as two bytes"), "1.5"),
    (TypeCase("d92", "Decimal(9, 2)", pa.decimal128(9, 2), Decimal("1234567.89")), "1234567.89"),
    (TypeCase("d184", "Decimal(18, 4)", pa.decimal128(18, 4), Decimal("12345678901234.5678")), "12345678901234.5678"),
    (TypeCase("d3810", "Decimal(38, 10)", pa.decimal128(38, 10), Decimal("1234567890123456789012345678.0123456789")),
     "1234567890123456789012345678.0123456789"),
    (TypeCase("d7620", "Decimal(76, 20)", pa.decimal256(76, 20),
              Decimal("12345678901234567890123456789012345678901234567890123456.12345678901234567890")),
     "12345678901234567890123456789012345678901234567890123456.12345678901234567890"),
    (TypeCase("b", "Bool", pa.bool_(), True), "true"),
    (TypeCase("d", "Date", pa.date32(), dt.date(2024, 2, 29)), "2024-02-29"),
    (TypeCase("d32", "Date32", pa.date32(), dt.date(1900, 1, 1)), "1900-01-01"),
    (TypeCase("dtm", "DateTime", pa.timestamp("s", tz=_TZ), dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC),
              note="the server's zone"), "2024-01-01 12:00:00"),
    (TypeCase("dtk", "DateTime('Asia/Kolkata')", pa.timestamp("s", tz="Asia/Kolkata"),
              dt.datetime(2024, 6, 1, 6, 30, tzinfo=dt.UTC), note="the column's zone"), "2024-06-01 12:00:00"),
    (TypeCase("dt64", "DateTime64(3, 'UTC')", pa.timestamp("ms", tz="UTC"),
              dt.datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)), "2024-01-01 12:00:00.123"),
    (TypeCase("dt64ny", "DateTime64(6, 'America/New_York')", pa.timestamp("us", tz="America/New_York"),
              dt.datetime(2024, 3, 10, 6, 59, 59, 999999, tzinfo=dt.UTC), note="the second before the clocks jump"),
     "2024-03-10 01:59:59.999999"),
    (TypeCase("dt64n", "DateTime64(9)", pa.timestamp("ns", tz=_TZ),
              note="nanoseconds kept; not bound: Python datetimes stop at microseconds"),
     "2024-01-01 12:00:00.123456789"),
    (TypeCase("s", "String", pa.utf8(), "héllo 中文 😀"), "héllo 中文 😀"),
    (TypeCase("s_empty", "String", pa.utf8(), "", note="empty string, not NULL"), ""),
    (TypeCase("fs", "FixedString(8)", pa.utf8(), "abc\x00\x00\x00\x00\x00", note="padded with zero bytes"), "abc"),
    (TypeCase("u", "UUID", pa.utf8(), "2b3c1d5e-0000-4000-8000-000000000001", note="canonical text"),
     "2b3c1d5e-0000-4000-8000-000000000001"),
    (TypeCase("ip4", "IPv4", pa.utf8(), "192.168.0.1", note="dotted quad"), "192.168.0.1"),
    (TypeCase("ip6", "IPv6", pa.utf8(), "2001:db8::ff00:42:8329", note="ClickHouse's own text"),
     "2001:db8::ff00:42:8329"),
    (TypeCase("ip6m", "IPv6", pa.utf8(), "::ffff:10.0.0.1", note="IPv4-mapped, written as ClickHouse writes it"),
     "::ffff:10.0.0.1"),
    (TypeCase("e8", "Enum8('a' = -1, 'b' = 2)", pa.utf8(), "b", note="the label"), "b"),
    (TypeCase("e16", "Enum16('x' = 1000, 'y' = -1000)", pa.utf8(), "y", note="the label"), "y"),
    (TypeCase("lc", "LowCardinality(String)", pa.utf8(), "seg", note="plain text, not a dictionary"), "seg"),
    (TypeCase("j", "JSON", pa.utf8(), note="ClickHouse's JSON text; an absent object is {}"),
     '{"k": [1, 2], "s": "x"}'),
    # Containers cannot be Nullable in ClickHouse: their NULL rows hold empty values.
    (TypeCase("ai", "Array(Int32)", _list(pa.int32())), "[1, 2, 3]"),
    (TypeCase("as_", "Array(Nullable(String))", _list(pa.utf8())), "['a', NULL, 'ü']"),
    (TypeCase("aip6", "Array(IPv6)", _list(pa.utf8())), "['::1', '::ffff:1.2.3.4', '2001:db8::']"),
    (TypeCase("aad", "Array(Array(Date32))", _list(_list(pa.date32()))), "[['1900-01-01', '2299-12-31'], []]"),
    (TypeCase("atu", "Array(Tuple(UUID, Decimal(20, 4)))",
              _list(pa.struct([("1", pa.utf8()), ("2", pa.decimal128(20, 4))])), note="unnamed elements: 1, 2"),
     "[('00000000-0000-0000-0000-00000000000a', '1.5'), ('ffffffff-ffff-ffff-ffff-ffffffffffff', '-0.0001')]"),
    (TypeCase("ae", "Array(Enum8('on' = 1, 'off' = 0))", _list(pa.utf8())), "['on', 'off']"),
    (TypeCase("tu", "Tuple(Int64, String)", pa.struct([("1", pa.int64()), ("2", pa.utf8())])), "(7, 'seven')"),
    (TypeCase("tn", "Tuple(a DateTime64(3, 'Asia/Tokyo'), b Enum8('x' = 1, 'y' = 2), c IPv4, d Int128)",
              pa.struct([("a", pa.timestamp("ms", tz="Asia/Tokyo")), ("b", pa.utf8()), ("c", pa.utf8()),
                         ("d", _DEC39)])),
     "('2024-01-01 09:00:00.500', 'y', '10.1.2.3', '-170141183460469231731687303715884105728')"),
    (TypeCase("m", "Map(String, Int64)", pa.map_(pa.utf8(), pa.int64())), "map('k', 1, 'l', -2)"),
    (TypeCase("mu", "Map(String, Array(UInt128))", pa.map_(pa.utf8(), _list(_DEC39))),
     "map('big', ['340282366920938463463374607431768211455', '0'])"),
    (TypeCase("mlc", "Map(LowCardinality(String), Nullable(Int256))", pa.map_(pa.utf8(), pa.utf8())),
     "map('x', NULL, 'y', -1)"),
    (TypeCase("mip", "Map(UInt16, IPv6)", pa.map_(pa.uint16(), pa.utf8())), "map(80, '::ffff:127.0.0.1', 443, '::')"),
)


def _column_type(engine_type: str) -> str:
    """The zoo column's declared type: Nullable where ClickHouse allows it, so that rows 0 and 2 hold NULLs."""
    if engine_type.startswith("LowCardinality("):
        return f"LowCardinality(Nullable({engine_type[15:-1]}))"
    if engine_type.startswith(("Array(", "Map(", "Tuple(", "JSON")):
        return engine_type
    return f"Nullable({engine_type})"


def _load_zoo(client, database: str) -> None:
    columns = ", ".join(f"{case.column} {_column_type(case.engine_type)}" for case, _ in _ZOO)
    client.command(f"DROP TABLE IF EXISTS {database}.type_zoo")
    client.command(f"CREATE TABLE {database}.type_zoo (id Int32, {columns}) ENGINE = MergeTree ORDER BY id")
    values = ", ".join(f"CAST({_literal(case, literal)} AS {case.engine_type})" for case, literal in _ZOO)
    client.command(f"INSERT INTO {database}.type_zoo SELECT 1, {values}")
    client.command(f"INSERT INTO {database}.type_zoo (id) VALUES (0), (2)")


def _literal(case: TypeCase, text: str) -> str:
    """A zoo value as SQL: containers are written as ClickHouse literals, scalars as quoted text it parses."""
    if case.engine_type.startswith(("Array(", "Tuple(", "Map(")):
        return text
    return _literal_of(text)


# -- the engine's own answer ---------------------------------------------------------------------------------


def _documented(value, t, server_zone):
    """A clickhouse-connect value in the form the gateway documents for ClickHouse type ``t``."""
    if value is None:
        return None
    kind = t.base_type
    if kind == "Array":
        return [_documented(v, t.element_type, server_zone) for v in value]
    if kind == "Tuple":
        names = list(t.element_names) if t.element_names else [str(i + 1) for i in range(len(t.element_types))]
        items = value.values() if isinstance(value, dict) else value
        return {n: _documented(v, et, server_zone) for n, v, et in zip(names, items, t.element_types, strict=True)}
    if kind == "Map":
        return [(_documented(k, t.key_type, server_zone), _documented(v, t.value_type, server_zone))
                for k, v in value.items()]
    if kind in ("Int128", "UInt128"):
        return Decimal(value)
    if kind in ("Int256", "UInt256"):
        return str(value)
    if kind in ("UUID", "IPv4"):
        return str(value)
    if kind == "IPv6":
        return socket.inet_ntop(socket.AF_INET6, value.packed)  # BSD's rule, which ClickHouse follows
    if kind == "FixedString":
        return value.decode() if isinstance(value, bytes) else value
    if kind in ("JSON", "Object"):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if kind == "DateTime":
        return value if value.tzinfo else value.replace(tzinfo=server_zone)
    if kind == "DateTime64":  # read as ticks, so that nanoseconds survive
        zone = t.tzinfo or server_zone
        if t.scale <= 6:
            return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=value * 10 ** (6 - t.scale))
        import pandas as pd

        return pd.Timestamp(value * 10 ** (9 - t.scale), unit="ns", tz="UTC").tz_convert(zone)
    return value


def _literal_of(value) -> str:
    """A bound value written as an exact ClickHouse literal (clickhouse-connect's own client-side binding writes a
    Decimal as a float literal and drops a datetime's fraction, so it cannot be the reference for those)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Decimal):
        return f"toDecimal256('{value}', {max(0, -int(value.as_tuple().exponent))})"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return f"toDateTime64('{value.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S.%f}', 6, 'UTC')"
        return f"toDateTime64('{value:%Y-%m-%d %H:%M:%S.%f}', 6)"
    if isinstance(value, dt.date):
        return f"toDate32('{value}')"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _with_literals(sql: str, parameters) -> str:
    """``sql`` with each ``?`` replaced by its value's exact literal (placeholders found by a tokenizer)."""
    import sqlglot
    from sqlglot.tokens import TokenType

    values = iter(parameters or ())
    out, last = [], 0
    for token in sqlglot.tokenize(sql, read="clickhouse"):
        if token.token_type == TokenType.PLACEHOLDER:
            out += [sql[last : token.start], _literal_of(next(values))]
            last = token.end + 1
    return "".join(out) + sql[last:]


def _native(client):
    from zoneinfo import ZoneInfo

    server_zone = ZoneInfo(_TZ)

    def native(sql, parameters):
        sql = _with_literals(sql, parameters)
        result = client.query(sql, query_formats={"DateTime64": "int"})
        # An empty answer carries no columns in clickhouse-connect: ClickHouse names them in DESCRIBE.
        names = result.column_names or [r[0] for r in client.query(f"DESCRIBE ({sql})").result_rows]
        return EngineRows(
            (tuple(_documented(v, t, server_zone) for v, t in zip(row, result.column_types, strict=True))
             for row in result.result_rows),
            names,
        )

    return native


@pytest.fixture(scope="session")
def family_clickhouse(clickhouse_server, clickhouse_tpch) -> Family:
    client = clickhouse_server.client()
    _load_zoo(client, clickhouse_tpch)
    return Family(
        name="clickhouse",
        source=SourceSpec("ch", "clickhouse", clickhouse_server.options()),
        dialect="clickhouse",
        native=_native(client),
        schema=clickhouse_tpch,
        zoo=tuple(case for case, _ in _ZOO),
        # repeat() stops at a million copies: longer values are built from thousand-character pieces.
        repeat_text="concat(repeat(repeat(chr(120), 1000), {n} // 1000), repeat('x', {n} % 1000))",
        repeat_blob=None,
        unverified=(
            ("IntervalSecond … IntervalYear", "month_day_nano_interval", "not a column type; the conversion from "
             "ClickHouse's count is checked in tests/backends/test_clickhouse_kernels.py"),
            ("Time, Time64(p)", "time32[s], time32[ms] / time64 as ClickHouse sends them",
             "experimental in ClickHouse 26.9 (enable_time_time64_type)"),
            ("Variant, Dynamic, Nested, Point and the other geo types", "as ClickHouse streams them", "not checked"),
        ),
        engine_cannot={
            "date_difference": "ClickHouse has no minus for two Date32 values (its own spelling is dateDiff)",
        },
    )
