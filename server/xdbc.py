"""GetXdbcTypeInfo: the SQL types the gateway returns, as ODBC's SQLGetTypeInfo wants them."""

from __future__ import annotations

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


def sql_type_name(arrow_type: pa.DataType) -> str:
    """The SQL name of an Arrow type, as GetXdbcTypeInfo lists it (``DECIMAL(12,4)`` with its precision and scale).

    Column metadata (``ARROW:FLIGHT:SQL:TYPE_NAME``) carries it, so JDBC's ``TYPE_NAME`` and ODBC's
    ``SQLDescribeCol`` name the type the way ``getTypeInfo`` does instead of showing Arrow's spelling.
    """
    t = arrow_type
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP WITH TIME ZONE" if t.tz else "TIMESTAMP"
    for check, name in _SQL_NAMES:
        if check(t):
            return name
    return str(t).upper()


_SQL_NAMES = [
    (pa.types.is_int64, "BIGINT"), (pa.types.is_int32, "INTEGER"), (pa.types.is_int16, "SMALLINT"),
    (pa.types.is_int8, "TINYINT"), (pa.types.is_uint64, "UBIGINT"), (pa.types.is_uint32, "UINTEGER"),
    (pa.types.is_uint16, "USMALLINT"), (pa.types.is_uint8, "UTINYINT"), (pa.types.is_boolean, "BOOLEAN"),
    (pa.types.is_float32, "FLOAT"), (pa.types.is_float64, "DOUBLE"), (pa.types.is_date, "DATE"),
    (pa.types.is_time, "TIME"), (pa.types.is_interval, "INTERVAL"), (pa.types.is_duration, "INTERVAL"),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t), "VARCHAR"),
    (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t), "BLOB"),
    (lambda t: pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t), "ARRAY"),
    (pa.types.is_struct, "STRUCT"), (pa.types.is_map, "MAP"),
]


def xdbc_type_info_table(data_type: int | None = None) -> pa.Table:
    """Rows sorted by data_type then type_name, optionally only those of one data type."""
    rows = sorted((t for t in _TYPES if data_type is None or t[1] == data_type), key=lambda t: (t[1], t[0]))
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
