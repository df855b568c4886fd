"""The read-only validator's data: rule ids, statement keywords and per-dialect deny lists, in one place.

``server/query/sql/readonly.py`` holds the logic; this module holds only tables, so that adding a dangerous function or
a dialect is a one-line change reviewed here. Names are lower case; dialect names are sqlglot's.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from nexus_flight.core.errors import (
    GatewayError,
    InvalidQueryError,
    LimitExceededError,
    QueryRejectedError,
    ReadOnlyViolationError,
)
from nexus_flight.core.source import dialect_family


@dataclass(frozen=True)
class Rule:
    """One validator rule: its id, what it guards, the error class it raises and the reason a client reads."""

    id: str
    title: str
    error: type[GatewayError]
    reason: str


#: Every rule the validator reports. The id and the error class of a condition never change.
RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule(
            "QV-001",
            "parse / exactly one statement",
            InvalidQueryError,
            "send exactly one SQL statement the gateway can parse",
        ),
        Rule("QV-002", "write statement", ReadOnlyViolationError, "this gateway is read-only"),
        Rule(
            "QV-003",
            "schema change or maintenance (DDL)",
            ReadOnlyViolationError,
            "this gateway is read-only and cannot change schemas, privileges or storage",
        ),
        Rule(
            "QV-004",
            "side effects or dynamic SQL",
            ReadOnlyViolationError,
            "it has side effects outside the query (sequences, sleeps, locks, signals, dynamic SQL)",
        ),
        Rule(
            "QV-005",
            "file or network access outside the source",
            ReadOnlyViolationError,
            "queries may read only the source's own data",
        ),
        Rule(
            "QV-006",
            "session or configuration change",
            ReadOnlyViolationError,
            "the session and the engine configuration are managed by the gateway",
        ),
        Rule(
            "QV-007",
            "transaction control or lock",
            ReadOnlyViolationError,
            "the gateway manages transactions; queries may not take locks",
        ),
        Rule(
            "QV-008",
            "nesting depth or number of joins",
            LimitExceededError,
            "simplify the query or ask the administrator to raise the source's limit",
        ),
        Rule(
            "QV-009",
            "query length",
            LimitExceededError,
            "shorten the query or ask the administrator to raise the source's limit",
        ),
        Rule(
            "QV-010",
            "character set / encoding",
            QueryRejectedError,
            "send valid UTF-8 without NUL, control, invisible or non-ASCII whitespace characters outside "
            "what SQL needs; write such characters in literals with escapes, e.g. chr(160)",
        ),
        Rule(
            "QV-011",
            "function not on the source's allow-list",
            ReadOnlyViolationError,
            "a source runs only functions known to be free of side effects; the administrator can allow "
            "others with the source's allowed_functions option",
        ),
    )
}

#: The leading keyword of a statement that is never a query, and the rule that refuses it. Checked on the
#: first token, before and whatever sqlglot parses (several of these parse only as an opaque Command, or as a
#: column with an alias, e.g. ``CHECKPOINT`` or ``LISTEN x``).
STATEMENT_KEYWORDS: dict[str, str] = {
    # writes
    **dict.fromkeys(("insert", "update", "delete", "merge", "upsert", "replace"), "QV-002"),
    # DDL, privileges, maintenance
    **dict.fromkeys(
        (
            "create",
            "alter",
            "drop",
            "truncate",
            "rename",
            "comment",
            "grant",
            "revoke",
            "security",
            "reindex",
            "cluster",
            "refresh",
            "vacuum",
            "analyze",
            "analyse",
            "checkpoint",
            "optimize",
            "system",
            "flush",
            "purge",
            "repair",
            "undrop",
            "reassign",
            "undo",
        ),
        "QV-003",
    ),
    # procedural code, dynamic SQL, signals
    **dict.fromkeys(
        (
            "call",
            "execute",
            "exec",
            "prepare",
            "do",
            "declare",
            "fetch",
            "move",
            "close",
            "listen",
            "notify",
            "unlisten",
            "handler",
            "kill",
            "shutdown",
            "restart",
            "signal",
            "resignal",
        ),
        "QV-004",
    ),
    # files and other databases
    **dict.fromkeys(
        ("copy", "export", "import", "unload", "put", "get", "remove", "backup", "restore"), "QV-005"
    ),
    # session and engine configuration
    **dict.fromkeys(
        (
            "attach",
            "detach",
            "use",
            "install",
            "uninstall",
            "load",
            "pragma",
            "set",
            "reset",
            "discard",
            "deallocate",
        ),
        "QV-006",
    ),
    # transactions and locks
    **dict.fromkeys(
        (
            "begin",
            "start",
            "commit",
            "end",
            "rollback",
            "abort",
            "savepoint",
            "release",
            "lock",
            "unlock",
            "xa",
        ),
        "QV-007",
    ),
}

#: Keyword pairs override the table above: ``LOAD DATA`` (MySQL) writes rows where ``LOAD ext`` (DuckDB)
#: loads code; ``FORCE CHECKPOINT`` and ``FORCE INSTALL`` are DuckDB's.
STATEMENT_KEYWORD_PAIRS: dict[tuple[str, str], str] = {
    ("force", "checkpoint"): "QV-003",
    ("force", "install"): "QV-006",
    ("load", "data"): "QV-002",
    ("load", "xml"): "QV-002",
}

#: Token pairs anywhere in a statement (outside string literals) that sqlglot cannot parse but that say
#: clearly what the statement does.
TOKEN_SEQUENCES: dict[tuple[str, str], str] = {
    ("into", "outfile"): "QV-005",
    ("into", "dumpfile"): "QV-005",
    ("into", "function"): "QV-005",
}

#: Dialects whose engine executes code written in comments (MySQL ``/*! ... */``, optimizer hints ``/*+ */``
#: that can set variables): such comments are refused, since the validator cannot see what they say.
EXECUTABLE_COMMENT_DIALECTS = frozenset({"mysql"})

#: Metadata statements allowed per dialect: only where the engine guarantees them read-only. EXPLAIN is
#: allowed only without ANALYZE (which executes its statement) and only of a statement the validator accepts.
#:
#: - duckdb: DESCRIBE/SHOW/SUMMARIZE read the catalog or run their (validated) query; EXPLAIN plans only.
#: - postgres: SHOW reads a setting; EXPLAIN without ANALYZE plans only. (No DESCRIBE in PostgreSQL.)
#: - mysql: DESCRIBE/DESC/SHOW/EXPLAIN read metadata.
#: - clickhouse: DESCRIBE/SHOW/EXPLAIN read metadata.
#: - snowflake: DESCRIBE/SHOW read metadata (EXPLAIN left out: untested here).
#: Other dialects allow none.
METADATA_STATEMENTS: dict[str, frozenset[str]] = {
    "duckdb": frozenset({"describe", "desc", "show", "summarize", "explain"}),
    "postgres": frozenset({"show", "explain"}),
    "mysql": frozenset({"describe", "desc", "show", "explain"}),
    "clickhouse": frozenset({"describe", "desc", "show", "explain"}),
    "snowflake": frozenset({"describe", "desc", "show"}),
}

_PG_DENIED = {
    **dict.fromkeys(
        (
            "nextval",
            "setval",
            "pg_sleep",
            "pg_sleep_for",
            "pg_sleep_until",
            "pg_terminate_backend",
            "pg_cancel_backend",
            "pg_reload_conf",
            "pg_rotate_logfile",
            "pg_switch_wal",
            "pg_switch_xlog",
            "pg_create_restore_point",
            "pg_start_backup",
            "pg_stop_backup",
            "pg_backup_start",
            "pg_backup_stop",
            "pg_promote",
            "pg_wal_replay_pause",
            "pg_wal_replay_resume",
            "pg_log_backend_memory_contexts",
            "pg_create_logical_replication_slot",
            "pg_create_physical_replication_slot",
            "pg_drop_replication_slot",
            "pg_copy_logical_replication_slot",
            "pg_copy_physical_replication_slot",
            "pg_logical_slot_get_changes",
            "pg_logical_slot_get_binary_changes",
            "pg_replication_slot_advance",
            "pg_logical_emit_message",
            "pg_notify",
            "txid_current",
            "pg_current_xact_id",
            "pg_export_snapshot",
            "query_to_xml",
            "query_to_xmlschema",
            "query_to_xml_and_xmlschema",
            "cursor_to_xml",
            "cursor_to_xmlschema",
            "lo_create",
            "lo_creat",
            "lo_unlink",
            "lo_put",
            "lo_from_bytea",
            "lo_open",
            "lowrite",
            "lo_truncate",
            "lo_truncate64",
            "lo_close",
            "pg_stat_reset",
            "pg_stat_reset_shared",
            "pg_stat_reset_single_table_counters",
            "pg_stat_reset_single_function_counters",
            "pg_stat_reset_slru",
            "pg_stat_reset_replication_slot",
            "pg_stat_statements_reset",
            "pg_prewarm",
            "pg_file_write",
            "pg_file_rename",
            "pg_file_unlink",
            "pg_file_sync",
            "pg_replication_origin_create",
            "pg_replication_origin_drop",
            "pg_replication_origin_session_setup",
            "pg_replication_origin_advance",
            "pg_sequence_last_value",
        ),
        "QV-004",
    ),
    **dict.fromkeys(
        (
            "pg_read_file",
            "pg_read_binary_file",
            "pg_ls_dir",
            "pg_stat_file",
            "pg_ls_logdir",
            "pg_ls_waldir",
            "pg_ls_tmpdir",
            "pg_ls_archive_statusdir",
            "pg_ls_logicalsnapdir",
            "pg_ls_logicalmapdir",
            "pg_ls_replslotdir",
            "pg_logdir_ls",
            "lo_import",
            "lo_export",
            "lo_get",
            "loread",
            "dblink",
            "dblink_exec",
            "dblink_connect",
            "dblink_connect_u",
            "dblink_open",
            "dblink_fetch",
            "dblink_send_query",
            "dblink_get_result",
            "pg_current_logfile",
        ),
        "QV-005",
    ),
    "set_config": "QV-006",
    "setseed": "QV-006",
    # other sessions' queries; paths on the database server
    **dict.fromkeys(
        (
            "pg_stat_get_activity",
            "pg_stat_get_backend_activity",
            "pg_tablespace_location",
            "pg_relation_filepath",
        ),
        "QV-005",
    ),
    # maintenance that writes: index summaries, collations, catalog state
    **dict.fromkeys(
        (
            "brin_summarize_range",
            "brin_summarize_new_values",
            "brin_desummarize_range",
            "gin_clean_pending_list",
            "pg_import_system_collations",
            "pg_stop_making_pinned_objects",
            "pg_extension_config_dump",
        ),
        "QV-003",
    ),
    # run a query given as text
    "ts_stat": "QV-004",
    "ts_rewrite": "QV-004",
    "pg_nextoid": "QV-004",
    "pg_rotate_logfile_old": "QV-004",
    # the server's configuration files
    **dict.fromkeys(("pg_hba_file_rules", "pg_ident_file_mappings", "pg_show_all_file_settings"), "QV-005"),
    **dict.fromkeys(
        (
            "pg_advisory_lock",
            "pg_advisory_lock_shared",
            "pg_advisory_xact_lock",
            "pg_advisory_xact_lock_shared",
            "pg_try_advisory_lock",
            "pg_try_advisory_lock_shared",
            "pg_try_advisory_xact_lock",
            "pg_try_advisory_xact_lock_shared",
            "pg_advisory_unlock",
            "pg_advisory_unlock_shared",
            "pg_advisory_unlock_all",
        ),
        "QV-007",
    ),
}

_DUCKDB_DENIED = {
    "setseed": "QV-006",
    # Writes to DuckDB's log; sleeps (a PostgreSQL-compatibility macro over sleep_ms).
    "write_log": "QV-004",
    "pg_sleep": "QV-004",
    # The attached databases with their file paths on the gateway's machine.
    "duckdb_databases": "QV-005",
    # These run SQL or plans given as data: the validator cannot see what they do.
    "json_execute_serialized_sql": "QV-004",
    "from_substrait": "QV-004",
    "from_substrait_json": "QV-004",
    # These read Python objects or raw memory of the server process by pointer.
    "arrow_scan": "QV-004",
    "arrow_scan_dumb": "QV-004",
    "pandas_scan": "QV-004",
    "python_map_function": "QV-004",
    # Profiling and logging are engine configuration.
    "enable_profiling": "QV-006",
    "disable_profiling": "QV-006",
    # Other sessions' queries, the server's files and settings (paths of the gateway's machine).
    "duckdb_logs": "QV-005",
    "duckdb_logs_parsed": "QV-005",
    "duckdb_log_contexts": "QV-005",
    "duckdb_settings": "QV-005",
    "duckdb_temporary_files": "QV-005",
    "duckdb_external_file_cache": "QV-005",
    **dict.fromkeys(
        (
            "nextval",
            "query",
            "query_table",
            "checkpoint",
            "force_checkpoint",
            "sleep_ms",
            "enable_logging",
            "disable_logging",
            "truncate_duckdb_logs",
        ),
        "QV-004",
    ),
    **dict.fromkeys(
        (
            "getenv",
            "duckdb_secrets",
            "which_secret",
            "postgres_scan",
            "postgres_scan_pushdown",
            "postgres_query",
            "postgres_execute",
            "postgres_attach",
            "mysql_query",
            "mysql_execute",
            "mysql_scan",
            "sqlite_attach",
            "sqlite_query",
            "odbc_scan",
            "odbc_query",
            "httpfs_get",
            "http_get",
            "http_post",
            "read_text_url",
            "duckdb_extensions",
            "install_extension",
            "load_extension",
        ),
        "QV-005",
    ),
}

_MYSQL_DENIED = {
    **dict.fromkeys(
        (
            "sleep",
            "benchmark",
            "master_pos_wait",
            "source_pos_wait",
            "wait_for_executed_gtid_set",
            "wait_until_sql_thread_after_gtids",
            "sys_exec",
            "sys_eval",
            # MariaDB
            "master_gtid_wait",
            "nextval",
            "setval",
        ),
        "QV-004",
    ),
    "load_file": "QV-005",
    **dict.fromkeys(("get_lock", "release_lock", "release_all_locks"), "QV-007"),
}

_CLICKHOUSE_DENIED = {
    **dict.fromkeys(("sleep", "sleepeachrow", "executable", "executablepool"), "QV-004"),
    **dict.fromkeys(
        (
            "file",
            "url",
            "urlcluster",
            "s3",
            "s3cluster",
            "gcs",
            "oss",
            "cosn",
            "azureblobstorage",
            "azureblobstoragecluster",
            "hdfs",
            "hdfscluster",
            "remote",
            "remotesecure",
            "cluster",
            "clusterallreplicas",
            "mysql",
            "postgresql",
            "mongodb",
            "redis",
            "sqlite",
            "jdbc",
            "odbc",
            "input",
            "deltalake",
            "iceberg",
            "icebergs3",
            "hudi",
            "fuzzjson",
            "fuzzquery",
            "filesystemavailable",
            "filesystemcapacity",
            "filesystemunreserved",
        ),
        "QV-005",
    ),
}

# ClickHouse dictionaries load from sources of their own (files, URLs, other databases, executables) and
# fileCluster reads the server's files: both reach outside the source's tables.
_CLICKHOUSE_OUTSIDE_READS = {"dictionary": "QV-005", "filecluster": "QV-005"}
_CLICKHOUSE_DICTIONARY_PREFIX = ("dict", "QV-005")  # dictGet*, dictHas, dictIsIn, dictGetHierarchy ...

_SNOWFLAKE_DENIED = {
    **dict.fromkeys(
        (
            "system$wait",
            "system$cancel_query",
            "system$abort_session",
            "system$abort_transaction",
            "seq1",
            "seq2",
            "seq4",
            "seq8",
        ),
        "QV-004",
    ),
}

_SQLITE_DENIED = {
    "load_extension": "QV-006",
    # writes to SQLite's error log
    "sqlite_log": "QV-004",
    # the database files' paths
    **dict.fromkeys(("pragma_database_list", "pragma_temp_store_directory", "pragma_data_store_directory"), "QV-005"),
    **dict.fromkeys(("readfile", "writefile", "edit"), "QV-005"),
    # the two-argument form registers a tokenizer by pointer
    "fts3_tokenizer": "QV-004",
}

_BIGQUERY_DENIED = {
    **dict.fromkeys(("external_query",), "QV-005"),
}

#: Functions (scalar or table) refused per dialect, each with its rule. Matching ignores case and schema
#: qualifiers (``pg_catalog.pg_sleep`` is ``pg_sleep``).
DENIED_FUNCTIONS: dict[str, dict[str, str]] = {
    "postgres": _PG_DENIED,
    "duckdb": _DUCKDB_DENIED,
    "mysql": _MYSQL_DENIED,
    "clickhouse": {**_CLICKHOUSE_DENIED, **_CLICKHOUSE_OUTSIDE_READS},
    "snowflake": _SNOWFLAKE_DENIED,
    "bigquery": _BIGQUERY_DENIED,
    "sqlite": _SQLITE_DENIED,
}

#: Name prefixes refused per dialect (families of functions: every dblink_*, every pg_advisory_*, ...).
DENIED_FUNCTION_PREFIXES: dict[str, tuple[tuple[str, str], ...]] = {
    "postgres": (
        ("binary_upgrade_", "QV-003"),
        ("plpgsql_", "QV-004"),
        ("dblink", "QV-005"),
        ("pg_advisory", "QV-007"),
        ("pg_try_advisory", "QV-007"),
        ("pg_sleep", "QV-004"),
        ("pg_ls_", "QV-005"),
        ("pg_read_", "QV-005"),
        ("pg_file_", "QV-004"),
        ("lo_", "QV-005"),
        ("pg_stat_reset", "QV-004"),
        ("pg_replication_", "QV-004"),
    ),
    "duckdb": (("postgres_", "QV-005"), ("mysql_", "QV-005"), ("sqlite_", "QV-005"), ("odbc_", "QV-005")),
    "mysql": (),
    "clickhouse": (
        ("s3", "QV-005"),
        ("azureblob", "QV-005"),
        ("hdfs", "QV-005"),
        ("remote", "QV-005"),
        ("executable", "QV-004"),
        _CLICKHOUSE_DICTIONARY_PREFIX,
    ),
    "snowflake": (("system$", "QV-004"),),
    "bigquery": (),
    "sqlite": (),
}

#: DuckDB functions whose string arguments are file paths, globs or URLs: allowed only under the source's
#: ``allowed_paths``, and only with literal paths.
PATH_FUNCTIONS: dict[str, frozenset[str]] = {
    "duckdb": frozenset(
        {
            "read_csv",
            "read_csv_auto",
            "read_tsv",
            "read_tsv_auto",
            "sniff_csv",
            "read_parquet",
            "parquet_scan",
            "parquet_metadata",
            "parquet_schema",
            "parquet_file_metadata",
            "parquet_kv_metadata",
            "parquet_bloom_probe",
            "parquet_full_metadata",
            "read_json",
            "read_json_auto",
            "read_json_objects",
            "read_json_objects_auto",
            "read_ndjson",
            "read_ndjson_auto",
            "read_ndjson_objects",
            "read_text",
            "read_blob",
            "glob",
            "read_xlsx",
            "st_read",
            "st_read_meta",
            "iceberg_scan",
            "iceberg_metadata",
            "iceberg_snapshots",
            "delta_scan",
            "read_avro",
            "sqlite_scan",
            "read_duckdb",
            "read_csv_metadata",
            "read_gdal",
        }
    ),
}

#: Dialects where a quoted table name that looks like a path or URL is read as a file (replacement scans).
PATH_TABLE_DIALECTS = frozenset({"duckdb"})

#: Characters refused anywhere in a statement (QV-010): NUL and other control characters (tab, newline, carriage
#: return are fine), C1 controls, non-ASCII spaces, zero-width and bidirectional formatting characters, BOM, lone
#: surrogates (text that was not valid UTF-8).
REFUSED_CHARACTERS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00a0\u00ad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f"
    "\u3000\ufeff\ufff9-\ufffb\ud800-\udfff]"
)

def within_characters(text: str, max_length: int) -> bool:
    """Whether ``text`` passes QV-009 and QV-010: no refused character, at most ``max_length`` UTF-8 bytes."""
    if text.isascii():
        return len(text) <= max_length and not REFUSED_CHARACTERS.search(text)
    return not REFUSED_CHARACTERS.search(text) and len(text.encode("utf-8")) <= max_length


#: Characters that mark a quoted table name as a path or URL in those dialects.
PATH_TABLE_MARKERS = ("/", "\\", ".", ":", "~", "*", "?")


def rules_dialect(dialect: str) -> str:
    """Return the dialect whose rules apply to ``dialect``: its family's (``DIALECT_FAMILY``), or its own."""
    return dialect_family(dialect)


