"""Bound parameters for PostgreSQL: each placeholder takes the type psycopg would give it.

adbc-driver-postgresql declares every placeholder with the type of the Arrow value bound to it, so a string bound
for ``o_orderdate >= ?`` makes PostgreSQL look for ``date >= text``, which does not exist. psycopg instead sends a
string as an untyped literal and lets PostgreSQL infer its type from the context. Here every placeholder becomes
``$n::"type"`` and every value travels as text, in PostgreSQL's input format for that type:

- a value with a type of its own binds as that type, as psycopg binds it: bool → boolean, int → int8, float →
  float8, Decimal → numeric (every digit), date → date, datetime → timestamp, or timestamptz with a zone, time →
  time or timetz, timedelta and month-day-nano intervals → interval, bytes → bytea, UUID → uuid;
- a string or NULL takes the type PostgreSQL infers for the placeholder (date next to a date column, the enum of
  an enum column, text where nothing says otherwise).

Type names are quoted (``"bpchar"``, ``"bit"``): unquoted ``char`` and ``bit`` would mean char(1) and bit(1).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa

from nexus_flight.core.plan import replace_placeholders

#: Python type → the PostgreSQL type psycopg binds it as (checked in order: bool is an int).
_TYPED: tuple[tuple[type | tuple[type, ...], Callable[[Any], str]], ...] = (
    (bool, lambda v: "bool"),
    (int, lambda v: "int8"),
    (float, lambda v: "float8"),
    (Decimal, lambda v: "numeric"),
    (dt.datetime, lambda v: "timestamptz" if v.tzinfo else "timestamp"),
    (dt.date, lambda v: "date"),
    (dt.time, lambda v: "timetz" if v.tzinfo else "time"),
    ((dt.timedelta, pa.MonthDayNano), lambda v: "interval"),
    ((bytes, bytearray, memoryview), lambda v: "bytea"),
    (uuid.UUID, lambda v: "uuid"),
)

_UNDETERMINED = re.compile(r"could not determine data type of parameter \$(\d+)")


def value_types(rows: Sequence[Sequence[Any]] | None, count: int) -> list[str | None]:
    """The PostgreSQL type of each placeholder from its values; None where PostgreSQL must infer it."""
    types: list[str | None] = [None] * count
    for index in range(count):
        found = {_typed(row[index]) for row in rows or () if index < len(row) and row[index] is not None}
        if len(found) == 1:
            types[index] = found.pop()
    return types


def _typed(value: Any) -> str | None:
    for kinds, name in _TYPED:
        if isinstance(value, kinds):
            return name(value)
    return None


def undetermined_parameter(message: str) -> int | None:
    """The 1-based placeholder PostgreSQL could not type (``SELECT ? IS NULL``), from its error message."""
    match = _UNDETERMINED.search(message)
    return int(match.group(1)) if match else None


def quoted_type(typname: str) -> str:
    """A type name as a cast target, quoted so that ``bit`` and ``bpchar`` keep no default length."""
    return '"' + typname.replace('"', '""') + '"'


def with_casts(sql: str, placeholders: Sequence[int], types: Sequence[str | None]) -> str:
    """``sql`` with its ``?`` placeholders (at ``placeholders``) numbered, each cast to its type where one is known."""

    def placeholder(n: int) -> str:
        name = types[n - 1] if n <= len(types) else None
        return f"${n}" if name is None else f"${n}::{name}"

    return replace_placeholders(sql, placeholders, placeholder)


def as_text_row(row: Sequence[Any]) -> pa.RecordBatch:
    """One parameter row as the driver binds it: every value as text (NULL stays NULL)."""
    values = [_text(v) for v in row]
    return pa.record_batch([pa.array([v], pa.utf8()) for v in values], names=[f"p{i}" for i in range(len(values))])


def _text(value: Any) -> str | None:  # noqa: PLR0911 - one input format per type
    """PostgreSQL's input format for a Python value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return f"{value.days} days {value.seconds} seconds {value.microseconds} microseconds"
    if isinstance(value, pa.MonthDayNano):
        seconds = Decimal(value.nanoseconds) / 10**9
        return f"{value.months} months {value.days} days {seconds} seconds"
    return str(value)
