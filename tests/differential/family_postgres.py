"""The PostgreSQL family: TPC-H loaded with COPY from tpchgen-cli's output, compared with psycopg's own answers.

The gateway reaches PostgreSQL through adbc-driver-postgresql; the engine's own answer comes from psycopg, the
client PostgreSQL users write Python with. psycopg turns some types into Python objects the Arrow side has no
counterpart for (json into dicts, uuid into UUID, interval into timedelta, money into text): the loaders below read
those as the text or value the gateway documents, straight from PostgreSQL's own output.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from psycopg.adapt import Loader
from psycopg.types.string import TextLoader

from nexus_flight.core.source import SourceSpec
from tests.differential.harness import Family, NativeColumn, NativeRows, TypeCase
from tests.support.tpch import TPCH_TABLES

DATABASE = "differential"
#: The gateway logs in as a role that may only read, as the README tells users to set it up.
READER = "diff_reader"

#: The TPC-H schema as the specification writes it (fixed-width text as char(n), money as numeric(15,2)).
TPCH_DDL = {
    "region": "r_regionkey integer PRIMARY KEY, r_name char(25) NOT NULL, r_comment varchar(152)",
    "nation": "n_nationkey integer PRIMARY KEY, n_name char(25) NOT NULL, "
    "n_regionkey integer NOT NULL REFERENCES region, n_comment varchar(152)",
    "supplier": "s_suppkey integer PRIMARY KEY, s_name char(25) NOT NULL, s_address varchar(40) NOT NULL, "
    "s_nationkey integer NOT NULL REFERENCES nation, s_phone char(15) NOT NULL, s_acctbal numeric(15,2) NOT NULL, "
    "s_comment varchar(101) NOT NULL",
    "customer": "c_custkey integer PRIMARY KEY, c_name varchar(25) NOT NULL, c_address varchar(40) NOT NULL, "
    "c_nationkey integer NOT NULL REFERENCES nation, c_phone char(15) NOT NULL, c_acctbal numeric(15,2) NOT NULL, "
    "c_mktsegment char(10) NOT NULL, c_comment varchar(117) NOT NULL",
    "part": "p_partkey integer PRIMARY KEY, p_name varchar(55) NOT NULL, p_mfgr char(25) NOT NULL, "
    "p_brand char(10) NOT NULL, p_type varchar(25) NOT NULL, p_size integer NOT NULL, p_container char(10) NOT NULL, "
    "p_retailprice numeric(15,2) NOT NULL, p_comment varchar(23) NOT NULL",
    "partsupp": "ps_partkey integer NOT NULL REFERENCES part, ps_suppkey integer NOT NULL REFERENCES supplier, "
    "ps_availqty integer NOT NULL, ps_supplycost numeric(15,2) NOT NULL, ps_comment varchar(199) NOT NULL, "
    "PRIMARY KEY (ps_partkey, ps_suppkey)",
    "orders": "o_orderkey integer PRIMARY KEY, o_custkey integer NOT NULL REFERENCES customer, "
    "o_orderstatus char(1) NOT NULL, o_totalprice numeric(15,2) NOT NULL, o_orderdate date NOT NULL, "
    "o_orderpriority char(15) NOT NULL, o_clerk char(15) NOT NULL, o_shippriority integer NOT NULL, "
    "o_comment varchar(79) NOT NULL",
    "lineitem": "l_orderkey integer NOT NULL REFERENCES orders, l_partkey integer NOT NULL, "
    "l_suppkey integer NOT NULL, l_linenumber integer NOT NULL, l_quantity numeric(15,2) NOT NULL, "
    "l_extendedprice numeric(15,2) NOT NULL, l_discount numeric(15,2) NOT NULL, l_tax numeric(15,2) NOT NULL, "
    "l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL, l_shipdate date NOT NULL, "
    "l_commitdate date NOT NULL, l_receiptdate date NOT NULL, l_shipinstruct char(25) NOT NULL, "
    "l_shipmode char(10) NOT NULL, l_comment varchar(44) NOT NULL, PRIMARY KEY (l_orderkey, l_linenumber)",
}

_UTC = dt.UTC
_NEW_YORK = ZoneInfo("America/New_York")

#: Every PostgreSQL type a user meets: the zoo's column, the literal of its non-NULL row, and the Arrow type.
_ZOO = (
    (TypeCase("si", "smallint", pa.int16(), -32768), "-32768"),
    (TypeCase("i", "integer", pa.int32(), -2147483648), "-2147483648"),
    (TypeCase("bi", "bigint", pa.int64(), -9223372036854775808), "-9223372036854775808"),
    (TypeCase("n152", "numeric(15,2)", pa.decimal128(15, 2), Decimal("1234567890123.45")), "1234567890123.45"),
    (
        TypeCase("n3810", "numeric(38,10)", pa.decimal128(38, 10), Decimal("1234567890123456789012345678.0123456789")),
        "1234567890123456789012345678.0123456789",
    ),
    (
        TypeCase(
            "n6020",
            "numeric(60,20)",
            pa.decimal256(60, 20),
            Decimal("1234567890123456789012345678901234567890.01234567890123456789"),
            note="precision above 38: decimal256",
        ),
        "1234567890123456789012345678901234567890.01234567890123456789",
    ),
    (
        TypeCase(
            "n_free",
            "numeric",
            pa.decimal256(76, 38),
            Decimal("-12345678901234567890.123456789012345678"),
            note="no declared precision: 38 integer and 38 fractional digits; a value beyond fails, never rounds",
        ),
        "-12345678901234567890.123456789012345678",
    ),
    (TypeCase("n_int", "numeric(10)", pa.decimal128(10, 0), Decimal("1234567890")), "1234567890"),
    (TypeCase("r", "real", pa.float32(), 1.5), "1.5"),
    (TypeCase("r_nan", "real", pa.float32(), float("nan"), note="NaN (equal to itself in PostgreSQL)"), "NaN"),
    (TypeCase("dbl", "double precision", pa.float64(), 2.25), "2.25"),
    (TypeCase("dbl_inf", "double precision", pa.float64(), float("inf"), note="infinity"), "Infinity"),
    (TypeCase("dbl_ninf", "double precision", pa.float64(), float("-inf"), note="-infinity"), "-Infinity"),
    (
        TypeCase("m", "money", pa.decimal128(19, 2), "12345.67", note="exact, with lc_monetary's two decimals"),
        "12345.67",
    ),
    (TypeCase("d", "date", pa.date32(), dt.date(2024, 2, 29)), "2024-02-29"),
    (TypeCase("tm", "time", pa.time64("us"), dt.time(23, 59, 59, 123456)), "23:59:59.123456"),
    (
        TypeCase("ttz", "time with time zone", pa.string(), "12:00:00+05:30", note="PostgreSQL's text form"),
        "12:00:00+05:30",
    ),
    (
        TypeCase("ts", "timestamp", pa.timestamp("us"), dt.datetime(2024, 1, 1, 12, 0, 0, 123456)),
        "2024-01-01 12:00:00.123456",
    ),
    (TypeCase("ts0", "timestamp(0)", pa.timestamp("us"), dt.datetime(2024, 1, 1, 12, 0, 1)), "2024-01-01 12:00:01"),
    (
        TypeCase(
            "tstz",
            "timestamp with time zone",
            pa.timestamp("us", tz="UTC"),
            dt.datetime(2024, 6, 1, 6, 30, tzinfo=_UTC),
            note="the instant, in UTC",
        ),
        "2024-06-01 12:00:00+05:30",
    ),
    (
        TypeCase(
            "tstz_ny",
            "timestamp with time zone",
            pa.timestamp("us", tz="UTC"),
            dt.datetime(2024, 1, 15, 8, 0, tzinfo=_NEW_YORK),
            note="written in America/New_York, bound in that zone",
        ),
        "2024-01-15 08:00:00 America/New_York",
    ),
    (
        TypeCase("iv", "interval", pa.month_day_nano_interval(), "1 year 2 months 3 days 04:05:06.5"),
        "1 year 2 months 3 days 04:05:06.5",
    ),
    (TypeCase("b", "boolean", pa.bool_(), True), "true"),
    (TypeCase("txt", "text", pa.string(), "héllo 中文 😀"), "héllo 中文 😀"),
    (TypeCase("txt_empty", "text", pa.string(), "", note="empty string, not NULL"), ""),
    (TypeCase("vc", "varchar(10)", pa.string(), "ünï"), "ünï"),
    (TypeCase("ch", "char(5)", pa.string(), "ab", note="blank-padded, as PostgreSQL returns it"), "ab"),
    (TypeCase("bt", "bytea", pa.binary(), b"\xde\xad\x00"), "\\xdead00"),
    (TypeCase("j", "json", pa.string(), note="the JSON text as written"), '{"k": [1, 2], "é": null}'),
    (TypeCase("jb", "jsonb", pa.string(), '{"k": [1, 2]}', note="jsonb's normalized text"), '{"k": [1, 2]}'),
    (
        TypeCase("u", "uuid", pa.string(), "2b3c1d5e-0000-4000-8000-000000000001", note="canonical text"),
        "2b3c1d5e-0000-4000-8000-000000000001",
    ),
    (TypeCase("en", "mood", pa.string(), "ok", note="an enum: the label"), "ok"),
    (TypeCase("ip", "inet", pa.string(), "10.0.0.1/8", note="PostgreSQL's text form"), "10.0.0.1/8"),
    (TypeCase("net", "cidr", pa.string(), "10.0.0.0/8", note="PostgreSQL's text form"), "10.0.0.0/8"),
    (TypeCase("mac", "macaddr", pa.string(), "08:00:2b:01:02:03", note="PostgreSQL's text form"), "08:00:2b:01:02:03"),
    (TypeCase("bits", "bit(4)", pa.string(), "1010", note="PostgreSQL's text form"), "1010"),
    (TypeCase("x", "xml", pa.string(), note="the XML text"), "<a>é</a>"),
    (TypeCase("rng", "int4range", pa.string(), "[1,5)", note="PostgreSQL's text form"), "[1,5)"),
    (TypeCase("pr", "pair", pa.string(), note="a composite type: PostgreSQL's text form"), "(1,x)"),
    (TypeCase("oi", "oid", pa.uint32(), 4000000000, note="unsigned: past 2^31 too"), "4000000000"),
)
_ARRAYS = (
    (TypeCase("ia", "integer[]", pa.list_(pa.int32())), "{1,2,NULL}"),
    (TypeCase("ta", "text[]", pa.list_(pa.string())), '{"a","b c",""}'),
    (
        TypeCase("na", "numeric(6,2)[]", pa.list_(pa.decimal256(76, 38)), note="elements as unconstrained numeric"),
        "{1.50,-2}",
    ),
    (TypeCase("ma", "money[]", pa.list_(pa.decimal128(19, 2)), note="exact amounts, not cents"), "{12.34,NULL}"),
    (TypeCase("oa", "oid[]", pa.list_(pa.uint32())), "{1,4000000000}"),
    (
        TypeCase("ua", "uuid[]", pa.list_(pa.string()), note="canonical text"),
        "{2b3c1d5e-0000-4000-8000-000000000001,NULL}",
    ),
    (TypeCase("jba", "jsonb[]", pa.list_(pa.string()), note="jsonb's normalized text"), '{"{\\"k\\": 1}"}'),
    (
        TypeCase("rnga", "int4range[]", pa.list_(pa.string()), note="a type the driver knows no name for: texts"),
        '{"[1,5)",NULL}',
    ),
)

#: The zoo's column types as its DDL writes them (``mood`` an enum, ``pair`` a composite): the schema snapshot's tests
#: describe each of them too.
ZOO_TYPES = tuple(case.engine_type for case, _ in (*_ZOO, *_ARRAYS))


def _copy_tpch(conn: psycopg.Connection, tpch_dir: Path) -> None:
    """Load each table with COPY from the CSV a user gets out of tpchgen-cli's parquet."""
    for table in TPCH_TABLES:
        data = pq.read_table(tpch_dir / f"{table}.parquet")
        data = data.cast(
            pa.schema([f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f for f in data.schema])
        )
        buffer = io.BytesIO()
        pacsv.write_csv(data, buffer)
        columns = ", ".join(data.column_names)
        with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv, HEADER true)") as copy:
            copy.write(buffer.getvalue())