@functools.lru_cache(maxsize=8192)
def denied_function_rule(dialect: str, name: str) -> str | None:
    """Return the rule refusing a call to ``name`` in ``dialect``, or None when the call is allowed.

    For a dialect without its own list every list applies (fail closed).
    """
    family = rules_dialect(dialect)
    lists = [DENIED_FUNCTIONS[family]] if family in DENIED_FUNCTIONS else list(DENIED_FUNCTIONS.values())
    for denied in lists:
        rule = denied.get(name)
        if rule:
            return rule
    prefixes = (
        DENIED_FUNCTION_PREFIXES.get(family, ())
        if family in DENIED_FUNCTIONS
        else tuple(p for group in DENIED_FUNCTION_PREFIXES.values() for p in group)
    )
    for prefix, rule in prefixes:
        if name.startswith(prefix):
            return rule
    return None


#: Tables and views refused per dialect (matched by name, unqualified or in the system schema): the server's
#: configuration files, password hashes, other sessions' queries, paths of the server's files.
DENIED_RELATIONS: dict[str, dict[str, str]] = {
    "postgres": dict.fromkeys(
        (
            "pg_file_settings",
            "pg_hba_file_rules",
            "pg_ident_file_mappings",
            "pg_shadow",
            "pg_authid",
            "pg_user_mapping",
            "pg_user_mappings",
            "pg_stat_activity",
            "pg_largeobject",
            "pg_largeobject_metadata",
        ),
        "QV-005",
    ),
    "sqlite": dict.fromkeys(
        ("pragma_database_list", "pragma_temp_store_directory", "pragma_data_store_directory"), "QV-005"
    ),
    # DuckDB's own views of its settings (temp_directory ...), attached files and other sessions' queries
    "duckdb": dict.fromkeys(("pg_settings", "pragma_database_list", "duckdb_databases", "duckdb_logs"), "QV-005"),
}

