"""Build the allow-lists of ``server/query/sql/allowlists/`` from the engines themselves; review decisions live here.

A function goes on an engine's list when the engine marks it free of side effects (PostgreSQL: immutable or
stable; DuckDB: CONSISTENT or CONSISTENT_WITHIN_QUERY; SQLite: a built-in) or when it is reviewed below as a
harmless volatile one, and it is on no deny list (``server/query/sql/rules.py``). A name with one volatile
overload that is not reviewed stays off (PostgreSQL resolves overloads by argument types).

Regenerate after an engine upgrade (tests/validator/test_allowlists.py fails until the files match)::

    python -m tests.validator.allowlists --postgres "host=127.0.0.1 port=5432 dbname=test user=postgres"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb

from nexus_flight.server.query.sql.rules import PATH_FUNCTIONS, denied_function_rule

ALLOW_LIST_DIR = Path(__file__).resolve().parents[2] / "server" / "query" / "sql" / "allowlists"

#: PostgreSQL functions marked volatile that read nothing outside the query and change nothing.
PG_REVIEWED_VOLATILE = frozenset({
    "random", "clock_timestamp", "timeofday", "gen_random_uuid", "currval", "lastval", "current_query",
    "pg_relation_size", "pg_table_size", "pg_total_relation_size", "pg_indexes_size", "pg_database_size",
    "pg_tablespace_size", "pg_is_in_recovery", "pg_jit_available", "pg_blocking_pids",
    "pg_safe_snapshot_blocking_pids", "pg_partition_tree", "pg_partition_ancestors", "pg_collation_actual_version",
    "pg_database_collation_actual_version", "pg_xact_status", "txid_status", "pg_xact_commit_timestamp",
    "pg_xact_commit_timestamp_origin", "pg_last_committed_xact", "pg_stat_have_stats",
    "pg_notification_queue_usage", "pg_current_wal_lsn", "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn",
    "pg_last_wal_receive_lsn", "pg_last_wal_replay_lsn", "pg_last_xact_replay_timestamp",
    "pg_is_wal_replay_paused", "pg_get_wal_replay_pause_state",
})

#: Pure functions of PostgreSQL 16 and 17 that the PostgreSQL 15 of the tests does not have yet.
PG_NEWER = frozenset({
    "any_value", "random_normal", "array_sample", "array_shuffle", "pg_input_is_valid", "pg_input_error_info",
    "date_add", "date_subtract", "erf", "erfc", "system_user", "to_bin", "to_oct", "uuid_extract_timestamp",
    "uuid_extract_version", "crc32", "crc32c", "reverse", "unistr", "json_scalar", "json_serialize",
})

#: Return types of functions that only the server calls (triggers, handlers, type internals).
_PG_INTERNAL_TYPES = (
    "trigger", "event_trigger", "language_handler", "fdw_handler", "index_am_handler", "table_am_handler",
    "tsm_handler", "internal",
)

#: DuckDB functions marked volatile (or with side effects) that change nothing outside the query.
DUCKDB_REVIEWED_VOLATILE = frozenset({
    "random", "gen_random_uuid", "uuid", "uuidv4", "uuidv7", "currval", "error", "current_query",
    "current_query_id", "current_connection_id", "current_transaction_id", "stats",
})

#: DuckDB table functions that list the catalog, generate rows or compute: they read nothing outside the
#: database. Paths on the gateway's machine (duckdb_databases, duckdb_extensions) are denied instead.
DUCKDB_REVIEWED_TABLE_FUNCTIONS = frozenset({
    "duckdb_approx_database_count", "duckdb_columns", "duckdb_connection_count", "duckdb_constraints",
    "duckdb_coordinate_systems", "duckdb_dependencies", "duckdb_functions", "duckdb_indexes", "duckdb_keywords",
    "duckdb_memory", "duckdb_optimizers", "duckdb_prepared_statements", "duckdb_profiling_settings",
    "duckdb_schemas", "duckdb_secret_types", "duckdb_sequences", "duckdb_table_sample", "duckdb_tables",
    "duckdb_types", "duckdb_variables", "duckdb_views", "generate_series", "histogram", "histogram_values",
    "icu_calendar_names", "json_each", "json_tree", "pg_timezone_names", "pragma_collations",
    "pragma_database_size", "pragma_metadata_info", "pragma_platform", "pragma_show", "pragma_storage_info",
    "pragma_table_info", "pragma_user_agent", "pragma_version", "range", "repeat", "repeat_row", "seq_scan",
    "summary", "test_all_types", "test_vector_types", "unnest",
})

#: SQLite PRAGMAs offered as table-valued functions (``pragma_x``) that only read the schema or the file's
#: own statistics; the others (database_list, temp_store_directory) show paths.
SQLITE_REVIEWED_PRAGMAS = frozenset({
    "pragma_table_info", "pragma_table_xinfo", "pragma_table_list", "pragma_index_info", "pragma_index_list",
    "pragma_index_xinfo", "pragma_foreign_key_list", "pragma_foreign_key_check", "pragma_collation_list",
    "pragma_function_list", "pragma_module_list", "pragma_pragma_list", "pragma_compile_options",
    "pragma_encoding", "pragma_page_count", "pragma_page_size", "pragma_freelist_count", "pragma_schema_version",
    "pragma_user_version", "pragma_application_id", "pragma_data_version", "pragma_integrity_check",
    "pragma_quick_check", "json_each", "json_tree",
})


def _allowed(dialect: str, names) -> list[str]:
    paths = PATH_FUNCTIONS.get(dialect, frozenset())
    return sorted({n.lower() for n in names if not denied_function_rule(dialect, n.lower()) and n not in paths})


def duckdb_functions() -> list[str]:
    """DuckDB's pure functions and reviewed table functions, from the installed engine."""
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT DISTINCT function_name, function_type, stability, internal FROM duckdb_functions()"
        ).fetchall()
    names = set()
    for name, kind, stability, internal in rows:
        if kind in ("scalar", "aggregate"):
            if stability in ("CONSISTENT", "CONSISTENT_WITHIN_QUERY") or name in DUCKDB_REVIEWED_VOLATILE:
                names.add(name)
        elif kind in ("macro", "table_macro") and internal:
            names.add(name)
        elif kind == "table" and name in DUCKDB_REVIEWED_TABLE_FUNCTIONS:
            names.add(name)
    volatile = {
        name for name, kind, stability, _ in rows
        if kind in ("scalar", "aggregate") and stability == "VOLATILE" and name not in DUCKDB_REVIEWED_VOLATILE
    }
    return _allowed("duckdb", names - volatile)


