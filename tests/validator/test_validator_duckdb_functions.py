"""Every table function of the installed DuckDB is reviewed: a file reader, denied, or known to be harmless.

A DuckDB upgrade that adds a table function fails this test until someone decides which list it belongs in
(``server/query/sql/rules.py`` for readers and denials, ``DUCKDB_REVIEWED_TABLE_FUNCTIONS`` in
``tests/validator/allowlists.py`` for the rest, which then goes on DuckDB's allow-list).
"""

from __future__ import annotations

import duckdb
import pytest

from nexus_flight.server.query.sql.duckdb_reading import check_duckdb_reading
from nexus_flight.server.query.sql.readonly import validate
from nexus_flight.server.query.sql.refusal import Refusal
from nexus_flight.server.query.sql.rules import DENIED_FUNCTIONS, PATH_FUNCTIONS, allowed_functions
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


def _functions_named_as_unreserved_keywords() -> list[str]:
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT DISTINCT f.function_name FROM duckdb_functions() f JOIN duckdb_keywords() k "
            "ON lower(f.function_name) = lower(k.keyword_name) WHERE k.keyword_category = 'unreserved'"
        ).fetchall()
    return sorted(name.lower() for (name,) in rows)


@pytest.mark.parametrize("name", [*_functions_named_as_unreserved_keywords(), "object"])
def test_a_call_named_as_an_unreserved_keyword_is_judged_as_a_call(name):
    """DuckDB lets functions take its unreserved keywords' names: its own reading judges each such call."""
    sql = f"SELECT {name}(1)"
    if name in allowed_functions("duckdb"):
        check_duckdb_reading(sql, None)
    else:
        with pytest.raises(Refusal) as refused:
            check_duckdb_reading(sql, None)
        assert refused.value.rule in ("QV-004", "QV-005", "QV-006", "QV-011") and f"{name}()" in str(refused.value)


@pytest.mark.parametrize(
    ("sql", "call"),
    [
        ("SELECT * EXCLUDE (n_comment) FROM nation", None),
        ("SELECT nation.* RENAME (n_name AS name) FROM nation", None),
        ("SELECT count(*) OVER (PARTITION BY n_regionkey) FROM nation", None),
        ("SELECT n_regionkey FROM nation GROUP BY GROUPING SETS ((n_regionkey), ())", None),
        ("SELECT n_regionkey FROM nation GROUP BY n_name, ROLLUP (n_regionkey)", None),
        ("SELECT n_regionkey FROM nation GROUP BY CUBE (n_regionkey)", None),
        ("WITH x AS MATERIALIZED (SELECT 1) SELECT * FROM x", None),
        # The same words where DuckDB reads a call (json_serialize_sql shows FUNCTION exclude, rollup).
        ("SELECT CASE WHEN true THEN 1 END * EXCLUDE (n_comment) FROM nation", "exclude"),
        ("SELECT n_name, rollup(n_regionkey) FROM nation", "rollup"),
        ("SELECT n_name FROM nation ORDER BY n_name, cube(n_regionkey)", "cube"),
    ],
)
def test_unreserved_keywords_are_grammar_only_where_duckdb_reads_grammar(sql, call):
    if call is None:
        check_duckdb_reading(sql, None)
    else:
        with pytest.raises(Refusal, match=rf"^{call}\(\) is not allowed"):
            check_duckdb_reading(sql, None)
