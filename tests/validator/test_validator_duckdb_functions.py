"""Every table function of the installed DuckDB is reviewed: a file reader, denied, or known to be harmless.

A DuckDB upgrade that adds a table function fails this test until someone decides which list it belongs in
(``server/query/sql/rules.py`` for readers and denials, ``DUCKDB_REVIEWED_TABLE_FUNCTIONS`` in
``tests/validator/allowlists.py`` for the rest, which then goes on DuckDB's allow-list).
"""

from __future__ import annotations

import duckdb
import pytest

from nexus_flight.server.query.sql.readonly import validate
from nexus_flight.server.query.sql.rules import DENIED_FUNCTIONS, PATH_FUNCTIONS
from tests.validator.allowlists import DUCKDB_REVIEWED_TABLE_FUNCTIONS


def table_functions() -> set[str]:
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() "
            "WHERE function_type IN ('table', 'table_macro')"
        ).fetchall()
    return {name for (name,) in rows}


def test_every_duckdb_table_function_is_reviewed():
    reviewed = DUCKDB_REVIEWED_TABLE_FUNCTIONS | PATH_FUNCTIONS["duckdb"] | set(DENIED_FUNCTIONS["duckdb"])
    assert table_functions() - reviewed == set()


@pytest.mark.parametrize("name", sorted(table_functions() - DUCKDB_REVIEWED_TABLE_FUNCTIONS))
@pytest.mark.parametrize("engine", [None, "duckdb"])
def test_unreviewed_table_functions_are_refused(name, engine):
    with pytest.raises(Exception) as caught:
        validate(f"SELECT * FROM {name}('/etc/passwd')", "duckdb", engine=engine)
    assert caught.value.details["rule"] in ("QV-003", "QV-004", "QV-005", "QV-006")
