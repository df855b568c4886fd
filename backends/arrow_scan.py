"""Arrow data as DuckDB's Arrow scan reads it, with filter pushdown: view types and wide decimals made plain.

Writers built on arrow-rs (tpchgen-cli, delta-rs) and pyiceberg write text as ``string_view``. Two limits meet
there:

* DuckDB pushes no filter at all into an Arrow scan whose schema has a view type (duckdb/duckdb#20703), so the
  dataset DuckDB sees declares plain ``string``/``binary`` instead; pyarrow casts each batch it reads.
* pyarrow has no compute kernels for view types, and it prunes row groups by comparing a filter with the files'
  statistics in the files' own types: ``n_name = 'CHINA'`` then fails with "Function 'equal' has no kernel
  matching input types (string, string_view)". A filter that names a column stored as a view is therefore applied
  to the batches once pyarrow has cast them, not to the files' statistics; every other filter (integers, dates,
  partition columns) still skips row groups and files.

DuckDB's DECIMAL stops at 38 digits and its Arrow scan refuses ``decimal256`` outright, which would make a whole
table unreadable for one column: ``decimal256`` of up to 38 digits is read as the same ``decimal128``, wider ones
as ``double``, as DuckDB's own parquet reader reads them.

Large and dictionary types need nothing: pyarrow compares them with plain literals and DuckDB reads them as is.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.dataset as ds

#: Footers read at once when checking which columns the files store as views.
_FOOTER_READERS = 8


def plain_type(t: pa.DataType) -> pa.DataType:
    """``t`` with every view type and ``decimal256`` inside it replaced by a type DuckDB scans."""
    if pa.types.is_decimal256(t):
        return pa.decimal128(t.precision, t.scale) if t.precision <= 38 else pa.float64()
    if pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        value = t.value_field.with_type(plain_type(t.value_type))
        return pa.large_list(value) if pa.types.is_large_list(t) or pa.types.is_large_list_view(t) else pa.list_(value)
    if pa.types.is_fixed_size_list(t):
        return pa.list_(t.value_field.with_type(plain_type(t.value_type)), t.list_size)
    if pa.types.is_map(t):
        return pa.map_(t.key_field.with_type(plain_type(t.key_type)), t.item_field.with_type(plain_type(t.item_type)),
                       t.keys_sorted)
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(plain_type(f.type)) for f in t])
    return t


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` without view types (the same object when it has none)."""
    fields = [f.with_type(plain_type(f.type)) for f in schema]
    if all(f.type == g.type for f, g in zip(fields, schema, strict=True)):
        return schema
    return pa.schema(fields, metadata=schema.metadata)


def _has_view(t: pa.DataType) -> bool:
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        return True
    if pa.types.is_struct(t):
        return any(_has_view(f.type) for f in t)
    if pa.types.is_map(t):
        return _has_view(t.key_type) or _has_view(t.item_type)
    return pa.types.is_nested(t) and hasattr(t, "value_type") and _has_view(t.value_type)


def _text_like(t: pa.DataType) -> bool:
    """Types a view may be stored for: text, binary and anything nesting them."""
    return (
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
        or pa.types.is_large_binary(t) or _has_view(t) or pa.types.is_nested(t)
    )


def _binds(expression: ds.Expression, schema: pa.Schema) -> bool:
    """True when ``expression`` names only columns of ``schema``."""
    try:
        ds.dataset(schema.empty_table()).to_table(filter=expression)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return False
    return True


class ViewSafeDataset(ds.FileSystemDataset):
    """A file dataset in plain types whose ``scanner`` keeps filters on view-stored columns off the statistics.

    DuckDB builds its scan with ``type(dataset).scanner(dataset, columns=..., filter=...)``, so this override is
    where the filter is placed.
    """

    _view_columns: frozenset[str] | None
    _lock: threading.Lock

    def scanner(self, columns=None, filter=None, **kwargs):  # noqa: A002 - pyarrow's names
        """The scan DuckDB asked for; a filter naming a column the files store as a view is applied to batches."""
        if filter is None or not self._filters_view_column(filter):
            return ds.FileSystemDataset.scanner(self, columns=columns, filter=filter, **kwargs)
        inner_columns = columns if columns is None or _binds(filter, _select(self.schema, columns)) else None
        batches = ds.FileSystemDataset.scanner(self, columns=inner_columns, **kwargs).to_reader()
        return ds.Scanner.from_batches(batches, filter=filter, columns=columns)

    def _filters_view_column(self, expression: ds.Expression) -> bool:
        text = [f.name for f in self.schema if _text_like(f.type)]
        if not text or _binds(expression, _without(self.schema, text)):
            return False  # the filter names no text column: statistics are safe
        views = self.view_columns()
        return bool(views) and not _binds(expression, _without(self.schema, views))

    def view_columns(self) -> frozenset[str]:
        """Columns that some file of the dataset stores as a view type (footers read once, in parallel)."""
        with self._lock:
            if self._view_columns is None:
                fragments = list(self.get_fragments())
                with ThreadPoolExecutor(min(_FOOTER_READERS, max(1, len(fragments)))) as pool:
                    schemas = list(pool.map(lambda fragment: fragment.physical_schema, fragments))
                self._view_columns = frozenset(f.name for s in schemas for f in s if _has_view(f.type))
            return self._view_columns


def _select(schema: pa.Schema, names: list[str]) -> pa.Schema:
    return pa.schema([schema.field(n) for n in names if schema.get_field_index(n) >= 0])


def _without(schema: pa.Schema, names) -> pa.Schema:
    drop = set(names)
    return pa.schema([f for f in schema if f.name not in drop])


def scannable(dataset: ds.Dataset) -> ds.Dataset:
    """``dataset`` as DuckDB should scan it: plain types, with filters placed where pyarrow can apply them.

    The dataset's own schema may say ``string`` (Delta's and Hudi's come from the table's metadata) while its files
    store ``string_view``: the files' footers decide, and only when a filter names a text column.
    """
    if isinstance(dataset, ViewSafeDataset) or not isinstance(dataset, ds.FileSystemDataset):
        return dataset
    schema = plain_schema(dataset.schema)
    wrapped = ViewSafeDataset(
        list(dataset.get_fragments()), schema, dataset.format, dataset.filesystem, dataset.partition_expression
    )
    wrapped._lock = threading.Lock()
    wrapped._view_columns = None
    return wrapped


def for_duckdb(data):
    """Any Arrow object a lake table resolves to, ready for DuckDB's scan with filter pushdown.

    Datasets go through ``scannable``; streams and tables are cast to plain types (DuckDB hands its filter to
    pyarrow for those too, which cannot apply it to views).
    """
    if isinstance(data, ds.Dataset):
        return scannable(data)
    if isinstance(data, pa.RecordBatchReader | pa.Table):
        schema = plain_schema(data.schema)
        return data if schema is data.schema else data.cast(schema)
    return data