def _load(admin_dsn: str, tpch_dir: Path) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for table, columns in TPCH_DDL.items():
            conn.execute(f"CREATE TABLE {table} ({columns})")
        _copy_tpch(conn, tpch_dir)
        conn.execute("CREATE TYPE mood AS ENUM ('sad', 'ok')")
        conn.execute("CREATE TYPE pair AS (a integer, b text)")
        cases = (*_ZOO, *_ARRAYS)
        columns = ", ".join(f"{case.column} {case.engine_type}" for case, _ in cases)
        conn.execute(f"CREATE TABLE type_zoo (id integer PRIMARY KEY, {columns})")
        # A row of NULLs comes first, then the values, then NULLs again: NULL in every column, NULL-first batches.
        conn.execute("INSERT INTO type_zoo (id) VALUES (0), (2)")
        names = ", ".join(case.column for case, _ in cases)
        marks = ", ".join(f"%s::{case.engine_type}" for case, _ in cases)
        conn.execute(f"INSERT INTO type_zoo (id, {names}) VALUES (1, {marks})", [literal for _, literal in cases])
        conn.execute("ANALYZE")
        conn.execute(f"CREATE ROLE {READER} LOGIN")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}")


# -- psycopg, reading what the gateway documents --------------------------------------------------------------

_ISO_INTERVAL = re.compile(
    r"^P(?:(?P<y>-?\d+)Y)?(?:(?P<mo>-?\d+)M)?(?:(?P<d>-?\d+)D)?"
    r"(?:T(?:(?P<h>-?\d+)H)?(?:(?P<mi>-?\d+)M)?(?:(?P<s>-?[\d.]+)S)?)?$"
)


