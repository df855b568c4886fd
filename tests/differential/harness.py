"""The differential suite's contract: through the gateway, a source answers exactly as its engine answers itself.

A family joins the suite by declaring a :class:`Family` (in a ``family_<name>.py`` module of this folder, listed in
``FAMILY_FIXTURES`` of ``conftest.py``): how the gateway reaches the data, the engine's own client, and the engine's
"type zoo" — every type the engine has, with the Arrow type the gateway documents for it. The tests then compare,
through the real ADBC Flight SQL client, the gateway's answer with the engine's own answer: the same rows
(order-insensitive unless the query orders them), the same values (decimals exactly, floats to 1e-9 relative), the
same column names, and the documented Arrow types.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify_tables import qualify_tables
from sqlglot.optimizer.simplify import simplify

from nexus_flight.core.source import SourceSpec

_PARAMETER = "__nexus_parameter__"

#: The engine's own answer to (sql, parameters): a pyarrow.Table where its client speaks Arrow, else rows.
NativeRunner = Callable[[str, Sequence[Any] | None], "pa.Table | NativeRows | list[tuple]"]


@dataclass(frozen=True)
class NativeRows:
    """The answer of an engine client that returns Python rows (psycopg, sqlite3), with the names it reported."""

    column_names: list[str]
    rows: list[tuple]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)


class EngineRows(list):
    """An engine's answer as rows (tuples of Python values), with the column names the engine gave them."""

    def __init__(self, rows, column_names) -> None:
        super().__init__(rows)
        self.column_names = list(column_names)


@dataclass(frozen=True)
class TypeCase:
    """One column of a family's type zoo: the engine's type and the Arrow type the gateway documents for it."""

    column: str
    engine_type: str
    arrow: pa.DataType
    #: A value of this type to bind as a ``?`` parameter (None: the type cannot be compared with a parameter).
    parameter: Any = None
    note: str = ""


@dataclass(frozen=True)
class NativeColumn:
    """A table's column as the engine's own catalog describes it (information_schema, pg_attribute, pragma)."""

    name: str
    #: The database's own name of the column's type (``bigint``, ``numeric(15,2)``); None: it declares none.
    type_name: str | None
    nullable: bool


