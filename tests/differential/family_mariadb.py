"""The MySQL family: TPC-H loaded into this run's MariaDB from tpchgen-cli's output, compared with pymysql's answers.

The source logs in as the least-privilege reader the README describes. The engine's own answer comes from pymysql
(MariaDB's text protocol, a client of its own) with the session in UTC, as the gateway's sessions are: TIMESTAMP
values, which MariaDB stores as instants, are then the UTC wall time, documented as ``timestamp[us, tz=UTC]``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from tests.backends.conftest import TPCH_SCHEMA
from tests.differential.harness import Family, TypeCase
from tests.support.mysql_reader import reader_spec

ZOO_TABLE = "nexus_type_zoo"

#: Every MariaDB type a user meets, the literal of the row that is not NULL, and the gateway's Arrow type.
_ZOO = (
    (TypeCase("ti", "TINYINT", pa.int8(), -128), "-128"),
    (TypeCase("tiu", "TINYINT UNSIGNED", pa.uint8(), 255), "255"),
    (TypeCase("bo", "BOOLEAN", pa.int8(), 1, note="TINYINT(1): MariaDB answers 0/1"), "1"),
    (TypeCase("si", "SMALLINT", pa.int16(), -32768), "-32768"),
    (TypeCase("siu", "SMALLINT UNSIGNED", pa.uint16(), 65535), "65535"),
    (TypeCase("mi", "MEDIUMINT", pa.int32(), -8388608), "-8388608"),
    (TypeCase("miu", "MEDIUMINT UNSIGNED", pa.uint32(), 16777215), "16777215"),
    (TypeCase("i", "INT", pa.int32(), -2147483648), "-2147483648"),
    (TypeCase("iu", "INT UNSIGNED", pa.uint32(), 4294967295), "4294967295"),
    (TypeCase("bi", "BIGINT", pa.int64(), -9223372036854775808), "-9223372036854775808"),
    (
        TypeCase("biu", "BIGINT UNSIGNED", pa.uint64(), note="not bound as a parameter: clients send ints as int64"),
        "18446744073709551615",
    ),
    (TypeCase("d41", "DECIMAL(4,1)", pa.decimal128(4, 1), Decimal("-123.4")), "-123.4"),
    (TypeCase("d92", "DECIMAL(9,2)", pa.decimal128(9, 2), Decimal("1234567.89")), "1234567.89"),
    (TypeCase("d184", "DECIMAL(18,4)", pa.decimal128(18, 4), Decimal("12345678901234.5678")), "12345678901234.5678"),
    (
        TypeCase("d3810", "DECIMAL(38,10)", pa.decimal128(38, 10), Decimal("1234567890123456789012345678.0123456789")),
        "1234567890123456789012345678.0123456789",
    ),
    (
        TypeCase("d6530", "DECIMAL(65,30)", pa.decimal256(65, 30), note="precision above 38: decimal256"),
        "12345678901234567890123456789012345.123456789012345678901234567890",
    ),
    (TypeCase("du", "DECIMAL(10,2) UNSIGNED", pa.decimal128(10, 2), Decimal("12345678.90")), "12345678.90"),
    (TypeCase("f", "FLOAT", pa.float32(), 1.5), "1.5"),
    (TypeCase("dbl", "DOUBLE", pa.float64(), 2.25), "2.25"),
    (TypeCase("d", "DATE", pa.date32(), dt.date(2024, 2, 29)), "2024-02-29"),
    (
        TypeCase("tm", "TIME(6)", pa.duration("us"), note="TIME spans -838:59:59 … 838:59:59: a duration"),
        "-838:59:58.999999",
    ),
    (
        TypeCase("dt6", "DATETIME(6)", pa.timestamp("us"), dt.datetime(2024, 1, 1, 12, 0, 0, 123456)),
        "2024-01-01 12:00:00.123456",
    ),
    (
        TypeCase(
            "ts",
            "TIMESTAMP NULL",
            pa.timestamp("us", tz="UTC"),
            dt.datetime(2024, 6, 1, 6, 30),
            note="an instant; sessions are in UTC",
        ),
        "2024-06-01 06:30:00",
    ),
    (TypeCase("y", "YEAR", pa.int16(), 2155), "2155"),
    (TypeCase("c", "CHAR(10)", pa.string(), "héllo"), "héllo"),
    (TypeCase("vc", "VARCHAR(40)", pa.string(), "héllo 中文 😀"), "héllo 中文 😀"),
    (TypeCase("vc_empty", "VARCHAR(10)", pa.string(), "", note="empty string, not NULL"), ""),
    (TypeCase("tx", "TEXT", pa.string(), "a text"), "a text"),
    (TypeCase("l1", "VARCHAR(20) CHARACTER SET latin1", pa.string(), "café"), "café"),
    (TypeCase("gbk", "VARCHAR(20) CHARACTER SET gbk", pa.string(), "中文字符"), "中文字符"),
    (TypeCase("bn", "BINARY(4)", pa.binary(), b"\xde\xad\x00\x01"), "\\xDE\\xAD\\x00\\x01"),
    (TypeCase("vb", "VARBINARY(10)", pa.binary(), b"\x00\xff"), "\\x00\\xFF"),
    (TypeCase("bl", "BLOB", pa.binary(), b"\xde\xad\xbe\xef"), "\\xDE\\xAD\\xBE\\xEF"),
    (TypeCase("bt", "BIT(10)", pa.binary(), note="the big-endian bytes the server sends"), "\\x02\\x05"),
    (TypeCase("en", "ENUM('a','b')", pa.string(), "b", note="the label"), "b"),
    (TypeCase("st", "SET('x','y','z')", pa.string(), note="labels joined by commas"), "x,z"),
    (TypeCase("j", "JSON", pa.string(), note="the JSON text"), '{"k": [1, 2]}'),
)
#: Literals whose text is not what the server should read: hex strings and BIT values.
_HEX = {"bn": "x'DEAD0001'", "vb": "x'00FF'", "bl": "x'DEADBEEF'", "bt": "b'1000000101'"}
#: MariaDB 10.11 takes no column list on a derived table (``AS c_orders (c_custkey, c_count)``): Q13 names the
#: column inside instead, as MariaDB's users write it.
_SPELLED = {
    "tpch_q13": """
