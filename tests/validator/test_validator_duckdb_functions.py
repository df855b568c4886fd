"""Every table function of the installed DuckDB is reviewed: a file reader, denied, or known to be harmless.

A DuckDB upgrade that adds a table function fails this test until someone decides which list it belongs in
(``server/readonly_rules.py`` for readers and denials, ``REVIEWED_HARMLESS`` below for the rest).
"""

from __future__ import annotations

import duckdb
import pytest

from server.readonly import validate
from server.readonly_rules import DENIED_FUNCTIONS, PATH_FUNCTIONS

#: Catalog listings, generators and pure computations: they read nothing outside the database, change
#: nothing.
REVIEWED_HARMLESS = {
    "duckdb_approx_database_count", "duckdb_columns", "duckdb_connection_count", "duckdb_constraints",
    "duckdb_coordinate_systems", "duckdb_databases", "duckdb_dependencies", "duckdb_extensions",
    "duckdb_functions", "duckdb_indexes", "duckdb_keywords", "duckdb_memory", "duckdb_optimizers",
    "duckdb_prepared_statements", "duckdb_profiling_settings", "duckdb_schemas", "duckdb_secret_types",
    "duckdb_sequences", "duckdb_table_sample", "duckdb_tables", "duckdb_types", "duckdb_variables",
    "duckdb_views", "generate_series", "histogram", "histogram_values", "icu_calendar_names", "json_each",
    "json_tree", "pg_timezone_names", "pragma_collations", "pragma_database_size", "pragma_metadata_info",
    "pragma_platform", "pragma_show", "pragma_storage_info", "pragma_table_info", "pragma_user_agent",
    "pragma_version", "range", "repeat", "repeat_row", "seq_scan", "summary", "test_all_types",
    "test_vector_types", "unnest",
}


def table_functions() -> set[str]:
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() "
            "WHERE function_type IN ('table', 'table_macro')"
        ).fetchall()
    return {name for (name,) in rows}


def test_every_duckdb_table_function_is_reviewed():
    reviewed = REVIEWED_HARMLESS | PATH_FUNCTIONS["duckdb"] | set(DENIED_FUNCTIONS["duckdb"])
    assert table_functions() - reviewed == set()


@pytest.mark.parametrize("name", sorted(table_functions() - REVIEWED_HARMLESS))
def test_unreviewed_table_functions_are_refused(name):
    with pytest.raises(Exception) as caught:
        validate(f"SELECT * FROM {name}('/etc/passwd')", "duckdb")
    assert caught.value.details["rule"] in ("QV-003", "QV-004", "QV-005", "QV-006")