@dataclass
class Family:
    """A source the suite compares with its own engine."""

    name: str
    source: SourceSpec
    #: The sqlglot dialect clients write in for this source (the engine's own).
    dialect: str
    #: Runs SQL on the engine through its own client; parameters use ``placeholder`` below.
    native: NativeRunner
    #: The schema of the TPC-H tables and of the type zoo, as the engine names it (None: unqualified).
    schema: str | None = None
    #: The native client's parameter marker (``%s`` for psycopg and pymysql, ``?`` for sqlite3 and DuckDB).
    placeholder: str = "?"
    #: The type zoo's table name (in ``schema``), its id column orders the rows; empty when not declared yet.
    zoo_table: str = "type_zoo"
    zoo: tuple[TypeCase, ...] = ()
    #: SQL making a text value of n characters (``{n}`` is replaced), for wide values.
    repeat_text: str = "repeat('x', {n})"
    #: SQL making a binary value of n bytes (``{n}`` is replaced), in DuckDB's dialect (rendered in the family's);
    #: None where the engine has no binary type apart from its text.
    repeat_blob: str | None = "cast(repeat('x', {n}) as blob)"
    #: Query ids this engine itself cannot run, with the reason (the gateway is then not asked either).
    engine_cannot: dict[str, str] = field(default_factory=dict)
    #: The engine names result columns written unquoted in upper case (Snowflake), not as written.
    upper_case_names: bool = False
    #: The engine's own spelling (DuckDB's dialect, unqualified) of queries whose shared text uses syntax it lacks.
    spelled: dict[str, str] = field(default_factory=dict)
    #: Fold constant expressions (``date '1998-12-01' - interval '90' day``) before rendering, for dialects
    #: without interval arithmetic (SQLite): both sides get the same folded SQL.
    fold_constants: bool = False
    #: Rewrites a query (parsed in DuckDB's dialect) the way a user of this engine writes it, where sqlglot cannot
    #: (SQLite has no EXTRACT): both sides get the rewritten SQL.
    rewrite: Callable[[exp.Expression], exp.Expression] | None = None
    #: The engine's own catalog entry of a table's columns, in order (None: not declared yet; metadata tests skip).
    native_columns: Callable[[str], list[NativeColumn]] | None = None
    #: Types the gateway maps but the zoo cannot hold here: (engine type, documented Arrow type, why).
    unverified: tuple[tuple[str, str, str], ...] = ()

    @property
    def catalog(self) -> str:
        """The Flight SQL catalog (source name) the gateway serves this family under."""
        return self.source.name

    def for_gateway(self, sql: str) -> str:
        """``sql`` (written in DuckDB's dialect over unqualified names) as a client of this source writes it."""
        return self._qualified(sql, catalog=self.catalog)

    def for_engine(self, sql: str) -> str:
        """``sql`` as the engine's own client runs it."""
        return self._qualified(sql, catalog=None)

    def _qualified(self, sql: str, catalog: str | None) -> str:
        tree = sqlglot.parse_one(sql, read="duckdb")
        if self.fold_constants:
            tree = simplify(tree, dialect="duckdb")
        if self.rewrite is not None:
            tree = self.rewrite(tree)
        # Clients of the gateway write ``?`` in every dialect (sqlglot would render psycopg's ``%s`` for postgres).
        for placeholder in list(tree.find_all(exp.Placeholder)):
            placeholder.replace(exp.var("?"))
        if self.schema or catalog:
            tree = qualify_tables(tree, db=self.schema, catalog=catalog)
            if catalog and not self.schema:
                for table in tree.find_all(exp.Table):
                    if table.args.get("catalog") and not table.args.get("db"):
                        table.set("db", exp.to_identifier("main"))
        # Clients mark parameters with ``?`` whatever the dialect (sqlglot writes ClickHouse's as ``{name: type}``).
        for placeholder in list(tree.find_all(exp.Placeholder)):
            placeholder.replace(exp.var(_PARAMETER))
        return tree.sql(self.dialect).replace(_PARAMETER, "?")

    def result_name(self, name: str) -> str:
        """The name of the result column the client wrote as the unquoted identifier ``name``."""
        return name.upper() if self.upper_case_names else name

    def native_sql(self, sql: str) -> str:
        """``sql`` with the gateway's ``?`` markers turned into the native client's."""
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)


# -- comparing answers ---------------------------------------------------------------------------------------


_PLAIN_KINDS = {str: "str", int: "int", bool: "bool", Decimal: "decimal", dt.date: "date", bytes: "bytes"}


def tagged(value: Any) -> tuple:
    """A value with its kind, so that 1 == 1.0 == Decimal(1) == True stay different answers."""
    kind = _PLAIN_KINDS.get(type(value))  # the common kinds first: large answers are compared value by value
    if kind is not None:
        return (kind, value)
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", "nan") if math.isnan(value) else ("float", value)
    if isinstance(value, Decimal):
        return ("decimal", value)
    if isinstance(value, dt.datetime):
        # An instant is the same answer in any zone: compare (and sort) it in UTC.
        return ("timestamptz", value.astimezone(dt.UTC)) if value.tzinfo else ("timestamp", value)
    if isinstance(value, dt.date):
        return ("date", value)
    if isinstance(value, dt.time):
        return ("time", value)
    if isinstance(value, dt.timedelta):
        return ("interval", value)
    if isinstance(value, bytes | bytearray | memoryview):
        return ("bytes", bytes(value))
    if isinstance(value, uuid.UUID):
        return ("uuid", value)
    if isinstance(value, list | tuple):
        return ("list", tuple(tagged(v) for v in value))
    if isinstance(value, dict):
        return ("struct", tuple((k, tagged(v)) for k, v in value.items()))
    return (type(value).__name__, value)


