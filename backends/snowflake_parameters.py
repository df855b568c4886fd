"""Bound ``?`` parameters in the form adbc-driver-snowflake can send.

The driver binds booleans, integers, floats and text only: any other Arrow type is refused as NOT_IMPLEMENTED
("Unsupported bind param … type date32"), and so is a column of NULLs (Arrow's null type). Values of the other
types a client binds travel as text, and their placeholder becomes a cast to the Snowflake type the value has — the
type the Snowflake connector gives the same Python value when it binds it:

============================  ==========================  =====================================
value                         sent as                     placeholder
============================  ==========================  =====================================
``Decimal``                   its digits                  ``CAST(? AS NUMBER(38, <scale>))``
int beyond int64              its digits                  ``CAST(? AS NUMBER(38, 0))``
``date``                      ISO 8601                    ``CAST(? AS DATE)``
``time``                      ISO 8601                    ``CAST(? AS TIME)``
naive ``datetime``            ISO 8601                    ``CAST(? AS TIMESTAMP_NTZ)``
``datetime`` with a zone      ISO 8601 with its offset    ``CAST(? AS TIMESTAMP_TZ)``
``bytes``                     hexadecimal                 ``TO_BINARY(?, 'HEX')``
only NULLs                    NULL text                   ``?``
============================  ==========================  =====================================

Each column is typed by its first value that is not NULL; NULLs in it bind as NULL of that type.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa

from nexus_flight.core.plan import replace_placeholders

_INT64 = range(-(2**63), 2**63)
_MAX_SCALE = 37


@dataclass(frozen=True)
class _Binding:
    """How one placeholder's values travel: their Arrow type, the value conversion and the placeholder's SQL."""

    arrow: pa.DataType | None  # None: as pyarrow infers it (the driver then accepts or refuses it)
    convert: Callable[[Any], Any]
    placeholder: str = "?"


def _same(value: Any) -> Any:
    return value


def _as_text(value: Any) -> str:
    return value.isoformat()


def _decimal_text(value: Decimal) -> str:
    return format(value, "f")


def _scale(values: Sequence[Any]) -> int:
    exponents = [-v.as_tuple().exponent for v in values if isinstance(v, Decimal) and v.is_finite()]
    return min(max([0, *exponents]), _MAX_SCALE)


def _binding(values: Sequence[Any]) -> _Binding:
    """The binding of one placeholder, from the values bound to it (one per parameter row)."""
    first = next((v for v in values if v is not None), None)
    if first is None:
        return _Binding(pa.string(), _same)
    if isinstance(first, bool):
        return _Binding(pa.bool_(), _same)
    if isinstance(first, int):
        if all(v is None or v in _INT64 for v in values):
            return _Binding(pa.int64(), _same)
        return _Binding(pa.string(), str, "CAST(? AS NUMBER(38, 0))")
    if isinstance(first, float):
        return _Binding(pa.float64(), _same)
    if isinstance(first, str):
        return _Binding(pa.string(), _same)
    if isinstance(first, Decimal):
        return _Binding(pa.string(), _decimal_text, f"CAST(? AS NUMBER(38, {_scale(values)}))")
    if isinstance(first, dt.datetime):
        kind = "TIMESTAMP_TZ" if first.tzinfo is not None else "TIMESTAMP_NTZ"
        return _Binding(pa.string(), _as_text, f"CAST(? AS {kind})")
    if isinstance(first, dt.date):
        return _Binding(pa.string(), _as_text, "CAST(? AS DATE)")
    if isinstance(first, dt.time):
        return _Binding(pa.string(), _as_text, "CAST(? AS TIME)")
    if isinstance(first, bytes | bytearray | memoryview):
        return _Binding(pa.string(), lambda v: bytes(v).hex().upper(), "TO_BINARY(?, 'HEX')")
    return _Binding(None, _same)


def snowflake_bindings(
    sql: str, placeholders: Sequence[int], rows: Sequence[Sequence[Any]]
) -> tuple[str, list[pa.RecordBatch]]:
    """Return ``sql`` with the placeholders (at ``placeholders``) its values need, and each row as a one-row batch."""
    width = len(rows[0])
    bindings = [_binding([row[i] for row in rows]) for i in range(width)]
    statement = replace_placeholders(sql, placeholders, lambda n: bindings[n - 1].placeholder if n <= width else "?")
    names = [str(i) for i in range(width)]
    batches = []
    for row in rows:
        arrays = [
            pa.array([None if value is None else binding.convert(value)], binding.arrow)
            for value, binding in zip(row, bindings, strict=True)
        ]
        batches.append(pa.RecordBatch.from_arrays(arrays, names=names))
    return statement, batches
