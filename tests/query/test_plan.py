"""One parsed plan: what routing learns of a statement once, read by backends, access and (later) federation."""

from __future__ import annotations

import pytest

from nexus_flight.core.plan import ColumnRef, TableRef, plan_sql
from nexus_flight.core.source import SourceProfile
from nexus_flight.server.query.sql.routing import route


def routed(sql: str, dialect: str = "duckdb"):
    return route(sql, sources={"main": SourceProfile(dialect=dialect)}, session_catalog=None, default_source="main")


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("SELECT * FROM a JOIN s.b ON a.x = b.x", [TableRef("a"), TableRef("b", "s")]),
        ("WITH a AS (SELECT * FROM t) SELECT * FROM a", [TableRef("t")]),
        # A CTE shadows a table only inside the query its WITH belongs to.
        ("SELECT * FROM (WITH a AS (SELECT 1 AS x) SELECT * FROM a) q, a", [TableRef("a")]),
        ("SELECT x FROM a UNION ALL SELECT x FROM b WHERE x IN (SELECT x FROM c)",
         [TableRef("a"), TableRef("b"), TableRef("c")]),
        ("SELECT * FROM range(3)", []),
        ('SELECT * FROM "orders@v3"', [TableRef("orders@v3")]),
    ],
)
def test_every_table_a_query_reads(sql, tables):
    found = routed(sql).tables
    assert len(found) == len(set(found)) and set(found) == set(tables)


def test_time_travel_names_keep_their_version():
    (table,) = routed('SELECT * FROM "orders@v3"').tables
    assert (table.base_name, table.version) == ("orders", "v3")


def test_columns_are_attributed_to_their_tables():
    plan = routed("SELECT a.x, y, * FROM a JOIN b ON a.k = b.k")
    a, b = TableRef("a"), TableRef("b")
    columns = set(plan.columns)
    assert {ColumnRef("x", a), ColumnRef("k", a), ColumnRef("k", b), ColumnRef("*", a), ColumnRef("*", b)} <= columns
    assert ColumnRef("y", None, (a, b)) in columns  # unqualified over two tables: one of them


def test_placeholders_in_the_order_values_bind():
    plan = routed("SELECT '?' AS q, n FROM t WHERE n > ? -- ?\nLIMIT ?")
    assert plan.parameter_count == 2
    assert [plan.sql[o] for o in plan.placeholders] == ["?", "?"]
    assert plan.with_placeholders(lambda n: f"${n}") == "SELECT '?' AS q, n FROM t WHERE n > $1 -- ?\nLIMIT $2"
    # The tree's own order puts LIMIT first; the plan's nodes follow the text.
    assert [p.parent.key for p in plan.placeholder_nodes] == ["gt", "limit"]


def test_the_statement_without_trailing_semicolons():
    plan = routed("SELECT 1 AS one ;; ")
    assert plan.statement == "SELECT 1 AS one"


def test_a_plan_made_without_the_validator_still_reads_the_text():
    plan = plan_sql("SELECT * FROM t WHERE a = ? AND b = ?", "duckdb", "main")
    assert (plan.parameter_count, plan.keyword, plan.validated) == (2, "select", False)
    assert [t.name for t in plan.tables] == ["t"]
    unreadable = plan_sql("FROB THE ? WIDGET ((", "duckdb", "main")
    assert unreadable.tree is None and unreadable.parameter_count == 1 and unreadable.tables == ()


def test_plans_are_cached_and_shared():
    assert routed("SELECT 1 AS cached_once") is routed("SELECT 1 AS cached_once")
