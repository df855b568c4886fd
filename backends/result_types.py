"""The Arrow types clients get for a driver's result columns, and how each column's arrays are converted.

Drivers hand back Arrow with their own habits: extension types (``arrow.uuid``, ``arrow.json``,
``arrow.opaque``) that JDBC and ODBC cannot read, field metadata of their own (``POSTGRESQL:type``), engine
encodings a family converts (ClickHouse's DateTime, PostgreSQL's numeric). A ``TypePlan`` says, column by column,
which type clients see and which converter each batch's array goes through; the common case converts nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

#: The Arrow type clients get for a driver column, and how each of its arrays is converted into it.
ColumnRule = tuple[pa.DataType, Callable[[pa.Array], pa.Array]]
#: A backend's rule for a driver field (None: no opinion, the generic clean-up applies).
FieldRule = Callable[[pa.Field], "ColumnRule | None"]


def uuid_to_text(array: pa.Array) -> pa.Array:
    """16-byte UUIDs to their canonical 36-character text, without a Python loop."""
    storage = _storage(array)
    n = len(storage)
    raw = np.frombuffer(storage.buffers()[1], dtype=np.uint8)[storage.offset * 16 : (storage.offset + n) * 16]
    hexed = np.frombuffer(raw.tobytes().hex().encode(), dtype="S1").reshape(n, 32)
    dash = np.full((n, 1), b"-", dtype="S1")
    text = np.hstack(
        [
            hexed[:, :8],
            dash,
            hexed[:, 8:12],
            dash,
            hexed[:, 12:16],
            dash,
            hexed[:, 16:20],
            dash,
            hexed[:, 20:],
        ]
    )
    offsets = pa.py_buffer(np.arange(0, 36 * (n + 1), 36, dtype=np.int32).tobytes())
    validity = storage.buffers()[0] if storage.null_count else None
    if validity is not None and storage.offset:
        validity = pa.array(storage.is_valid()).buffers()[1]
    return pa.Array.from_buffers(
        pa.utf8(), n, [validity, offsets, pa.py_buffer(text.tobytes())], storage.null_count
    )


def _plain_items(t: pa.DataType) -> ColumnRule | None:
    """A list whose item field carries the driver's metadata (``POSTGRESQL:type``) as a plain list: the same data."""
    if not pa.types.is_list(t) or not t.value_field.metadata:
        return None
    plain = pa.list_(t.value_type)
    return plain, lambda array: array.view(plain)


def _plain_extension(t: pa.DataType) -> tuple[pa.DataType, Callable[[pa.Array], pa.Array]] | None:
    """Extension types (arrow.uuid, arrow.json, arrow.opaque), also as list items, become plain ones.

    Types every Flight SQL client reads: JDBC and ODBC know no extension types.
    """
    if pa.types.is_list(t):
        inner = _plain_extension(t.value_type)
        return list_of(*inner) if inner is not None else None
    if not isinstance(t, pa.BaseExtensionType):
        return None
    if t.extension_name == "arrow.uuid":
        return pa.utf8(), uuid_to_text
    return t.storage_type, _storage


def list_of(target: pa.DataType, convert: Callable[[pa.Array], pa.Array]) -> ColumnRule:
    """The rule of a list column whose items follow ``target``/``convert``: the items converted, lists kept."""

    def convert_lists(array: pa.Array) -> pa.Array:
        return pa.ListArray.from_arrays(array.offsets, convert(array.values), pa.list_(target),
                                        mask=array.is_null() if array.null_count else None)

    return pa.list_(target), convert_lists


def _storage(array: pa.Array) -> pa.Array:
    return array.storage if isinstance(array.type, pa.BaseExtensionType) else array


@dataclass(frozen=True)
class TypePlan:
    """How to turn the driver's schema into the one clients see, column by column."""

    schema: pa.Schema
    converters: tuple[Callable[[pa.Array], pa.Array] | None, ...]

    @property
    def identity(self) -> bool:
        """True when batches pass through untouched."""
        return not any(self.converters)

    def convert(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Convert one batch."""
        if self.identity:
            return batch
        columns = [c if f is None else f(c) for c, f in zip(batch.columns, self.converters, strict=True)]
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)


def type_plan(
    schema: pa.Schema, rule: FieldRule | None = None, columns: Sequence[FieldRule | None] = ()
) -> TypePlan:
    """Plan the conversion of ``schema``: the query's own rules first, then the backend's, then generic ones.

    ``columns`` are the query's rules by position, ``rule`` the backend's for any field; extension types no rule
    claims are unwrapped. Field metadata the driver adds (``POSTGRESQL:type`` ...) is dropped: clients get plain Arrow.
    """
    fields, converters = [], []
    for index, f in enumerate(schema):
        column = columns[index] if index < len(columns) else None
        found = ((column(f) if column else None) or (rule(f) if rule else None) or _plain_extension(f.type)
                 or _plain_items(f.type))
        if found is None:
            fields.append(pa.field(f.name, f.type, f.nullable))
            converters.append(None)
        else:
            target, convert = found
            fields.append(pa.field(f.name, target, f.nullable))
            converters.append(convert)
    return TypePlan(pa.schema(fields), tuple(converters))


def plain_schema(
    schema: pa.Schema, rule: FieldRule | None = None, columns: Sequence[FieldRule | None] = ()
) -> pa.Schema:
    """Return the schema clients see for a driver schema."""
    return type_plan(schema, rule, columns).schema
