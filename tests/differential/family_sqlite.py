"""The SQLite family: TPC-H written with Python's sqlite3 from tpchgen-cli's output, compared with sqlite3's answers.

SQLite types values, not columns: one column can hold integers in some rows and reals or text in others (a
DECIMAL(15,2) column stores 901.00 as the integer 901 and 901.50 as a real). Python's sqlite3 hands each value back
with its own storage class, or converted by the declared type's converter; Arrow needs one type per column. The
gateway's rule (README, ``backends/sqlite_types.py``) is applied here to sqlite3's rows before comparing, and only
that: declared DECIMAL/NUMERIC columns read as floats (sqlite3's converters, as users register them), a column
holding integers and reals is float64, a column holding text and numbers is text in SQLite's own text form, a
column holding blobs and anything else is binary.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlglot import exp

from nexus_flight.core.source import SourceSpec
from tests.differential.harness import Family, NativeColumn, NativeRows, TypeCase
from tests.support.tpch import TPCH_TABLES

#: The TPC-H schema as a user writes it for SQLite: the specification's types, which SQLite reads as affinities.
TPCH_DDL = {
    "region": "r_regionkey INTEGER PRIMARY KEY, r_name CHAR(25) NOT NULL, r_comment VARCHAR(152)",
    "nation": "n_nationkey INTEGER PRIMARY KEY, n_name CHAR(25) NOT NULL, n_regionkey INTEGER NOT NULL, "
    "n_comment VARCHAR(152)",
    "supplier": "s_suppkey INTEGER PRIMARY KEY, s_name CHAR(25) NOT NULL, s_address VARCHAR(40) NOT NULL, "
    "s_nationkey INTEGER NOT NULL, s_phone CHAR(15) NOT NULL, s_acctbal DECIMAL(15,2) NOT NULL, "
    "s_comment VARCHAR(101) NOT NULL",
    "customer": "c_custkey INTEGER PRIMARY KEY, c_name VARCHAR(25) NOT NULL, c_address VARCHAR(40) NOT NULL, "
    "c_nationkey INTEGER NOT NULL, c_phone CHAR(15) NOT NULL, c_acctbal DECIMAL(15,2) NOT NULL, "
    "c_mktsegment CHAR(10) NOT NULL, c_comment VARCHAR(117) NOT NULL",
    "part": "p_partkey INTEGER PRIMARY KEY, p_name VARCHAR(55) NOT NULL, p_mfgr CHAR(25) NOT NULL, "
    "p_brand CHAR(10) NOT NULL, p_type VARCHAR(25) NOT NULL, p_size INTEGER NOT NULL, p_container CHAR(10) NOT NULL, "
    "p_retailprice DECIMAL(15,2) NOT NULL, p_comment VARCHAR(23) NOT NULL",
    "partsupp": "ps_partkey INTEGER NOT NULL, ps_suppkey INTEGER NOT NULL, ps_availqty INTEGER NOT NULL, "
    "ps_supplycost DECIMAL(15,2) NOT NULL, ps_comment VARCHAR(199) NOT NULL, PRIMARY KEY (ps_partkey, ps_suppkey)",
    "orders": "o_orderkey INTEGER PRIMARY KEY, o_custkey INTEGER NOT NULL, o_orderstatus CHAR(1) NOT NULL, "
    "o_totalprice DECIMAL(15,2) NOT NULL, o_orderdate DATE NOT NULL, o_orderpriority CHAR(15) NOT NULL, "
    "o_clerk CHAR(15) NOT NULL, o_shippriority INTEGER NOT NULL, o_comment VARCHAR(79) NOT NULL",
    "lineitem": "l_orderkey INTEGER NOT NULL, l_partkey INTEGER NOT NULL, l_suppkey INTEGER NOT NULL, "
    "l_linenumber INTEGER NOT NULL, l_quantity DECIMAL(15,2) NOT NULL, l_extendedprice DECIMAL(15,2) NOT NULL, "
    "l_discount DECIMAL(15,2) NOT NULL, l_tax DECIMAL(15,2) NOT NULL, l_returnflag CHAR(1) NOT NULL, "
    "l_linestatus CHAR(1) NOT NULL, l_shipdate DATE NOT NULL, l_commitdate DATE NOT NULL, "
    "l_receiptdate DATE NOT NULL, l_shipinstruct CHAR(25) NOT NULL, l_shipmode CHAR(10) NOT NULL, "
    "l_comment VARCHAR(44) NOT NULL, PRIMARY KEY (l_orderkey, l_linenumber)",
}

#: The zoo: declared types as users write them, the value of row 1 and, for some, another storage class in row 3.
#: Rows 0, 2 and 4 are NULL in every column (row 0 first: NULL-first batches).
_ZOO = (
    (TypeCase("i", "INTEGER", pa.int64(), -9223372036854775808), -9223372036854775808, None),
    (TypeCase("r", "REAL", pa.float64(), 1.5), 1.5, None),
    (TypeCase("r_whole", "REAL", pa.float64(), 2.0, note="REAL affinity stores 2 as 2.0"), 2, None),
    (TypeCase("t", "TEXT", pa.string(), "héllo 中文 😀"), "héllo 中文 😀", None),
    (TypeCase("t_empty", "TEXT", pa.string(), "", note="empty string, not NULL"), "", None),
    (TypeCase("vc", "VARCHAR(10)", pa.string(), "ünï", note="TEXT affinity"), "ünï", None),
    (TypeCase("b", "BLOB", pa.binary(), b"\xde\xad\x00"), b"\xde\xad\x00", None),
    (TypeCase("n", "NUMERIC", pa.float64(), 12.5, note="values decide: a real here"), 12.5, None),
    (
        TypeCase("dec", "DECIMAL(15,2)", pa.float64(), 1234.5, note="integers and reals in one column: float64"),
        1234.5,
        901,
    ),
    (TypeCase("bool", "BOOLEAN", pa.int64(), True, note="stored as the integer 1"), True, None),
    (TypeCase("d", "DATE", pa.string(), dt.date(2024, 2, 29), note="ISO text, as sqlite3 binds a date"),
     "2024-02-29", None),
    (
        TypeCase(
            "ts",
            "DATETIME",
            pa.string(),
            dt.datetime(2024, 1, 1, 12, 0, 0, 123456),
            note="ISO text, as sqlite3 binds a datetime",
        ),
        "2024-01-01 12:00:00.123456",
        None,
    ),
    (
        TypeCase(
            "tstz",
            "TIMESTAMP",
            pa.string(),
            dt.datetime(2024, 6, 1, 6, 30, tzinfo=dt.UTC),
            note="ISO text with the offset, as sqlite3 binds an aware datetime",
        ),
        "2024-06-01 06:30:00+00:00",
        None,
    ),
    (TypeCase("j", "JSON", pa.string(), '{"k": [1, 2]}', note="JSON text"), '{"k": [1, 2]}', None),
    (TypeCase("untyped", "", pa.int64(), 42, note="no declared type: values decide"), 42, None),
    (TypeCase("num_dec", "NUMERIC", pa.float64(), Decimal("2.5"), note="a Decimal parameter binds as REAL"),
     2.5, None),
    (TypeCase("ints_then_reals", "", pa.float64(), 7.0, note="integer in row 1, real in row 3"), 7, 7.25),
    (
        TypeCase("ints_then_text", "", pa.string(), 7, note="numbers and text: SQLite's text form"),
        7,
        "seven",
    ),
    (TypeCase("text_then_blob", "", pa.binary(), note="text and blobs: binary"), "a", b"\x00b"),
    (TypeCase("null_int", "INTEGER", pa.int64(), note="NULL in every row: the declared type decides"), None, None),
    (TypeCase("null_dec", "DECIMAL(15,2)", pa.float64(), note="NULL in every row"), None, None),
    (TypeCase("null_text", "VARCHAR(5)", pa.string(), note="NULL in every row"), None, None),
    (TypeCase("null_untyped", "", pa.string(), note="NULL in every row, no declared type: text"), None, None),
)


#: Indexes a TPC-H user adds on SQLite (it has no hash joins): the keys the correlated subqueries look up.
TPCH_INDEXES = ("CREATE INDEX lineitem_part_supp ON lineitem (l_partkey, l_suppkey)",)


def _as_sqlite3_takes_it(data: pa.Table) -> pa.Table:
    """Parquet columns as Python's sqlite3 takes them: decimals as floats, dates as ISO text."""
    columns = []
    for column in data.columns:
        if pa.types.is_decimal(column.type):
            column = column.cast(pa.float64())
        elif pa.types.is_date(column.type) or pa.types.is_string_view(column.type):
            column = column.cast(pa.string())
        columns.append(column)
    return pa.table(columns, names=data.column_names)


