"""One Arrow type per SQLite result column, decided from every value the result holds.

SQLite types values, not columns: a ``DECIMAL(15,2)`` column stores 901.00 as the integer 901 and 901.50 as a real,
an untyped column may hold integers in some rows and text in others. adbc-driver-sqlite guesses each column's type
from the first batch, so a column that is NULL or integral there and something else later failed mid-stream.
Instead, the backend first reads the storage classes of the whole result (one aggregate pass of the query, no
rows kept). A column whose declared type (SQLite's affinity rules, read through a view of the query) admits all
of them keeps that type's Arrow type; any other column takes the type its values need:

================================  ===========================================================================
declared type (affinity)          Arrow type, while every value fits it
================================  ===========================================================================
…INT… (INTEGER, BIGINT)           int64 (integers)
…CHAR…, …CLOB…, …TEXT…            utf8 (text: SQLite stores numbers written there as text)
…REAL…, …FLOA…, …DOUB…            float64 (reals, and integers as reals)
…DEC…, …NUM… (DECIMAL, NUMERIC)   float64 (SQLite stores 901.00 as the integer 901, 901.50 as a real)
…BOOL…                            int64 (0 and 1)
…DATE…, …TIME…                    utf8 (ISO text)
================================  ===========================================================================

================================  ===========================================================================
storage classes, otherwise        Arrow type
================================  ===========================================================================
integer                           int64
real, or integer and real         float64 (integers above 2**53 lose their last digits)
text                              utf8
blob                              binary
text and numbers                  utf8, numbers in SQLite's own text form
blob and anything else            binary (text as UTF-8, numbers as their text)
none (every value NULL)           utf8
================================  ===========================================================================

The query then streams behind one constant row holding a value of each decided type, which the driver reads
first (so it infers exactly those types) and the backend drops.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa

from nexus_flight.core.plan import replace_placeholders

_CLASSES = ("integer", "real", "text", "blob")

#: Type names SQLite users declare, and the XDBC data type of what clients get for them.
XDBC_TYPE_NAMES = {
    "INTEGER": -5, "INT": -5, "BIGINT": -5, "BOOLEAN": -5, "REAL": 8, "DOUBLE": 8, "FLOAT": 8, "NUMERIC": 8,
    "DECIMAL": 8, "TEXT": 12, "VARCHAR": 12, "CHAR": 12, "CLOB": 12, "JSON": 12, "DATE": 12, "DATETIME": 12,
    "TIMESTAMP": 12, "BLOB": -3,
}  # fmt: skip

#: The constant of each decided type that fixes the driver's guess.
_SENTINELS = {pa.int64(): "0", pa.float64(): "0.0", pa.utf8(): "''", pa.binary(): "x''"}


@dataclass(frozen=True)
class DeclaredColumn:
    """A result column as SQLite declares it: its name and declared type ('' for expressions)."""

    name: str
    declared: str


@dataclass(frozen=True)
class TypedResult:
    """How one query streams: the statement SQLite runs, the rows to drop before the result, and its schema."""

    statement: str
    skip_rows: int
    schema: pa.Schema


def view_sql(sql: str, name: str, placeholders: Sequence[int] = ()) -> str:
    """A temporary view of ``sql``, whose columns SQLite then declares (the ``?`` at ``placeholders`` as NULL)."""
    return f'CREATE TEMP VIEW "{name}" AS {replace_placeholders(sql, placeholders, lambda _n: "NULL")}'


def result_names(names: Sequence[str]) -> list[str]:
    """The names a query's result columns have (a view renames the second ``a`` to ``a:1``)."""
    seen: set[str] = set()
    found = []
    for name in names:
        base = re.sub(r":\d+$", "", name)
        found.append(base if base != name and base in seen else name)
        seen.add(found[-1])
    return found


def scan_sql(sql: str, width: int) -> str:
    """One aggregate row telling, per column, which storage classes the whole result holds."""
    columns = [f"c{i}" for i in range(width)]
    probes = [f"max(typeof({c}) = '{kind}') AS {c}_{kind}" for c in columns for kind in _CLASSES]
    return f"WITH nexus_result({', '.join(columns)}) AS ({sql}\n) SELECT {', '.join(probes)} FROM nexus_result"


def scan_schema(width: int) -> pa.Schema:
    """The schema of ``scan_sql``'s row: one int64 flag per column and storage class."""
    return pa.schema([pa.field(f"c{i}_{kind}", pa.int64()) for i in range(width) for kind in _CLASSES])


def classes_of(rows: Sequence[Sequence[Any]], width: int) -> list[set[str]]:
    """The storage classes of each column, from the scan's rows (one row per parameter row)."""
    found: list[set[str]] = [set() for _ in range(width)]
    for row in rows:
        for index in range(width):
            found[index] |= {kind for k, kind in enumerate(_CLASSES) if row[index * len(_CLASSES) + k]}
    return found


def decided_type(classes: set[str], declared: str) -> pa.DataType:
    """The Arrow type of a column declared ``declared`` holding values of ``classes`` (see the tables above)."""
    natural = _natural(declared)
    if natural is not None and classes <= natural[1]:
        return natural[0]
    if "blob" in classes:
        return pa.binary()
    if "text" in classes:
        return pa.utf8()
    if "real" in classes:
        return pa.float64()
    if "integer" in classes:
        return pa.int64()
    return pa.utf8()


def declared_type(declared: str) -> pa.DataType:
    """The Arrow type of a table column from its declared type alone (metadata reads no rows)."""
    natural = _natural(declared)
    return natural[0] if natural is not None else pa.utf8()


def _natural(declared: str) -> tuple[pa.DataType, set[str]] | None:
    """The Arrow type a declared type stands for and the storage classes it holds (SQLite's affinity rules)."""
    upper = declared.upper()
    if "INT" in upper:
        return pa.int64(), {"integer"}
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return pa.utf8(), {"text"}
    if any(word in upper for word in ("REAL", "FLOA", "DOUB", "DEC", "NUM")):
        return pa.float64(), {"integer", "real"}
    if "BOOL" in upper:
        return pa.int64(), {"integer"}
    if "DATE" in upper or "TIME" in upper:
        return pa.utf8(), {"text"}
    return None


def typed_result(
    sql: str, names: Sequence[str], types: Sequence[pa.DataType], classes: Sequence[set[str]]
) -> TypedResult:
    """``sql`` behind one constant row of the decided types, which the driver reads first and the backend drops.

    The driver turns numbers into text by itself, not into blobs: binary columns holding other classes are cast.
    """
    quoted = ['"' + name.replace('"', '""') + '"' for name in names]
    sentinel = ", ".join(f"{_SENTINELS[t]} AS {q}" for t, q in zip(types, quoted, strict=True))
    casts = [t == pa.binary() and bool(c - {"blob"}) for t, c in zip(types, classes, strict=True)]
    if any(casts):
        columns = [f"c{i}" for i in range(len(names))]
        selected = ", ".join(f"CAST({c} AS BLOB)" if cast else c for c, cast in zip(columns, casts, strict=True))
        prefix = f"WITH nexus_result({', '.join(columns)}) AS ({sql}\n) "
        rows = f"SELECT {selected} FROM nexus_result"
    else:
        prefix, rows = "", f"SELECT * FROM ({sql}\n)"
    statement = f"{prefix}SELECT {sentinel} UNION ALL {rows}"
    schema = pa.schema([pa.field(name, t) for name, t in zip(names, types, strict=True)])
    return TypedResult(statement, 1, schema)


def bindable(value: Any) -> Any:
    """A parameter as SQLite binds it, as Python's sqlite3 users pass it (SQLite has no decimal or date type)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return value
