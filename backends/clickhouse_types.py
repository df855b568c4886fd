"""ClickHouse types → the Arrow types clients see, and the conversion of ClickHouse's own Arrow output into them.

ClickHouse's ArrowStream output keeps numbers, decimals, dates, DateTime64, strings, arrays, tuples and maps as
they are, but encodes some types so that their meaning is lost: DateTime arrives as ``uint32`` seconds, Enum as its
code, IPv4 as ``uint32``, IPv6 and (U)Int128/256 as fixed-size binary, intervals as a bare count. The gateway
therefore reads each column's ClickHouse type (``DESCRIBE`` of the query, which runs nothing) and converts the
stream column by column — Arrow compute where it has a kernel, numpy over the buffers where it has none
(``backends/clickhouse_kernels.py``), never a Python loop over rows — so a client gets the value the engine meant,
at any depth of Array, Tuple and Map:

====================================  ==========================================================================
ClickHouse                            Arrow
====================================  ==========================================================================
Int8…Int64, UInt8…UInt64              int8…int64, uint8…uint64
Int128, UInt128                       decimal256(39, 0) (exact)
Int256, UInt256                       utf8 (exact decimal text: 77/78 digits exceed every Arrow decimal)
Float32 / Float64                     float32 / float64
Decimal(P, S)                         decimal128(P, S), decimal256(P, S) when P > 38 (exact)
Bool                                  bool
Date, Date32                          date32
DateTime, DateTime('tz')              timestamp[s, tz] (the column's zone, else the server's)
DateTime64(p[, 'tz'])                 timestamp[ms|us|ns, tz] as ClickHouse sends it (p ≤ 3 → ms, ≤ 6 → us, else ns)
Time, Time64                          time32[s] / time64 as ClickHouse sends them
String, FixedString(N)                utf8, or binary when the source sets ``strings_as_binary``
UUID, IPv4, IPv6                      utf8 (canonical text)
Enum8, Enum16                         utf8 (the label)
LowCardinality(T), Nullable(T)        T (nullable)
Array(T), Tuple(...), Map(K, V)       list / struct / map of the converted element types
JSON, Object('json')                  utf8 (the JSON text)
Interval*                             month_day_nano_interval
====================================  ==========================================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from nexus_flight.backends import clickhouse_kernels as kernels
from nexus_flight.backends.result_types import uuid_to_text

Converter = Callable[[pa.Array], pa.Array]

# -- parsing type names --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CHType:
    """A parsed ClickHouse type: its name and its arguments (types, or literal text for numbers and strings)."""

    name: str
    args: tuple[CHType | str, ...] = ()
    #: The element name inside a named Tuple, if any.
    field: str | None = None

    def type_args(self) -> list[CHType]:
        """The arguments that are types."""
        return [a for a in self.args if isinstance(a, CHType)]


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


_NAMED_ELEMENT = re.compile(r"^(`[^`]+`|\"[^\"]+\"|[A-Za-z_][\w]*)\s+([A-Z].*)$", re.S)
_TYPE_ARGS = {"Nullable", "LowCardinality", "Array", "Tuple", "Map", "SimpleAggregateFunction", "Nested", "Variant"}


def parse_type(text: str) -> CHType:
    """Parse a ClickHouse type name such as ``Nullable(DateTime64(3, 'UTC'))``."""
    text = text.strip()
    open_at = text.find("(")
    if open_at < 0 or not text.endswith(")"):
        return CHType(text)
    name = text[:open_at].strip()
    inner = _split_top(text[open_at + 1 : -1])
    if name not in _TYPE_ARGS:
        return CHType(name, tuple(inner))
    args: list[CHType | str] = []
    for index, part in enumerate(inner):
        if name == "SimpleAggregateFunction" and index == 0:
            args.append(part)
            continue
        named = _NAMED_ELEMENT.match(part) if name in ("Tuple", "Nested") else None
        if named:
            element = parse_type(named.group(2))
            args.append(CHType(element.name, element.args, named.group(1).strip('`"')))
        else:
            args.append(parse_type(part))
    return CHType(name, tuple(args))


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    return text


# -- the mapping ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapping:
    """The Arrow type a client sees for one ClickHouse type, and how to get it from ClickHouse's Arrow output."""

    arrow: pa.DataType
    #: None when ClickHouse's own Arrow output already is ``arrow``.
    convert: Converter | None = None