select c_count, count(*) as custdist
from (
    select c_custkey, count(o_orderkey) as c_count
    from customer left outer join orders on c_custkey = o_custkey and o_comment not like '%special%requests%'
    group by c_custkey
) as c_orders
group by c_count
order by custdist desc, c_count desc
""",
}
#: pymysql type codes of TIMESTAMP.
_TIMESTAMP = 7


class NativeRows(list):
    """pymysql's rows, with the column names the server gave them."""

    column_names: list[str]


def _load(server) -> None:
    con = server.connect(TPCH_SCHEMA)
    try:
        with con.cursor() as cur:
            # Indexes on keys, as TPC-H allows: without them MariaDB runs Q20's correlated subquery as a full scan
            # per row (minutes) and Q9's join on partsupp's key as nested scans (seconds).
            cur.execute("CREATE INDEX IF NOT EXISTS nexus_l_part_supp ON lineitem (l_partkey, l_suppkey)")
            cur.execute("CREATE INDEX IF NOT EXISTS nexus_ps_part_supp ON partsupp (ps_partkey, ps_suppkey)")
            cur.execute(f"DROP TABLE IF EXISTS {ZOO_TABLE}")
            columns = ", ".join(f"{case.column} {case.engine_type}" for case, _ in _ZOO)
            cur.execute(f"CREATE TABLE {ZOO_TABLE} (id int PRIMARY KEY, {columns})")
            # NULL in every column, and a row where every value is NULL comes first.
            cur.execute(f"INSERT INTO {ZOO_TABLE} (id) VALUES (0), (2)")
            values = ", ".join(_HEX.get(case.column, "%s") for case, _ in _ZOO)
            literals = [literal for case, literal in _ZOO if case.column not in _HEX]
            cur.execute("SET time_zone = '+00:00'")
            cur.execute(f"INSERT INTO {ZOO_TABLE} VALUES (1, {values})", literals)
    finally:
        con.close()


@pytest.fixture(scope="session")
def family_mariadb(mysql_tpch, mariadb_server) -> Family:
    _load(mariadb_server)
    reference = mariadb_server.connect(TPCH_SCHEMA)
    with reference.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")

    def native(sql, parameters):
        with reference.cursor() as cur:
            cur.execute(sql, parameters)
            rows = NativeRows(_zoned(row, cur.description) for row in cur.fetchall())
            rows.column_names = [d[0] for d in cur.description]
        return rows

    return Family(
        name="mariadb",
        source=reader_spec(mariadb_server, TPCH_SCHEMA),
        dialect="mysql",
        native=native,
        schema=TPCH_SCHEMA,
        placeholder="%s",
        zoo_table=ZOO_TABLE,
        zoo=tuple(case for case, _ in _ZOO),
        spelled=_SPELLED,
        # MariaDB casts to BINARY, not BLOB: a binary string made from hex digits instead.
        repeat_blob="unhex(repeat('78', {n}))",
    )


def _zoned(row: tuple, description) -> tuple:
    """TIMESTAMP values as the instants they are: the session's wall time is UTC."""
    return tuple(
        v.replace(tzinfo=dt.UTC) if d[1] == _TIMESTAMP and isinstance(v, dt.datetime) else v
        for v, d in zip(row, description, strict=True)
    )