#: Schemas in which ``DENIED_RELATIONS`` are matched (besides an unqualified name).
SYSTEM_SCHEMAS: dict[str, frozenset[str]] = {
    "postgres": frozenset({"pg_catalog"}),
    "sqlite": frozenset({"main", "temp"}),
    "duckdb": frozenset({"main", "pg_catalog"}),
}

#: Settings whose value is a path on the machine that runs the engine: ``current_setting`` may not read them
#: (``duckdb_settings()`` is refused for the same reason). PostgreSQL shows its own only to privileged roles.
PATH_SETTINGS: dict[str, frozenset[str]] = {
    "duckdb": frozenset(
        {
            "temp_directory",
            "home_directory",
            "extension_directory",
            "extension_directories",
            "secret_directory",
            "log_query_path",
            "profile_output",
            "profiling_output",
            "http_logging_output",
            "file_search_path",
            "allowed_directories",
            "allowed_paths",
            "custom_extension_repository",
            "autoinstall_extension_repository",
        }
    ),
    "postgres": frozenset(
        {
            "data_directory",
            "config_file",
            "hba_file",
            "ident_file",
            "external_pid_file",
            "log_directory",
            "ssl_cert_file",
            "ssl_key_file",
            "ssl_ca_file",
            "ssl_crl_file",
            "ssl_crl_dir",
            "ssl_dh_params_file",
            "dynamic_library_path",
            "unix_socket_directories",
            "stats_temp_directory",
            "archive_command",
            "restore_command",
        }
    ),
}

#: Functions that read a setting by name; the name must be a literal outside ``PATH_SETTINGS``.
SETTING_FUNCTIONS = frozenset({"current_setting"})

_ALLOW_LIST_DIR = Path(__file__).with_name("allowlists")


@functools.cache
def allowed_functions(dialect: str) -> frozenset[str]:
    """Return the functions a source of ``dialect`` may call besides its declared extras (lower case).

    For engines the gateway can ask (DuckDB, PostgreSQL, SQLite) the list is every function the engine marks
    free of side effects (immutable or stable, CONSISTENT), plus reviewed harmless volatile ones, minus the
    deny lists; ``tests/validator/allowlists.py`` regenerates it from the engine and a test keeps it current.
    For other dialects it holds only the reviewed functions sqlglot does not model: there, a call sqlglot
    cannot map to a function it knows is refused unless listed here or declared by the source.
    Names outside the system schema are written ``schema.name``.
    """
    path = _ALLOW_LIST_DIR / f"{rules_dialect(dialect)}.txt"
    if not path.is_file():
        return frozenset()
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


#: Dialects whose allow-list is the engine's own catalog: every function they call must be on it.
ENGINE_ALLOW_LISTS = frozenset({"duckdb", "postgres", "sqlite"})