_INTS = {
    "Int8": pa.int8(),
    "Int16": pa.int16(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "Float32": pa.float32(),
    "Float64": pa.float64(),
    "Bool": pa.bool_(),
    "Date": pa.date32(),
    "Date32": pa.date32(),
}
_DECIMAL_WIDTH = {"Decimal32": 9, "Decimal64": 18, "Decimal128": 38, "Decimal256": 76}
_INTERVAL_UNITS = {
    "Nanosecond": (0, 0, 1),
    "Microsecond": (0, 0, 1_000),
    "Millisecond": (0, 0, 1_000_000),
    "Second": (0, 0, 1_000_000_000),
    "Minute": (0, 0, 60_000_000_000),
    "Hour": (0, 0, 3_600_000_000_000),
    "Day": (0, 1, 0),
    "Week": (0, 7, 0),
    "Month": (1, 0, 0),
    "Quarter": (3, 0, 0),
    "Year": (12, 0, 0),
}


def arrow_mapping(ch: CHType | str, server_timezone: str = "UTC", strings_as_binary: bool = False) -> Mapping:
    """Return the client-facing Arrow type of a ClickHouse type and the converter from ClickHouse's output."""
    if isinstance(ch, str):
        ch = parse_type(ch)
    name = ch.name
    recurse = lambda t: arrow_mapping(t, server_timezone, strings_as_binary)  # noqa: E731
    if name in ("Nullable", "LowCardinality", "SimpleAggregateFunction"):
        return recurse(ch.type_args()[-1])
    if name in _INTS:
        return Mapping(_INTS[name])
    if name == "BFloat16":
        return Mapping(pa.float32(), kernels.bfloat16_to_float32)
    if name == "Time":
        return Mapping(pa.time32("s"))
    if name in ("Int128", "UInt128"):
        signed = name.startswith("Int")
        return Mapping(pa.decimal256(39, 0), lambda a: kernels.wide_int_to_decimal(a, signed))
    if name in ("Int256", "UInt256"):
        signed = name.startswith("Int")
        return Mapping(pa.utf8(), lambda a: kernels.wide_int_to_text(a, signed))
    if name == "Decimal":
        precision, scale = int(ch.args[0]), int(ch.args[1]) if len(ch.args) > 1 else 0
        return Mapping(pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale))
    if name in _DECIMAL_WIDTH:
        precision, scale = _DECIMAL_WIDTH[name], int(ch.args[0])
        return Mapping(pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale))
    if name == "DateTime":
        zone = _unquote(ch.args[0]) if ch.args else server_timezone
        target = pa.timestamp("s", tz=zone)
        return Mapping(target, lambda a: pc.cast(pc.cast(a, pa.int64()), target))
    if name == "DateTime64":
        precision = int(ch.args[0])
        unit = "ms" if precision <= 3 else "us" if precision <= 6 else "ns"
        zone = _unquote(ch.args[1]) if len(ch.args) > 1 else server_timezone
        target = pa.timestamp(unit, tz=zone)
        return Mapping(target, lambda a: a if a.type == target else pc.cast(a, target))
    if name in ("String", "FixedString"):
        target = pa.binary() if strings_as_binary else pa.utf8()
        return Mapping(target, lambda a: a if a.type == target else pc.cast(a, target))
    if name == "UUID":
        return Mapping(pa.utf8(), uuid_to_text)  # arrow.uuid, 16 bytes
    if name in ("JSON", "Object"):
        return Mapping(pa.utf8(), _storage)  # arrow.json: its storage is the text
    if name == "IPv4":
        return Mapping(pa.utf8(), kernels.ipv4_text)
    if name == "IPv6":
        return Mapping(pa.utf8(), kernels.ipv6_text)
    if name in ("Enum8", "Enum16"):
        return Mapping(pa.utf8(), _enum_labels(ch))
    if name.startswith("Interval") and name[8:] in _INTERVAL_UNITS:
        units = _INTERVAL_UNITS[name[8:]]
        return Mapping(pa.month_day_nano_interval(), lambda a: kernels.interval_from_count(a, *units))
    if name in ("Array", "Nested"):
        element = recurse(ch.type_args()[0]) if name == "Array" else recurse(CHType("Tuple", ch.args))
        return _list_mapping(element)
    if name == "Tuple":
        children = [recurse(t) for t in ch.type_args()]
        names = [t.field or str(i + 1) for i, t in enumerate(ch.type_args())]
        return _struct_mapping(names, children)
    if name == "Map":
        key, value = (recurse(t) for t in ch.type_args())
        return _map_mapping(key, value)
    # Anything else (Time, Time64, Point, Dynamic...) passes as ClickHouse sends it.
    return Mapping(pa.null(), None)