class _IntervalLoader(Loader):
    """An interval as months, days and nanoseconds (psycopg's timedelta cannot hold months)."""

    def load(self, data) -> pa.MonthDayNano:
        parts = _ISO_INTERVAL.match(bytes(data).decode()).groupdict(default="0")
        seconds = Decimal(parts["s"]) + 60 * int(parts["mi"]) + 3600 * int(parts["h"])
        return pa.MonthDayNano([12 * int(parts["y"]) + int(parts["mo"]), int(parts["d"]), int(seconds * 10**9)])


class _MoneyLoader(Loader):
    """Money as its exact decimal (lc_monetary C: ``$12,345.67``)."""

    def load(self, data) -> Decimal:
        return Decimal(bytes(data).decode().replace("$", "").replace(",", ""))


def _native_connection(dsn: str) -> psycopg.Connection:
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("SET IntervalStyle = 'iso_8601'")
    for name in ("json", "jsonb", "uuid", "timetz", "inet", "cidr", "macaddr", "xml", "int4range", "bit"):
        conn.adapters.register_loader(name, TextLoader)
    conn.adapters.register_loader("interval", _IntervalLoader)
    conn.adapters.register_loader("money", _MoneyLoader)
    return conn


@pytest.fixture(scope="session")
def family_postgres(postgres_server, tpch_dir) -> Family:
    postgres_server.create_database(DATABASE)
    _load(postgres_server.dsn(DATABASE), tpch_dir)
    conn = _native_connection(postgres_server.dsn(DATABASE))

    def native(sql, parameters):
        with conn.cursor() as cur:
            cur.execute(sql, parameters)
            names = [c.name for c in cur.description]
            return NativeRows(names, cur.fetchall())

    def native_columns(table):
        rows = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod), NOT attnotnull FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            [f"public.{table}"],
        ).fetchall()
        return [NativeColumn(*row) for row in rows]

    yield Family(
        name="postgres",
        source=SourceSpec("pg", "postgres", postgres_server.options(DATABASE, username=READER)),
        dialect="postgres",
        native=native,
        schema="public",
        placeholder="%s",
        zoo=(*(case for case, _ in _ZOO), *(case for case, _ in _ARRAYS)),
        native_columns=native_columns,
    )
    conn.close()
