"""Comparing the gateway's answer with a lake library's own read of the same table: names, types, values, NULLs.

The gateway returns a few types differently from the libraries, on purpose and for every family (the type tables
under ``tests/differential/types/``): a zone of UTC is ``Etc/UTC``, a UUID its canonical text, fixed-size and
large binary plain ``binary``, large and view text plain ``string``. ``as_the_gateway_returns`` applies exactly
those to the library's table; everything else (decimal precision and scale, timestamp units, with or without a
zone, nested types) must match as it is.
"""

from __future__ import annotations

import pyarrow as pa

from tests.support.results import run


def _gateway_type(t: pa.DataType) -> pa.DataType:
    if getattr(t, "extension_name", None) == "arrow.uuid":
        return pa.string()
    if pa.types.is_timestamp(t) and t.tz in ("UTC", "+00:00"):
        return pa.timestamp(t.unit, tz="Etc/UTC")
    if pa.types.is_fixed_size_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(t.value_field.with_type(_gateway_type(t.value_type)))
    if pa.types.is_map(t):
        return pa.map_(t.key_field.with_type(_gateway_type(t.key_type)),
                       t.item_field.with_type(_gateway_type(t.item_type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_gateway_type(f.type)) for f in t])
    return t


def _gateway_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if getattr(column.type, "extension_name", None) == "arrow.uuid":
        return pa.chunked_array([pa.array([None if u is None else str(u) for u in column.to_pylist()], pa.string())])
    return column.cast(_gateway_type(column.type))


def as_the_gateway_returns(table: pa.Table) -> pa.Table:
    """``table`` (a library's own read) with the gateway's documented type conventions applied."""
    return pa.table([_gateway_column(c) for c in table.columns], names=table.column_names)


def _sorted_rows(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda row: repr(list(row.values())))


def assert_same_answer(backend, sql: str, expected: pa.Table, params=None) -> pa.Table:
    """Run ``sql`` on ``backend``; its columns, types and rows (in any order) must be ``expected``'s."""
    got = run(backend, sql, params, timeout_seconds=60)
    want = as_the_gateway_returns(expected)
    assert [(f.name, f.type) for f in got.schema] == [(f.name, f.type) for f in want.schema]
    assert _sorted_rows(got) == _sorted_rows(want)
    return got