def postgres_functions(dsn: str) -> list[str]:
    """PostgreSQL's immutable and stable functions plus the reviewed ones, from a running server."""
    import psycopg

    with psycopg.connect(dsn, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT p.proname, n.nspname, p.provolatile, p.prokind, p.prorettype::regtype::text "
            "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    volatile, names = set(), set()
    for name, schema, volatility, kind, returns in rows:
        qualified = name if schema == "pg_catalog" else f"{schema}.{name}"
        if kind == "p" or returns in _PG_INTERNAL_TYPES:
            continue
        if volatility == "v" and name not in PG_REVIEWED_VOLATILE:
            volatile.add(qualified)
        else:
            names.add(qualified)
    return _allowed("postgres", (names - volatile) | PG_NEWER)


def sqlite_functions() -> list[str]:
    """SQLite's built-in functions as the ADBC driver's SQLite has them, plus the reviewed PRAGMA functions."""
    import adbc_driver_sqlite.dbapi as sqlite_dbapi

    with sqlite_dbapi.connect(":memory:", autocommit=True) as con, con.cursor() as cur:
        cur.execute("SELECT DISTINCT name FROM pragma_function_list WHERE builtin = 1")
        names = {row[0] for row in cur.fetchall()}
    return _allowed("sqlite", (names - {"->", "->>"}) | SQLITE_REVIEWED_PRAGMAS)


HEADERS = {
    "duckdb": "DuckDB's pure functions (tests/validator/allowlists.py builds this from duckdb_functions())",
    "postgres": "PostgreSQL's immutable and stable functions (tests/validator/allowlists.py builds this from pg_proc)",
    "sqlite": "SQLite's built-in functions (tests/validator/allowlists.py builds this from pragma_function_list)",
}


def render(dialect: str, names: list[str]) -> str:
    """The file's text: a header line and one name per line."""
    return f"# {HEADERS[dialect]}\n" + "".join(f"{n}\n" for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="libpq DSN of a PostgreSQL superuser session (skip PostgreSQL if absent)")
    args = parser.parse_args()
    lists = {"duckdb": duckdb_functions(), "sqlite": sqlite_functions()}
    if args.postgres:
        lists["postgres"] = postgres_functions(args.postgres)
    for dialect, names in lists.items():
        (ALLOW_LIST_DIR / f"{dialect}.txt").write_text(render(dialect, names), encoding="utf-8")
        print(f"{dialect}: {len(names)} functions")


if __name__ == "__main__":
    main()