def _storage(array: pa.Array) -> pa.Array:
    return array.storage if isinstance(array.type, pa.BaseExtensionType) else array


_ENUM_ITEM = re.compile(r"^'((?:[^'\\]|\\.)*)'\s*=\s*(-?\d+)$", re.S)


def _enum_labels(ch: CHType) -> Converter:
    """Codes to labels with one ``take`` (codes shifted to be non-negative indices)."""
    pairs = []
    for item in ch.args:
        match = _ENUM_ITEM.match(str(item).strip())
        if match:
            pairs.append((int(match.group(2)), match.group(1).replace("\\'", "'").replace("\\\\", "\\")))
    low = min((c for c, _ in pairs), default=0)
    size = max((c for c, _ in pairs), default=0) - low + 1
    labels = [None] * size
    for code, label in pairs:
        labels[code - low] = label
    table = pa.array(labels, pa.utf8())

    def convert(array: pa.Array) -> pa.Array:
        codes = pc.subtract(pc.cast(array, pa.int32()), pa.scalar(low, pa.int32()))
        return pc.take(table, codes)

    return convert


def _list_mapping(element: Mapping) -> Mapping:
    target = pa.list_(element.arrow) if element.arrow != pa.null() else None
    if element.convert is None or target is None:
        return Mapping(target if target is not None else pa.null(), None)

    def convert(array: pa.Array) -> pa.Array:
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        values = element.convert(array.values)
        mask = array.is_null() if array.null_count else None
        return pa.ListArray.from_arrays(array.offsets, values, type=target, mask=mask)

    return Mapping(target, convert)


def _struct_mapping(names: list[str], children: list[Mapping]) -> Mapping:
    if any(c.arrow == pa.null() for c in children):
        return Mapping(pa.null(), None)
    target = pa.struct([pa.field(n, c.arrow) for n, c in zip(names, children, strict=True)])
    if all(c.convert is None for c in children):
        return Mapping(target, lambda a: a if a.type == target else a.cast(target))

    def convert(array: pa.Array) -> pa.Array:
        fields = [array.field(i) for i in range(array.type.num_fields)]
        converted = [f if c.convert is None else c.convert(f) for f, c in zip(fields, children, strict=True)]
        mask = array.is_null() if array.null_count else None
        return pa.StructArray.from_arrays(converted, fields=list(target), mask=mask)

    return Mapping(target, convert)


def _map_mapping(key: Mapping, value: Mapping) -> Mapping:
    if pa.null() in (key.arrow, value.arrow):
        return Mapping(pa.null(), None)
    target = pa.map_(key.arrow, value.arrow)
    if key.convert is None and value.convert is None:
        return Mapping(target, lambda a: a if a.type == target else a.cast(target))

    def convert(array: pa.Array) -> pa.Array:
        keys = array.keys if key.convert is None else key.convert(array.keys)
        items = array.items if value.convert is None else value.convert(array.items)
        mask = array.is_null() if array.null_count else None
        return pa.MapArray.from_arrays(array.offsets, keys, items, type=target, mask=mask)

    return Mapping(target, convert)
