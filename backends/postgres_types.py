"""PostgreSQL result types as clients see them: exact decimals, and PostgreSQL's text where Arrow has no type.

adbc-driver-postgresql hands ``numeric`` over as text and the types it has no Arrow counterpart for (timetz, inet,
cidr, macaddr, bit, xml, ranges, enums created after it connected) as opaque bytes of PostgreSQL's binary wire
format; composites arrive as structs whose rows are all NULL. Clients get:

- ``numeric(p, s)``: ``decimal128(p, s)``, ``decimal256(p, s)`` when p > 38;
- ``numeric`` whose scale PostgreSQL's rules fix (``sum(price)``, ``price * qty``, ``round(x, 2)``; see
  ``postgres_numeric``): ``decimal128(38, s)``;
- any other ``numeric`` (``avg``, ``/``, unconstrained columns): ``decimal256(76, 38)``, 38 integer and 38
  fractional digits;
- ``money``: ``decimal128(19, 2)`` (two fractional digits, as lc_monetary C and en_US give);
- ``oid``: ``uint32`` (the driver's int32 would wrap past 2^31);
- arrays of these: lists of them (``numeric[]`` as lists of ``decimal256(76, 38)``);
- opaque types and composites: their PostgreSQL text form (the query is wrapped to cast those columns to text);
- arrays of those: lists of their text forms.

A value that does not fit its decimal (more digits, NaN, Infinity) fails the query with an error naming the
column and the value: it is never rounded. Dates and timestamps 'infinity' and '-infinity' fail the same way
(Arrow has no infinite dates; the driver would hand over a date in the year -5877641).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from nexus_flight.backends.result_types import ColumnRule, FieldRule, list_of
from nexus_flight.core.errors import InvalidQueryError, UnsupportedError

#: A ``numeric`` whose scale depends on the values: 38 integer and 38 fractional digits.
UNCONSTRAINED_NUMERIC = pa.decimal256(76, 38)
#: ``money`` as the driver reads it is an int64 of cents.
MONEY = pa.decimal128(19, 2)

_CENT = pa.scalar(Decimal("0.01"), pa.decimal128(3, 2))

#: PostgreSQL's type names (``format_type``'s spelling) and the XDBC data type of what clients get for them.
XDBC_TYPE_NAMES = {
    "smallint": 5, "integer": 4, "bigint": -5, "numeric": 3, "money": 3, "real": 7, "double precision": 8,
    "boolean": -7, "character": 1, "character varying": 12, "text": 12, "name": 12, "bytea": -3, "date": 91,
    "time without time zone": 92, "timestamp without time zone": 93, "timestamp with time zone": 93,
    "interval": 10, "time with time zone": 12, "uuid": 12, "json": 12, "jsonb": 12, "inet": 12, "cidr": 12,
    "macaddr": 12, "bit": 12, "bit varying": 12, "xml": 12,
}  # fmt: skip


def _pg_type(f: pa.Field) -> bytes | None:
    meta = f.metadata or {}
    return meta.get(b"POSTGRESQL:type", meta.get(b"ADBC:postgresql:typname"))


def _opaque(t: pa.DataType) -> bool:
    return isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.opaque"


def _is_numeric(f: pa.Field) -> bool:
    return _opaque(f.type) and _pg_type(f) == b"numeric"


def declared_decimal(f: pa.Field) -> pa.DataType | None:
    """The decimal of a ``numeric(p, s)`` field, from the typmod PostgreSQL reports (None when unconstrained)."""
    return decimal_of_typmod(int((f.metadata or {}).get(b"POSTGRESQL:typmod", b"-1")))


def decimal_of_typmod(typmod: int) -> pa.DataType | None:
    """The decimal of ``numeric(p, s)`` from its typmod (None: unconstrained, or digits Arrow's decimals lack)."""
    if typmod < 4:
        return None
    precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
    if not 0 <= scale <= precision <= 76:
        return None  # numeric(2, -3), numeric(1000, 2): beyond Arrow's decimals
    return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)


def needs_text(f: pa.Field) -> bool:
    """True when the column must reach clients as PostgreSQL's text form (opaque types, composites)."""
    t = f.type
    if pa.types.is_list(t):
        return needs_text(t.value_field) and not _is_numeric(t.value_field)
    if _opaque(t):
        return not _is_numeric(f)
    return pa.types.is_struct(t) and _pg_type(f) is not None


#: How the driver names a type it does not know (an array of ranges, a type created after it connected).
_UNNAMED = re.compile(rb"unnamed<oid:(\d+)>")


def unnamed_oid(f: pa.Field) -> int | None:
    """The oid of a column's type the driver did not know by name, or None."""
    found = _UNNAMED.fullmatch(_pg_type(f) or b"")
    return int(found.group(1)) if found else None


