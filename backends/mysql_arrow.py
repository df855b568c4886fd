"""MySQL result columns as Arrow: the type of each column from the server's own result metadata, rows to batches.

The server describes every result column (type code, flags, charset, length, scale) in the protocol; the Arrow
type follows from that description alone, so a query announces the same schema before it runs (from a
``LIMIT 0`` probe) as it streams.

=====================================  ======================================================================
MySQL / MariaDB                        Arrow
=====================================  ======================================================================
TINYINT, SMALLINT, MEDIUMINT, INT      int8, int16, int32, int32 (UNSIGNED: uint8, uint16, uint32, uint32)
BIGINT                                 int64 (UNSIGNED: uint64)
BOOLEAN (= TINYINT(1))                 int8, as the engine answers it (0/1)
DECIMAL(p, s)                          decimal128(p, s) (decimal256 when p > 38), exact
FLOAT / DOUBLE                         float32 / float64
DATE                                   date32
DATETIME(n)                            timestamp[us] (wall-clock time, no zone)
TIMESTAMP(n)                           timestamp[us, tz=UTC] (the session's time_zone is '+00:00')
TIME(n)                                duration[us] (TIME spans -838:59:59 … 838:59:59, more than a day)
YEAR                                   int16
CHAR, VARCHAR, TEXT, ENUM, SET, JSON   utf8 (every charset converted to UTF-8 by the server)
BINARY, VARBINARY, BLOB, GEOMETRY      binary (GEOMETRY: the server's internal WKB)
BIT(n)                                 binary (the big-endian bytes the server sends)
NULL (``SELECT NULL``)                 null
=====================================  ======================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# Protocol type codes (include/mysql_com.h) and flags.
_DECIMAL, _TINY, _SHORT, _LONG, _FLOAT, _DOUBLE, _NULL, _TIMESTAMP, _LONGLONG, _INT24 = range(10)
_DATE, _TIME, _DATETIME, _YEAR, _NEWDATE, _VARCHAR, _BIT = range(10, 17)
_TIMESTAMP2, _DATETIME2, _TIME2 = 17, 18, 19
_JSON, _NEWDECIMAL, _ENUM, _SET = 245, 246, 247, 248
_TINY_BLOB, _MEDIUM_BLOB, _LONG_BLOB, _BLOB, _VAR_STRING, _STRING, _GEOMETRY = range(249, 256)

NOT_NULL_FLAG = 1
UNSIGNED_FLAG = 32
#: The charset number of binary strings.
BINARY_CHARSET = 63

_INTEGERS = {
    _TINY: (pa.int8(), pa.uint8()),
    _SHORT: (pa.int16(), pa.uint16()),
    _INT24: (pa.int32(), pa.uint32()),
    _LONG: (pa.int32(), pa.uint32()),
    _LONGLONG: (pa.int64(), pa.uint64()),
}
_FIXED = {
    _FLOAT: pa.float32(),
    _DOUBLE: pa.float64(),
    _NULL: pa.null(),
    _DATE: pa.date32(),
    _NEWDATE: pa.date32(),
    _DATETIME: pa.timestamp("us"),
    _DATETIME2: pa.timestamp("us"),
    _TIMESTAMP: pa.timestamp("us", tz="UTC"),
    _TIMESTAMP2: pa.timestamp("us", tz="UTC"),
    _TIME: pa.duration("us"),
    _TIME2: pa.duration("us"),
    _YEAR: pa.int16(),
    _BIT: pa.binary(),
    _GEOMETRY: pa.binary(),
    _JSON: pa.utf8(),
    _ENUM: pa.utf8(),
    _SET: pa.utf8(),
}
_STRINGS = {_VARCHAR, _TINY_BLOB, _MEDIUM_BLOB, _LONG_BLOB, _BLOB, _VAR_STRING, _STRING}


@dataclass(frozen=True)
class Column:
    """One result column as the server describes it."""

    name: str
    type_code: int
    flags: int
    charset: int
    #: The column's length in bytes (for DECIMAL: digits, point and sign).
    length: int
    scale: int

    @property
    def not_null(self) -> bool:
        """The server says the column never holds NULL."""
        return bool(self.flags & NOT_NULL_FLAG)


def columns_of(cursor: Any) -> list[Column]:
    """The result columns of an executed MariaDB Connector/Python cursor."""
    meta = cursor.metadata
    return [
        Column(d[0], d[1], d[7], charset, d[3] or 0, d[5] or 0)
        for d, charset in zip(cursor.description, meta["charset"], strict=True)
    ]


def arrow_type(column: Column) -> pa.DataType:
    """The Arrow type of one result column (table in the module docstring)."""
    code = column.type_code
    if code in _INTEGERS:
        signed, unsigned = _INTEGERS[code]
        return unsigned if column.flags & UNSIGNED_FLAG else signed
    if code in (_NEWDECIMAL, _DECIMAL):
        # The length counts the digits, the decimal point (when there is a scale) and the sign (when signed).
        precision = column.length - (1 if column.scale else 0) - (0 if column.flags & UNSIGNED_FLAG else 1)
        precision = max(precision, column.scale, 1)
        return pa.decimal128(precision, column.scale) if precision <= 38 else pa.decimal256(precision, column.scale)
    if code in _FIXED:
        return _FIXED[code]
    if code in _STRINGS:
        return pa.binary() if column.charset == BINARY_CHARSET else pa.utf8()
    return pa.utf8()


def result_schema(columns: Sequence[Column], *, nullability: bool = False) -> pa.Schema:
    """The Arrow schema of a result; with ``nullability``, NOT NULL columns are declared non-nullable."""
    return pa.schema(
        [pa.field(c.name, arrow_type(c), nullable=not (nullability and c.not_null)) for c in columns]
    )


def to_batch(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.RecordBatch:
    """Convert the driver's rows (tuples of Python values) to one batch of ``schema``, column by column.

    Naive datetimes of a TIMESTAMP column are UTC (the session's time zone), which is how pyarrow reads naive
    values into a zoned type.
    """
    if not rows:
        return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)
    columns = zip(*rows, strict=True)
    arrays = [_array(values, f.type) for values, f in zip(columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _array(values: Sequence[Any], target: pa.DataType) -> pa.Array:
    if target == pa.int8():
        # MariaDB Connector/Python 1.1 reads a signed TINYINT of the binary protocol as unsigned (-5 as 251):
        # the byte is right, its sign is not. Values above 127 are wrapped back; correct values pass unchanged.
        wide = pa.array(values, type=pa.int16())
        return pc.if_else(pc.greater(wide, 127), pc.subtract(wide, 256), wide).cast(pa.int8())
    return pa.array(values, type=target, from_pandas=False)
