"""GetSqlInfo: what the server tells JDBC, ODBC, ADBC and SQLAlchemy about itself.

Each id is sent in the union member its clients cast it to (JDBC throws ClassCastException on a wrong member,
ODBC reinterprets memory). The "all ids" answer holds only ids every JDBC driver since 10.0.0 knows (0–9, 100,
101, 500–576): JDBC puts each id into an EnumMap and an unknown id throws NullPointerException. Ids 10 and 11
(bulk ingestion) are sent only when asked for.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from nexus_flight.server import __version__

STRING, BOOL, BIGINT, INT32_BITMASK, STRING_LIST, INT32_MAP = range(6)

_VALUE_TYPE = pa.dense_union(
    [
        pa.field("string_value", pa.utf8()),
        pa.field("bool_value", pa.bool_()),
        pa.field("bigint_value", pa.int64()),
        pa.field("int32_bitmask", pa.int32()),
        pa.field("string_list", pa.list_(pa.field("item", pa.utf8()))),
        pa.field(
            "int32_to_int32_list_map",
            pa.map_(pa.int32(), pa.list_(pa.field("item", pa.int32()))),
        ),
    ],
    type_codes=[0, 1, 2, 3, 4, 5],
)
SCHEMA = pa.schema([pa.field("info_name", pa.uint32(), nullable=False), pa.field("value", _VALUE_TYPE, nullable=False)])

_KEYWORDS = ["ANTI", "ASOF", "COLUMNS", "EXCLUDE", "ILIKE", "PIVOT", "POSITIONAL", "QUALIFY", "REPLACE", "SEMI",
             "UNPIVOT"]
_NUMERIC = ["ABS", "ACOS", "ASIN", "ATAN", "ATAN2", "CEILING", "COS", "COT", "DEGREES", "EXP", "FLOOR", "LOG",
            "LOG10", "MOD", "PI", "POWER", "RADIANS", "RAND", "ROUND", "SIGN", "SIN", "SQRT", "TAN", "TRUNCATE"]
_STRING = ["ASCII", "CHAR", "CONCAT", "LCASE", "LEFT", "LENGTH", "LOCATE", "LTRIM", "REPEAT", "REPLACE", "RIGHT",
           "RTRIM", "SPACE", "SUBSTRING", "UCASE"]
_SYSTEM = ["DATABASE", "IFNULL", "USER"]
_DATETIME = ["CURDATE", "CURTIME", "DAYNAME", "DAYOFMONTH", "DAYOFWEEK", "DAYOFYEAR", "HOUR", "MINUTE", "MONTH",
             "MONTHNAME", "NOW", "QUARTER", "SECOND", "WEEK", "YEAR"]


def _info(statement_timeout_seconds: int) -> dict[int, tuple[int, object]]:
    info: dict[int, tuple[int, object]] = {
        0: (STRING, "Nexus Flight"),
        1: (STRING, __version__),
        2: (STRING, pa.__version__),
        3: (BOOL, True),  # READ_ONLY
        4: (BOOL, True),  # SQL
        5: (BOOL, False),  # SUBSTRAIT
        6: (STRING, ""),
        7: (STRING, ""),
        8: (INT32_BITMASK, 0),  # SERVER_TRANSACTION: NONE (ADBC would start transactions otherwise)
        9: (BOOL, True),  # CANCEL
        10: (BOOL, False),  # BULK_INGESTION (only when asked: JDBC < 17 does not know it)
        11: (BOOL, False),  # INGEST_TRANSACTIONS_SUPPORTED
        100: (INT32_BITMASK, statement_timeout_seconds * 1000),  # STATEMENT_TIMEOUT (ms)
        101: (INT32_BITMASK, 0),  # TRANSACTION_TIMEOUT
        500: (BOOL, False),  # DDL_CATALOG
        501: (BOOL, False),  # DDL_SCHEMA
        502: (BOOL, False),  # DDL_TABLE
        503: (BIGINT, 1),  # IDENTIFIER_CASE: case-insensitive
        504: (STRING, '"'),  # IDENTIFIER_QUOTE_CHAR
        505: (BIGINT, 3),  # QUOTED_IDENTIFIER_CASE: (sensitive) reported as lowercase-preserving
        506: (BOOL, True),  # ALL_TABLES_ARE_SELECTABLE
        507: (BIGINT, 3),  # NULL_ORDERING: at end
        508: (STRING_LIST, _KEYWORDS),
        509: (STRING_LIST, _NUMERIC),
        510: (STRING_LIST, _STRING),
        511: (STRING_LIST, _SYSTEM),
        512: (STRING_LIST, _DATETIME),
        513: (STRING, "\\"),  # SEARCH_STRING_ESCAPE
        514: (STRING, ""),  # EXTRA_NAME_CHARACTERS
        515: (BOOL, True),  # SUPPORTS_COLUMN_ALIASING
        516: (BOOL, True),  # NULL_PLUS_NULL_IS_NULL
        517: (INT32_MAP, {}),  # SUPPORTS_CONVERT
        518: (BOOL, True),  # SUPPORTS_TABLE_CORRELATION_NAMES
        519: (BOOL, False),  # SUPPORTS_DIFFERENT_TABLE_CORRELATION_NAMES
        520: (BOOL, True),  # SUPPORTS_EXPRESSIONS_IN_ORDER_BY
        521: (BOOL, True),  # SUPPORTS_ORDER_BY_UNRELATED
        522: (INT32_BITMASK, 0b11),  # SUPPORTED_GROUP_BY: unrelated, beyond select
        523: (BOOL, True),  # SUPPORTS_LIKE_ESCAPE_CLAUSE
        524: (BOOL, True),  # SUPPORTS_NON_NULLABLE_COLUMNS
        525: (INT32_BITMASK, 0b111),  # SUPPORTED_GRAMMAR: minimum, core, extended
        526: (INT32_BITMASK, 0b111),  # ANSI92_SUPPORTED_LEVEL
        527: (BOOL, False),  # SUPPORTS_INTEGRITY_ENHANCEMENT_FACILITY
        528: (INT32_BITMASK, 2),  # OUTER_JOINS_SUPPORT_LEVEL: full
        529: (STRING, "schema"),
        530: (STRING, "procedure"),
        531: (STRING, "catalog"),
        532: (BOOL, True),  # CATALOG_AT_START
        533: (INT32_BITMASK, 0),  # SCHEMAS_SUPPORTED_ACTIONS
        534: (INT32_BITMASK, 0),  # CATALOGS_SUPPORTED_ACTIONS
        535: (INT32_BITMASK, 0),  # SUPPORTED_POSITIONED_COMMANDS
        536: (BOOL, False),  # SELECT_FOR_UPDATE_SUPPORTED
        537: (BOOL, False),  # STORED_PROCEDURES_SUPPORTED
        538: (INT32_BITMASK, 0b1111),  # SUPPORTED_SUBQUERIES
        539: (BOOL, True),  # CORRELATED_SUBQUERIES_SUPPORTED
        540: (INT32_BITMASK, 0b11),  # SUPPORTED_UNIONS
    }
    for max_id in range(541, 556):  # SQL_MAX_* lengths and counts: 0 = no limit known
        info[max_id] = (BIGINT, 0)
    info[556] = (BOOL, True)  # MAX_ROW_SIZE_INCLUDES_BLOBS
    for max_id in range(557, 562):
        info[max_id] = (BIGINT, 0)
    info.update(
        {
            562: (BIGINT, 0),  # DEFAULT_TRANSACTION_ISOLATION: none
            563: (BOOL, False),  # TRANSACTIONS_SUPPORTED
            564: (INT32_BITMASK, 0),
            565: (BOOL, False),
            566: (BOOL, False),
            567: (INT32_BITMASK, 0b10),  # SUPPORTED_RESULT_SET_TYPES: forward only
            568: (INT32_BITMASK, 0),
            569: (INT32_BITMASK, 0b10),  # forward-only: read-only concurrency
            570: (INT32_BITMASK, 0),
            571: (INT32_BITMASK, 0),
            572: (BOOL, False),  # BATCH_UPDATES_SUPPORTED
            573: (BOOL, False),  # SAVEPOINTS_SUPPORTED
            574: (BOOL, False),  # NAMED_PARAMETERS_SUPPORTED
            575: (BOOL, False),  # LOCATORS_UPDATE_COPY
            576: (BOOL, False),  # STORED_FUNCTIONS_USING_CALL_SYNTAX_SUPPORTED
        }
    )
    return info


_ALL_IDS_SAFE_FOR_EVERY_CLIENT = [i for i in range(0, 10)] + [100, 101] + list(range(500, 577))


def sql_info_table(requested: Iterable[int], statement_timeout_seconds: int,
                   all_tables_selectable: bool = True) -> pa.Table:
    """The GetSqlInfo result for the requested ids (empty = every id all clients know); unknown ids are skipped.

    No id names a catalog, schema, table, column or user: the answers are the server's, the same for every
    caller, but ALL_TABLES_ARE_SELECTABLE (506), which is false for a caller whose grants limit what it reads.
    """
    info = _info(statement_timeout_seconds)
    info[506] = (BOOL, all_tables_selectable)
    ids = list(requested) or _ALL_IDS_SAFE_FOR_EVERY_CLIENT
    ids = [i for i in ids if i in info]
    return pa.Table.from_arrays([pa.array(ids, pa.uint32()), _union([info[i] for i in ids])], schema=SCHEMA)


def _union(values: list[tuple[int, object]]) -> pa.Array:
    """Build the dense union from explicit buffers (``UnionArray.from_dense`` cannot carry our field names)."""
    children: list[list] = [[] for _ in range(6)]
    type_ids, offsets = [], []
    for code, value in values:
        type_ids.append(code)
        offsets.append(len(children[code]))
        children[code].append(list(value.items()) if code == INT32_MAP else value)
    arrays = [pa.array(children[code], type=_VALUE_TYPE.field(code).type) for code in range(6)]
    return pa.Array.from_buffers(
        _VALUE_TYPE,
        len(values),
        [None, pa.array(type_ids, pa.int8()).buffers()[1], pa.array(offsets, pa.int32()).buffers()[1]],
        children=arrays,
    )
