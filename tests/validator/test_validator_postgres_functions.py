"""The PostgreSQL deny list names real functions: checked against this run's own PostgreSQL.

A misspelt name would leave the real function allowed. Names that live in extensions or older server versions
are listed explicitly below.
"""

from __future__ import annotations

import psycopg
import pytest

from nexus_flight.server.query.sql.rules import DENIED_FUNCTIONS

#: Functions of extensions (dblink, adminpack, pg_prewarm, pg_stat_statements) or of older servers.
NOT_IN_CORE_15 = {
    "dblink", "dblink_connect", "dblink_connect_u", "dblink_exec", "dblink_fetch", "dblink_get_result",
    "dblink_open", "dblink_send_query", "pg_file_rename", "pg_file_sync", "pg_file_unlink", "pg_file_write",
    "pg_logdir_ls", "pg_prewarm", "pg_stat_statements_reset", "pg_start_backup", "pg_stop_backup",
    "pg_switch_xlog",
}


@pytest.fixture(scope="module")
def pg_functions(postgres_server) -> set[str]:
    with psycopg.connect(postgres_server.dsn(), connect_timeout=5) as conn:
        version = conn.info.server_version
        names = {row[0] for row in conn.execute("SELECT DISTINCT proname FROM pg_proc")}
    if version < 150000:
        pytest.skip("the list of non-core names is written for PostgreSQL 15 and later")
    return names


def test_every_denied_postgres_function_exists(pg_functions):
    denied = set(DENIED_FUNCTIONS["postgres"]) - NOT_IN_CORE_15
    assert denied - pg_functions == set()


def test_side_effecting_core_functions_are_denied(pg_functions):
    must_deny = {"pg_sleep", "pg_read_file", "pg_ls_dir", "lo_import", "lo_export", "set_config", "nextval",
                 "setval", "pg_terminate_backend", "pg_cancel_backend", "pg_advisory_lock", "pg_reload_conf",
                 "pg_rotate_logfile", "txid_current", "query_to_xml"}
    assert must_deny <= pg_functions
    assert must_deny <= set(DENIED_FUNCTIONS["postgres"])