def _load(path: Path, tpch_dir: Path) -> None:
    con = sqlite3.connect(path)
    try:
        for table in TPCH_TABLES:
            con.execute(f"CREATE TABLE {table} ({TPCH_DDL[table]})")
            data = _as_sqlite3_takes_it(pq.read_table(tpch_dir / f"{table}.parquet"))
            marks = ", ".join("?" * data.num_columns)
            columns = [column.to_pylist() for column in data.columns]
            con.executemany(f"INSERT INTO {table} VALUES ({marks})", zip(*columns, strict=True))
        for index in TPCH_INDEXES:
            con.execute(index)
        columns = ", ".join(f"{case.column} {case.engine_type}".strip() for case, _, _ in _ZOO)
        con.execute(f"CREATE TABLE type_zoo (id INTEGER PRIMARY KEY, {columns})")
        con.executemany("INSERT INTO type_zoo (id) VALUES (?)", [(0,), (2,), (4,)])
        names = ", ".join(case.column for case, _, _ in _ZOO)
        marks = ", ".join("?" * len(_ZOO))
        con.execute(f"INSERT INTO type_zoo (id, {names}) VALUES (1, {marks})", [v for _, v, _ in _ZOO])
        con.execute(f"INSERT INTO type_zoo (id, {names}) VALUES (3, {marks})", [v for _, _, v in _ZOO])
        con.commit()
    finally:
        con.close()


