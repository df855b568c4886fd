"""The schemas of a PostgreSQL schema's tables from one read of pg_attribute, for the schema cache's snapshots.

``PostgresBackend.table_schema`` describes ``SELECT * FROM t`` through the gateway's own query path: two round trips
a table, thousands for a large source, at every snapshot. For most columns the Arrow type a query of the table
streams follows from the column's type and typmod alone, by the rules ``postgres_types`` applies to what the driver
describes; this module applies them to pg_attribute's rows instead, for every table of a schema at once.

It answers only for the tables every column of which it is certain of: built-in types with one Arrow type whatever
the query (``_PLAIN``), the built-in types the query casts to text (``_TEXT_FORM``), ``numeric`` unconstrained or
with digits Arrow's decimals hold, and arrays of the plain types. A domain, an enum, a composite, a range, an
extension's type, any other array (of uuid, json, money, ranges ...) or a ``numeric`` beyond Arrow's decimals
leaves its table to ``table_schema``: there the driver's description and the query's rules decide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa

from nexus_flight.backends.base import catalog_column
from nexus_flight.backends.postgres_types import MONEY, UNCONSTRAINED_NUMERIC, decimal_of_typmod

#: A column as the catalog describes it: name, ``format_type``'s spelling, NOT NULL and its fractional-second digits
#: (the declared digits of a time or timestamp; None: none declared, 6, Arrow's unit). ``table_schema`` reads it too.
CATALOG_COLUMNS = (
    "a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, "
    "CASE WHEN a.atttypid IN ('pg_catalog.time'::pg_catalog.regtype, 'pg_catalog.timetz'::pg_catalog.regtype, "
    "'pg_catalog.timestamp'::pg_catalog.regtype, 'pg_catalog.timestamptz'::pg_catalog.regtype) "
    "AND a.atttypmod >= 0 THEN a.atttypmod END"
)

#: Every column of the tables, views, materialized views and foreign tables of one schema, in attnum order, with
#: the name of its type and (for an array) of its element type when pg_catalog defines them, and its typmod.
_SCHEMA_COLUMNS = (
    f"SELECT c.relname::text, {CATALOG_COLUMNS}, "
    "CASE WHEN tn.nspname = 'pg_catalog' AND t.typtype = 'b' THEN t.typname::text END, "
    "CASE WHEN en.nspname = 'pg_catalog' AND e.typtype = 'b' THEN e.typname::text END, "
    "a.atttypmod "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid "
    "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
    "JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace "
    # e: the element type whose array type t is
    "LEFT JOIN (pg_catalog.pg_type e JOIN pg_catalog.pg_namespace en ON en.oid = e.typnamespace) "
    "ON e.typarray = t.oid "
    "WHERE n.nspname = $1::text AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY c.relname, a.attnum"
)

#: pg_catalog's types that reach clients as one Arrow type, whatever the query.
_PLAIN = {
    "int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(), "float4": pa.float32(), "float8": pa.float64(),
    "bool": pa.bool_(), "text": pa.utf8(), "varchar": pa.utf8(), "bpchar": pa.utf8(), "name": pa.utf8(),
    "bytea": pa.binary(), "date": pa.date32(), "time": pa.time64("us"), "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"), "interval": pa.month_day_nano_interval(),
    "uuid": pa.utf8(), "json": pa.utf8(), "jsonb": pa.utf8(), "money": MONEY,
}  # fmt: skip
#: pg_catalog's types the driver hands over as opaque bytes: the query casts them to text.
_TEXT_FORM = {"timetz", "inet", "cidr", "macaddr", "macaddr8", "bit", "varbit", "xml"}
#: The element types whose arrays arrive as lists of the element's Arrow type (uuid, json and money do not).
_LIST_ELEMENTS = {"int2", "int4", "int8", "float4", "float8", "bool", "text", "varchar", "bpchar", "name", "bytea",
                  "date", "time", "timestamp", "timestamptz", "interval"}

#: One row of ``_SCHEMA_COLUMNS``.
_Row = tuple[str, str, str, bool, int | None, str | None, str | None, int]


def arrow_type(type_name: str | None, element: str | None, typmod: int) -> pa.DataType | None:
    """The Arrow type a query of a column of this type streams; None when the catalog alone cannot be sure.

    ``type_name`` and ``element`` are pg_catalog's names of the column's type and of its element type (for an array),
    None for any other schema's type.
    """
    if type_name == "numeric":
        return UNCONSTRAINED_NUMERIC if typmod == -1 else decimal_of_typmod(typmod)
    if type_name in _PLAIN:
        return _PLAIN[type_name]
    if type_name in _TEXT_FORM:
        return pa.utf8()
    if element == "numeric":
        return pa.list_(UNCONSTRAINED_NUMERIC)  # the driver reads array elements without their typmod
    if element in _LIST_ELEMENTS:
        # Items as plain Arrow (the driver's metadata on the item field is dropped, as queries stream them).
        return pa.list_(_PLAIN[element])
    return None


def table_schemas(rows: Callable[[str, Sequence[str]], list[tuple]], db_schema: str) -> dict[str, pa.Schema]:
    """The schema of each table of ``db_schema`` whose columns' types are all certain, from one catalog read.

    ``rows`` runs a catalog query. The others (and a table without columns, which ``table_schema`` reports missing)
    are left out: the caller describes them one by one.
    """
    by_table: dict[str, list[_Row]] = {}
    for row in rows(_SCHEMA_COLUMNS, (db_schema,)):
        by_table.setdefault(row[0], []).append(row)
    schemas = {}
    for table, columns in by_table.items():
        fields = []
        for _, name, type_name, not_null, digits, pg_type, element, typmod in columns:
            arrow = arrow_type(pg_type, element, typmod)
            if arrow is None:
                break
            fields.append(catalog_column(pa.field(name, arrow), type_name, not not_null, digits))
        else:
            schemas[table] = pa.schema(fields)
    return schemas
