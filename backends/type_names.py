"""SQL names of Arrow types, as DuckDB names them.

DuckDB is the SQL engine of the sources without a catalog of their own (files, object stores, lake tables), so its
names (``BIGINT``, ``DECIMAL(15,2)``, ``VARCHAR``, ``TIMESTAMP WITH TIME ZONE``) are their databases' type names;
the metadata commands fall back to them where a backend names no type.
"""

from __future__ import annotations

import functools
import threading

import duckdb
import pyarrow as pa

_LOCK = threading.Lock()
_CONNECTION: duckdb.DuckDBPyConnection | None = None


@functools.lru_cache(maxsize=1024)
def sql_type_name(arrow_type: pa.DataType) -> str:
    """DuckDB's name of the type a column of ``arrow_type`` has in DuckDB."""
    global _CONNECTION  # noqa: PLW0603 - one private in-memory connection, opened on first use
    with _LOCK:
        if _CONNECTION is None:
            _CONNECTION = duckdb.connect()
        try:
            return str(_CONNECTION.from_arrow(pa.schema([pa.field("x", arrow_type)]).empty_table()).types[0])
        except duckdb.Error:
            if pa.types.is_decimal(arrow_type):
                return f"DECIMAL({arrow_type.precision},{arrow_type.scale})"
            return str(arrow_type).upper()
