"""The committed allow-lists are what the engines say today (``tests/validator/allowlists.py`` rebuilds them).

An engine upgrade that adds, removes or reclassifies a function fails here until the lists are regenerated and
the difference reviewed. PostgreSQL's list is checked against this run's own PostgreSQL.
"""

from __future__ import annotations

import pytest

from nexus_flight.server.query.sql.rules import DENIED_FUNCTIONS, allowed_functions
from tests.validator import allowlists


def committed(dialect: str) -> list[str]:
    text = (allowlists.ALLOW_LIST_DIR / f"{dialect}.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize(("dialect", "build"), [("duckdb", allowlists.duckdb_functions),
                                                 ("sqlite", allowlists.sqlite_functions)])
def test_local_engines_lists_are_current(dialect, build):
    assert committed(dialect) == build()


def test_postgres_list_is_current(postgres_server):
    assert committed("postgres") == allowlists.postgres_functions(postgres_server.dsn())


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "sqlite", "clickhouse"])
def test_no_denied_function_is_allowed(dialect):
    assert allowed_functions(dialect) & set(DENIED_FUNCTIONS[dialect]) == set()


def test_the_functions_the_issue_names_are_not_allowed_on_postgres():
    for name in ("pg_read_file", "pg_read_binary_file", "pg_ls_dir", "dblink_exec", "lo_import", "lo_put",
                 "lo_unlink", "lo_export", "pg_sleep", "pg_advisory_lock", "pg_notify", "set_config",
                 "pg_stat_reset", "txid_current", "query_to_xml", "pg_cancel_backend", "pg_terminate_backend"):
        assert name not in allowed_functions("postgres"), name