# -- the queries, as a SQLite user writes them -----------------------------------------------------------------


def _as_sqlite_writes_it(tree: exp.Expression) -> exp.Expression:
    """EXTRACT(YEAR ...) as strftime, date + interval as date(), derived-table column lists as inner aliases."""

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Extract) and node.this.name.upper() == "YEAR":
            return exp.cast(exp.func("strftime", exp.Literal.string("%Y"), node.expression), "INTEGER")
        if isinstance(node, exp.Add | exp.Sub) and isinstance(node.expression, exp.Interval):
            interval = node.expression
            sign = "-" if isinstance(node, exp.Sub) else "+"
            modifier = f"{sign}{interval.this.name} {interval.unit.name.lower()}"
            return exp.func("date", node.this, exp.Literal.string(modifier))
        if isinstance(node, exp.TableAlias) and node.columns and isinstance(node.parent, exp.Subquery):
            select = node.parent.this
            for projection, name in zip(select.expressions, node.columns, strict=True):
                projection.replace(exp.alias_(projection.unalias(), name.name))
            node.set("columns", [])
        return node

    return tree.transform(rewrite)


# -- Python's sqlite3, with the gateway's one-type-per-column rule ---------------------------------------------


def _sqlite_parameter(value):
    """What a sqlite3 user binds: sqlite3 has no adapter for Decimal, so users pass a float (its default adapters
    turn dates and datetimes into ISO text)."""
    return float(value) if isinstance(value, Decimal) else value


def _one_type_per_column(rows: list[tuple], text_of) -> list[tuple]:
    """Apply the documented rule to sqlite3's per-value storage classes, column by column."""
    if not rows:
        return rows
    columns = [list(c) for c in zip(*rows, strict=True)]
    for column in columns:
        kinds = {type(v) for v in column if v is not None}
        if kinds == {int, float}:
            column[:] = [None if v is None else float(v) for v in column]
        elif bytes in kinds and len(kinds) > 1:
            column[:] = [v if v is None or isinstance(v, bytes) else text_of(v).encode() for v in column]
        elif str in kinds and len(kinds) > 1:
            column[:] = [v if v is None or isinstance(v, str) else text_of(v) for v in column]
    return list(zip(*columns, strict=True))


@pytest.fixture(scope="session")
def family_sqlite(tpch_dir, tmp_path_factory) -> Family:
    path = tmp_path_factory.mktemp("diff-sqlite") / "tpch.sqlite"
    _load(path, tpch_dir)
    # Declared types as sqlite3 users read them: DECIMAL and NUMERIC values as floats (SQLite stores 901.00 as the
    # integer 901), dates and timestamps as the ISO text they are stored as.
    converters = {"DECIMAL": float, "NUMERIC": float, "DATE": bytes.decode, "TIMESTAMP": bytes.decode}
    for name, converter in converters.items():
        sqlite3.register_converter(name, converter)
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, detect_types=sqlite3.PARSE_DECLTYPES
    )

    def text_of(value) -> str:
        return conn.execute("SELECT CAST(? AS TEXT)", (value,)).fetchone()[0]

    def native_columns(table):
        rows = conn.execute('SELECT name, type, "notnull", pk FROM pragma_table_info(?)', (table,)).fetchall()
        # An INTEGER PRIMARY KEY is the rowid, never NULL, though pragma_table_info does not say so.
        rowid = [name for name, declared, _, pk in rows if pk == 1 and declared.upper() == "INTEGER"]
        rowid = rowid if sum(1 for row in rows if row[3]) == 1 else []
        return [
            NativeColumn(name, declared or None, not (notnull or name in rowid)) for name, declared, notnull, _ in rows
        ]

    def native(sql, parameters):
        bound = [_sqlite_parameter(v) for v in parameters] if parameters else []
        cur = conn.execute(sql, bound)
        names = [c[0] for c in cur.description]
        return NativeRows(names, _one_type_per_column(cur.fetchall(), text_of))

    yield Family(
        name="sqlite",
        source=SourceSpec("lite", "sqlite", {"path": str(path)}),
        dialect="sqlite",
        native=native,
        zoo=tuple(case for case, _, _ in _ZOO),
        repeat_text="replace(hex(zeroblob({n})), '00', 'x')",
        repeat_blob="cast(replace(hex(zeroblob({n})), '00', 'x') as blob)",
        fold_constants=True,
        rewrite=_as_sqlite_writes_it,
        native_columns=native_columns,
    )
    conn.close()
