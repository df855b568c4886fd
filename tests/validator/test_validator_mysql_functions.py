"""The MySQL deny list names real functions: checked against this run's own MariaDB.

A known function called with wrong arguments fails with its own error (1582 wrong count, 1064 for sequence
functions that want a name); an unknown name fails with 1305.
Names of MySQL only (or of user-defined functions) are listed explicitly.
"""

from __future__ import annotations

import pymysql
import pytest

from nexus_flight.server.query.sql.rules import DENIED_FUNCTIONS

#: MySQL 8 functions MariaDB does not have, and the names of well-known malicious UDFs.
NOT_IN_MARIADB = {"source_pos_wait", "wait_for_executed_gtid_set", "wait_until_sql_thread_after_gtids",
                  "sys_exec", "sys_eval"}


@pytest.fixture(scope="module")
def cursor(mariadb_server):
    conn = mariadb_server.connect("test")
    yield conn.cursor()
    conn.close()


def native(cursor, name: str) -> bool:
    try:
        cursor.execute(f"SELECT {name}(1, 2, 3, 4, 5, 6, 7, 8, 9)")
    except pymysql.err.MySQLError as error:
        return error.args[0] != 1305
    return True


def test_probe_tells_native_functions_from_unknown_names(cursor):
    assert native(cursor, "sleep")
    assert not native(cursor, "no_such_function_here")


@pytest.mark.parametrize("name", sorted(set(DENIED_FUNCTIONS["mysql"]) - NOT_IN_MARIADB))
def test_denied_mysql_function_exists(cursor, name):
    assert native(cursor, name)