def text_columns(
    statement: str, schema: pa.Schema, is_array: Callable[[pa.Field], bool] = lambda _f: False
) -> str | None:
    """Wrap ``statement`` so that the columns ``needs_text`` picks arrive as text; None when none needs it.

    ``is_array``: asked of those columns only, whether one the driver hands over whole (it knew no name for its
    type) is an array, cast to ``text[]``.

    Raises:
        UnsupportedError: two output columns share a name, so the wrapper cannot tell them apart.

    """
    if not any(needs_text(f) for f in schema):
        return None
    if len(set(schema.names)) != len(schema.names):
        kinds = ", ".join(sorted({(_pg_type(f) or b"?").decode() for f in schema if needs_text(f)}))
        raise UnsupportedError(
            f"[postgres] the result has {kinds} columns, which travel as PostgreSQL's text form, and repeated "
            "column names: give the columns distinct names (or cast them to text)"
        )
    columns = []
    for f in schema:
        name = '"' + f.name.replace('"', '""') + '"'
        if needs_text(f):
            array = pa.types.is_list(f.type) or is_array(f)
            columns.append(f"{name}::text{'[]' if array else ''} AS {name}")
        else:
            columns.append(name)
    return f"SELECT {', '.join(columns)} FROM ({statement}\n) AS nexus_result"


# -- conversions ---------------------------------------------------------------------------------------------


def _decimal_from_text(target: pa.DataType, column: str) -> Callable[[pa.Array], pa.Array]:
    def convert(array: pa.Array) -> pa.Array:
        text = array.storage if isinstance(array.type, pa.BaseExtensionType) else array
        try:
            return pc.cast(text, target)
        except pa.ArrowInvalid:
            raise _does_not_fit(text, target, column) from None

    return convert


def _does_not_fit(text: pa.Array, target: pa.DataType, column: str) -> InvalidQueryError:
    for value in text.to_pylist():
        try:
            pc.cast(pa.array([value]), target)
        except pa.ArrowInvalid:
            break
    else:  # pragma: no cover - the batch failed, so one value does
        value = "?"
    hint = (
        "Arrow decimals have no NaN or infinity"
        if str(value).lower().lstrip("+-") in ("nan", "inf", "infinity")
        else "it has more digits than the type holds"
    )
    return InvalidQueryError(
        f"[postgres] numeric value {value} of column {column!r} does not fit {target}: {hint}; cast it in the query "
        "(to numeric(p,s) with the digits you need, to double precision or to text)"
    )


def _money(array: pa.Array) -> pa.Array:
    return pc.cast(pc.multiply(pc.cast(array, pa.decimal128(19, 0)), _CENT), MONEY)


#: PostgreSQL's date 'infinity' and '-infinity' as the driver hands them over (shifted to 1970, wrapped).
_DATE_INFINITIES = pa.array([-2147472692, -2147472691], pa.int32())
#: Microseconds since 1970 below PostgreSQL's first timestamp (4713 BC): a wrapped 'infinity', '-infinity' or a
#: timestamp after the year 294247, which Arrow cannot hold either.
_TIMESTAMP_FLOOR = -211_000_000_000_000_000


def _no_infinity(column: str, kind: str) -> Callable[[pa.Array], pa.Array]:
    def check(array: pa.Array) -> pa.Array:
        if kind == "date":
            wrapped = pc.any(pc.is_in(array.cast(pa.int32()), _DATE_INFINITIES)).as_py()
        else:
            smallest = pc.min(array.cast(pa.int64())).as_py()
            wrapped = smallest is not None and smallest < _TIMESTAMP_FLOOR
        if wrapped:
            raise InvalidQueryError(
                f"[postgres] column {column!r} holds {kind} infinity (or a {kind} beyond year 294247), which Arrow "
                f"cannot carry: filter it out, or cast the column to text in the query"
            )
        return array

    return check


def field_rule(f: pa.Field) -> ColumnRule | None:
    """The Arrow type clients get for one driver field, whatever the query (numeric, money, numeric[])."""
    if _pg_type(f) in (b"date", b"timestamp", b"timestamptz"):
        kind = "date" if _pg_type(f) == b"date" else "timestamp"
        return f.type, _no_infinity(f.name, kind)
    if _is_numeric(f):
        target = declared_decimal(f) or UNCONSTRAINED_NUMERIC
        return target, _decimal_from_text(target, f.name)
    if _pg_type(f) == b"money" and pa.types.is_int64(f.type):
        return MONEY, _money
    if _pg_type(f) == b"oid" and pa.types.is_int32(f.type):  # unsigned: 4000000000 arrived as -294967296
        return pa.uint32(), _unsigned
    if pa.types.is_list(f.type):
        item = field_rule(f.type.value_field.with_name(f.name))  # numeric[], money[], oid[]
        return list_of(*item) if item is not None else None
    return None


def _unsigned(array: pa.Array) -> pa.Array:
    return array.view(pa.uint32())


def column_rules(schema: pa.Schema, scales: Sequence[int | None] | None) -> list[FieldRule | None]:
    """Per-column rules of one query: ``numeric`` columns whose scale the query fixes become decimal128(38, s)."""
    rules: list[FieldRule | None] = [None] * len(schema)
    if scales is None or len(scales) != len(schema):
        return rules
    for index, (f, scale) in enumerate(zip(schema, scales, strict=True)):
        if _is_numeric(f) and declared_decimal(f) is None and scale is not None and scale <= 38:
            target = pa.decimal128(38, scale)
            rules[index] = _fixed(target, _decimal_from_text(target, f.name))
    return rules


def _fixed(target: pa.DataType, convert: Callable[[pa.Array], pa.Array]) -> FieldRule:
    return lambda _field: (target, convert)


def unconstrained_numeric_columns(schema: pa.Schema) -> bool:
    """True when some column is a ``numeric`` without a declared precision (worth following the query for)."""
    return any(_is_numeric(f) and declared_decimal(f) is None for f in schema)
