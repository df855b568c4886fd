"""GetXdbcTypeInfo: the SQL types the gateway returns, as ODBC's SQLGetTypeInfo wants them.

The rows name the types of the session's catalog as that database names them (``Backend.xdbc_type_names``:
``bigint``, ``character varying`` for PostgreSQL); a source without its own names (DuckDB, files, lakes) gets
DuckDB's, the engine that runs its SQL.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

SCHEMA = pa.schema(
    [
        pa.field("type_name", pa.utf8(), nullable=False),
        pa.field("data_type", pa.int32(), nullable=False),
        pa.field("column_size", pa.int32()),
        pa.field("literal_prefix", pa.utf8()),
        pa.field("literal_suffix", pa.utf8()),
        pa.field("create_params", pa.list_(pa.field("item", pa.utf8(), nullable=False))),
        pa.field("nullable", pa.int32(), nullable=False),
        pa.field("case_sensitive", pa.bool_(), nullable=False),
        pa.field("searchable", pa.int32(), nullable=False),
        pa.field("unsigned_attribute", pa.bool_()),
        pa.field("fixed_prec_scale", pa.bool_(), nullable=False),
        pa.field("auto_increment", pa.bool_()),
        pa.field("local_type_name", pa.utf8()),
        pa.field("minimum_scale", pa.int32()),
        pa.field("maximum_scale", pa.int32()),
        pa.field("sql_data_type", pa.int32(), nullable=False),
        pa.field("datetime_subcode", pa.int32()),
        pa.field("num_prec_radix", pa.int32()),
        pa.field("interval_precision", pa.int32()),
    ]
)

# (type_name, data_type, column_size, prefix, suffix, create_params, case_sensitive, searchable, unsigned,
#  fixed_prec_scale, min_scale, max_scale, datetime_subcode, radix)
_TYPES = [
    ("CHAR", 1, 2147483647, "'", "'", ["length"], True, 3, None, False, None, None, None, None),
    ("REAL", 7, 24, None, None, None, False, 2, False, False, None, None, None, 2),
    ("BIGINT", -5, 19, None, None, None, False, 2, False, False, None, None, None, 10),
    ("BOOLEAN", -7, 1, None, None, None, False, 2, None, False, None, None, None, None),
    ("TINYINT", -6, 3, None, None, None, False, 2, False, False, None, None, None, 10),
    ("BLOB", -3, 2147483647, "'\\x", "'", None, False, 0, None, False, None, None, None, None),
    ("DECIMAL", 3, 38, None, None, ["precision", "scale"], False, 2, False, True, 0, 38, None, 10),
    ("INTEGER", 4, 10, None, None, None, False, 2, False, False, None, None, None, 10),
    ("SMALLINT", 5, 5, None, None, None, False, 2, False, False, None, None, None, 10),
    ("FLOAT", 6, 24, None, None, None, False, 2, False, False, None, None, None, 2),
    ("DOUBLE", 8, 53, None, None, None, False, 2, False, False, None, None, None, 2),
    ("INTERVAL", 10, None, "INTERVAL '", "'", None, False, 2, None, False, None, None, None, None),
    ("VARCHAR", 12, 2147483647, "'", "'", ["length"], True, 3, None, False, None, None, None, None),
    ("DATE", 91, 10, "DATE '", "'", None, False, 2, None, False, None, None, 1, None),
    ("TIME", 92, 15, "TIME '", "'", None, False, 2, None, False, None, None, 2, None),
    ("TIMESTAMP", 93, 26, "TIMESTAMP '", "'", None, False, 2, None, False, None, None, 3, None),
    ("TIMESTAMP WITH TIME ZONE", 93, 32, "TIMESTAMPTZ '", "'", None, False, 2, None, False, None, None, 5, None),
]


#: DuckDB's names, the default: every row but the CHAR and REAL templates (DuckDB has neither type).
_DUCKDB = {t[0]: t[1] for t in _TYPES if t[0] not in ("CHAR", "REAL")}


def _named(type_names: Mapping[str, int]) -> list[tuple]:
    """A row per database type name, from the template of its XDBC data type."""
    templates = {}
    for row in _TYPES:
        templates.setdefault(row[1], row)
    return [(name, *templates[code][1:]) for name, code in type_names.items() if code in templates]


def xdbc_type_info_table(data_type: int | None = None, type_names: Mapping[str, int] | None = None) -> pa.Table:
    """Rows sorted by data_type then type_name, optionally only those of one data type.

    ``type_names`` maps the database's type names to their XDBC data types (None: DuckDB's names).
    """
    types = _named(type_names if type_names is not None else _DUCKDB)
    rows = sorted((t for t in types if data_type is None or t[1] == data_type), key=lambda t: (t[1], t[0]))
    columns: dict[str, list] = {f.name: [] for f in SCHEMA}
    for name, code, size, prefix, suffix, params, case, search, unsigned, fixed, min_s, max_s, sub, radix in rows:
        values = {
            "type_name": name, "data_type": code, "column_size": size, "literal_prefix": prefix,
            "literal_suffix": suffix, "create_params": params, "nullable": 1, "case_sensitive": case,
            "searchable": search, "unsigned_attribute": unsigned, "fixed_prec_scale": fixed, "auto_increment": False,
            "local_type_name": name, "minimum_scale": min_s, "maximum_scale": max_s,
            "sql_data_type": 9 if code in (91, 92, 93) else code, "datetime_subcode": sub, "num_prec_radix": radix,
            "interval_precision": None,
        }
        for key, value in values.items():
            columns[key].append(value)
    return pa.Table.from_pydict(columns, schema=SCHEMA)