def _same(a: tuple, b: tuple) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] == "float" and a[1] != "nan" and b[1] != "nan":
        if math.isinf(a[1]) or math.isinf(b[1]):
            return a[1] == b[1]
        return math.isclose(a[1], b[1], rel_tol=1e-9, abs_tol=1e-12)
    if a[0] == "list":
        return len(a[1]) == len(b[1]) and all(_same(x, y) for x, y in zip(a[1], b[1], strict=True))
    if a[0] == "struct":
        return len(a[1]) == len(b[1]) and all(
            x[0] == y[0] and _same(x[1], y[1]) for x, y in zip(a[1], b[1], strict=True)
        )
    return a == b


def _rows(answer: pa.Table | NativeRows | list[tuple]) -> list[tuple]:
    if isinstance(answer, pa.Table):  # column by column: far faster than a dict per row for large answers
        columns = [[tagged(v) for v in column.to_pylist()] for column in answer.columns]
        return list(zip(*columns, strict=True)) if columns else [() for _ in range(answer.num_rows)]
    return [tuple(tagged(v) for v in row) for row in answer]


def _sort_key(row: tuple) -> str:
    # Floats are rounded for ordering only, so that rows differing in the last bits still line up; decimals are
    # normalized, so that 1.50 (a scale-2 column) and 1.5000 (PostgreSQL's own scale for that row) line up.
    return repr(tuple(_orderable(c) for c in row))


def _orderable(c: tuple) -> tuple:
    if c[0] == "float" and c[1] != "nan" and not math.isinf(c[1]):
        return (c[0], round(c[1], 6))
    if c[0] == "decimal" and c[1].is_finite():
        return (c[0], c[1].normalize())
    return c


def assert_same_answer(got: pa.Table, expected: pa.Table | NativeRows | list[tuple], ordered: bool) -> None:
    """The gateway's answer ``got`` has the rows and values of the engine's own answer ``expected``.

    With ``ordered``, the gateway must keep the engine's order — except among rows the ORDER BY ties, which either
    side may return in any order: a mismatch in order that disappears once both sides are sorted is accepted.
    """
    mine, theirs = _rows(got), _rows(expected)
    assert len(mine) == len(theirs), f"{len(mine)} rows through the gateway, {len(theirs)} from the engine"
    if ordered and mine == theirs:  # identical, value for value: the common case, decided without a Python loop
        return
    if ordered and all(all(_same(a, b) for a, b in zip(x, y, strict=True)) for x, y in zip(mine, theirs, strict=True)):
        return
    mine, theirs = sorted(mine, key=_sort_key), sorted(theirs, key=_sort_key)
    for index, (x, y) in enumerate(zip(mine, theirs, strict=True)):
        assert len(x) == len(y), f"row {index}: {len(x)} columns through the gateway, {len(y)} from the engine"
        for column, (a, b) in enumerate(zip(x, y, strict=True)):
            assert _same(a, b), f"row {index}, column {column}: gateway {a!r} != engine {b!r}"


def is_ordered(sql: str) -> bool:
    """True when the query's outermost SELECT has an ORDER BY."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    return tree.args.get("order") is not None


def type_table_markdown(family: Family) -> str:
    """The family's type mapping as the README documents it (generated from the zoo, checked by the tests)."""
    lines = [
        f"# `{family.name}`: engine types and the Arrow types the gateway returns",
        "",
        "Generated from `tests/differential/family_" + family.name + ".py` by the differential suite, which checks",
        "every row against the engine itself (`python -m pytest tests/differential --update-type-tables` rewrites it).",
        "",
        "| engine type | Arrow type | note |",
        "|---|---|---|",
    ]
    lines += [
        f"| {f'`{case.engine_type}`' if case.engine_type else '(no declared type)'} | `{case.arrow}` | {case.note} |"
        for case in family.zoo
    ]
    if family.unverified:
        lines += [
            "",
            "Mapped by the gateway but not in the zoo here (documented, not compared with the engine):",
            "",
            "| engine type | Arrow type | why not here |",
            "|---|---|---|",
        ]
        lines += [f"| `{engine}` | `{arrow}` | {why} |" for engine, arrow, why in family.unverified]
    return "\n".join(lines) + "\n"
