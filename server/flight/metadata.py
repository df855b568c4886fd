"""Result schemas and tables of the Flight SQL metadata commands, exactly as clients check them.

ADBC compares these schemas whole (names, types, nullability); JDBC looks columns up by name and requires the
exact Arrow type. Never large_utf8 or view types here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import pyarrow as pa

from nexus_flight.backends.base import ForeignKeyColumn, KeyColumn

CATALOGS = pa.schema([pa.field("catalog_name", pa.utf8(), nullable=False)])
DB_SCHEMAS = pa.schema(
    [pa.field("catalog_name", pa.utf8()), pa.field("db_schema_name", pa.utf8(), nullable=False)]
)
TABLES = pa.schema(
    [
        pa.field("catalog_name", pa.utf8()),
        pa.field("db_schema_name", pa.utf8()),
        pa.field("table_name", pa.utf8(), nullable=False),
        pa.field("table_type", pa.utf8(), nullable=False),
    ]
)
TABLES_WITH_SCHEMA = TABLES.append(pa.field("table_schema", pa.binary(), nullable=False))
TABLE_TYPES = pa.schema([pa.field("table_type", pa.utf8(), nullable=False)])
PRIMARY_KEYS = pa.schema(
    [
        pa.field("catalog_name", pa.utf8()),
        pa.field("db_schema_name", pa.utf8()),
        pa.field("table_name", pa.utf8(), nullable=False),
        pa.field("column_name", pa.utf8(), nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        pa.field("key_name", pa.utf8()),
    ]
)
FOREIGN_KEYS = pa.schema(
    [
        pa.field("pk_catalog_name", pa.utf8()),
        pa.field("pk_db_schema_name", pa.utf8()),
        pa.field("pk_table_name", pa.utf8(), nullable=False),
        pa.field("pk_column_name", pa.utf8(), nullable=False),
        pa.field("fk_catalog_name", pa.utf8()),
        pa.field("fk_db_schema_name", pa.utf8()),
        pa.field("fk_table_name", pa.utf8(), nullable=False),
        pa.field("fk_column_name", pa.utf8(), nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        pa.field("fk_key_name", pa.utf8()),
        pa.field("pk_key_name", pa.utf8()),
        pa.field("update_rule", pa.uint8(), nullable=False),
        pa.field("delete_rule", pa.uint8(), nullable=False),
    ]
)

TABLE_TYPE_NAMES = ("TABLE", "VIEW")


def like_to_regex(pattern: str | None) -> re.Pattern[str] | None:
    r"""Compile a SQL LIKE pattern (``%`` any run, ``_`` one character, ``\`` escapes); None matches all."""
    if pattern is None:
        return None
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def matches(regex: re.Pattern[str] | None, value: str) -> bool:
    """True when the compiled LIKE pattern accepts ``value`` (no pattern accepts everything)."""
    return regex is None or regex.fullmatch(value) is not None


def table(schema: pa.Schema, rows: Iterable[Sequence]) -> pa.Table:
    """Build a metadata table from row tuples, in the schema's column order."""
    columns = list(zip(*rows, strict=False)) or [[] for _ in schema]
    return pa.Table.from_arrays([pa.array(list(c), type=f.type) for c, f in zip(columns, schema, strict=True)],
                                schema=schema)


def primary_key_rows(catalog: str, keys: Iterable[KeyColumn]) -> list[tuple]:
    """GetPrimaryKeys rows, ordered by catalog, schema, table, key name, key sequence."""
    rows = [(catalog, k.db_schema, k.table, k.column, k.key_sequence, k.key_name) for k in keys]
    return sorted(rows, key=lambda r: (r[1] or "", r[2], r[5] or "", r[4]))


def foreign_key_rows(
    pk_catalog: str, fk_catalog: str, keys: Iterable[ForeignKeyColumn], order_by_fk: bool
) -> list[tuple]:
    """FK rows; exported keys sort by the fk side, imported keys and cross references by the pk side."""
    rows = [
        (
            pk_catalog, k.pk.db_schema, k.pk.table, k.pk.column,
            fk_catalog, k.fk.db_schema, k.fk.table, k.fk.column,
            k.fk.key_sequence, k.fk.key_name, k.pk.key_name, k.update_rule, k.delete_rule,
        )
        for k in keys
    ]
    if order_by_fk:
        return sorted(rows, key=lambda r: (r[4] or "", r[5] or "", r[6], r[9] or "", r[8]))
    return sorted(rows, key=lambda r: (r[0] or "", r[1] or "", r[2], r[10] or "", r[8]))
