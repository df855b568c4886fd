"""Routing: which source a query runs on, and the SQL it receives."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from nexus_flight.core.errors import (
    InvalidQueryError,
    LimitExceededError,
    NotFoundError,
    QueryRejectedError,
    ReadOnlyViolationError,
)
from nexus_flight.core.source import SourceProfile, ValidationLimits
from nexus_flight.server.query.sql.routing import route

SOURCES = {
    "demo": SourceProfile("duckdb"),
    "files": SourceProfile("duckdb", allowed_paths=("/data/files",)),
    "pg": SourceProfile("postgres", own_catalogs=("test",)),
    "shop": SourceProfile("mysql", limits={"max_joins": 1}),
}


class RoutedQuery(NamedTuple):
    """What routing decided, as the tests compare it: the source, the SQL it receives, the parameter count."""

    source: str
    sql: str
    parameter_count: int


def routed(sql: str, **kwargs) -> RoutedQuery:
    kwargs.setdefault("session_catalog", None)
    kwargs.setdefault("default_source", "demo")
    plan = route(sql, sources=SOURCES, **kwargs)
    return RoutedQuery(plan.source, plan.sql, plan.parameter_count)


# -- choosing the source --------------------------------------------------------------------------------


def test_default_source_and_original_text_kept():
    sql = "select   *  from nation -- a comment the backend sees verbatim\n"
    assert routed(sql) == RoutedQuery("demo", sql, 0)


def test_session_catalog_wins_over_default():
    assert routed("SELECT * FROM t", session_catalog="pg").source == "pg"


def test_three_part_name_wins_over_session_catalog_and_is_rewritten_away():
    result = routed("SELECT * FROM pg.public.t WHERE a = $1", session_catalog="demo")
    assert result == RoutedQuery("pg", "SELECT * FROM public.t WHERE a = $1", 1)


def test_catalog_qualified_columns_are_rewritten_too():
    result = routed("SELECT demo.main.nation.n_name FROM demo.main.nation")
    assert result.sql == "SELECT main.nation.n_name FROM main.nation"


def test_catalog_names_match_case_insensitively():
    assert routed("SELECT * FROM DEMO.main.nation").sql == "SELECT * FROM main.nation"


def test_two_part_names_are_schema_and_table():
    sql = "SELECT * FROM pg.t"  # schema "pg" of the default source, not the source pg
    assert routed(sql) == RoutedQuery("demo", sql, 0)


def test_query_naming_two_sources_is_refused():
    with pytest.raises(QueryRejectedError) as caught:
        routed("SELECT * FROM pg.public.t JOIN demo.main.nation ON true")
    assert caught.value.message == (
        "the query names 2 sources (pg, demo); a query runs on one source "
        "(queries across sources are not supported yet)"
    )


def test_same_source_twice_is_one_source():
    result = routed("SELECT * FROM demo.main.a JOIN demo.main.b USING (k)")
    assert result.source == "demo"
    assert "demo." not in result.sql


@pytest.mark.parametrize("sql", ["SELECT * FROM gone.main.t", "SELECT * FROM demo.main.a JOIN Gone.x.y ON true"])
def test_unknown_catalog_in_a_three_part_name_is_not_found(sql):
    with pytest.raises(NotFoundError, match="unknown catalog '[gG]one'; known catalogs: demo, files, pg, shop"):
        routed(sql)


def test_unknown_session_catalog_is_not_found():
    with pytest.raises(NotFoundError, match="unknown catalog 'gone'; known catalogs: demo, files, pg, shop"):
        routed("SELECT 1", session_catalog="gone")


def test_the_sources_own_database_as_first_part_is_left_to_the_backend():
    sql = "SELECT * FROM test.public.t"  # PostgreSQL accepts its own database name as catalog
    assert routed(sql, session_catalog="pg") == RoutedQuery("pg", sql, 0)
    mixed = routed("SELECT * FROM pg.public.a JOIN test.public.b ON true", session_catalog="demo")
    assert mixed == RoutedQuery("pg", "SELECT * FROM public.a JOIN test.public.b ON TRUE", 0)


def test_named_source_is_parsed_in_its_own_dialect():
    # MySQL backticks only parse as identifiers in MySQL's dialect.
    result = routed("SELECT `a` FROM shop.sales.`order`", session_catalog="demo")
    assert result == RoutedQuery("shop", "SELECT `a` FROM sales.`order`", 0)


# -- validation with the target's rules -----------------------------------------------------------------


def test_writes_are_refused():
    with pytest.raises(ReadOnlyViolationError, match=r"^QV-002: DELETE is not allowed"):
        routed("DELETE FROM t")


def test_target_rules_apply_when_the_source_is_named():
    with pytest.raises(ReadOnlyViolationError, match="txid_current"):
        routed("SELECT txid_current() FROM pg.public.t")
    routed("SELECT txid_current()")  # DuckDB's txid_current only reads: allowed on a DuckDB source


def test_target_allowed_paths_apply():
    sql = "SELECT * FROM read_parquet('/data/files/x.parquet')"
    assert routed(sql, session_catalog="files").sql == sql
    with pytest.raises(ReadOnlyViolationError, match="QV-005"):
        routed(sql)


def test_target_limits_apply():
    with pytest.raises(LimitExceededError, match="max_joins=1"):
        routed("SELECT * FROM a JOIN b ON true JOIN c ON true", session_catalog="shop")
    routed("SELECT * FROM a JOIN b ON true JOIN c ON true")


def test_route_target_accepts_limits_as_mapping_or_dataclass():
    assert SourceProfile("duckdb", limits={"max_joins": 1}).limits == ValidationLimits(max_joins=1)
    assert SourceProfile("duckdb", limits=ValidationLimits(max_nesting=5)).limits.max_nesting == 5
    hash(SourceProfile("duckdb", allowed_paths=["/x"]))  # usable as a cache key


def test_validation_off_still_routes_but_refuses_nothing():
    assert routed("DELETE FROM t", validate_sql=False) == RoutedQuery("demo", "DELETE FROM t", 0)
    expected = RoutedQuery("pg", "DELETE FROM public.t", 0)
    assert routed("DELETE FROM pg.public.t", validate_sql=False) == expected
    raw = "COPY t TO '/tmp/x'; DROP TABLE t"
    assert routed(raw, validate_sql=False) == RoutedQuery("demo", raw, 0)


# -- dialects -------------------------------------------------------------------------------------------


def test_client_dialect_is_transpiled_with_placeholders_kept():
    result = routed("SELECT a::int, ? FROM t WHERE b ILIKE 'x%' AND c = ?", client_dialect="postgres",
                    session_catalog="shop")
    assert result == RoutedQuery(
        "shop", "SELECT CAST(a AS SIGNED), ? FROM t WHERE LOWER(b) LIKE LOWER('x%') AND c = ?", 2
    )


def test_client_dialect_equal_to_target_keeps_the_text():
    sql = "SELECT a::int FROM t"
    assert routed(sql, client_dialect="postgres", session_catalog="pg").sql == sql
    assert routed(sql, client_dialect="postgresql", session_catalog="pg").sql == sql


def test_client_dialect_to_duckdb():
    result = routed("SELECT to_char(d, 'YYYY') FROM demo.main.t WHERE x = ?", client_dialect="postgres")
    assert result.source == "demo"
    assert result.parameter_count == 1
    assert "demo." not in result.sql and "?" in result.sql
    assert result.sql.startswith("SELECT STRFTIME(")


def test_client_dialect_rules_apply_to_what_the_client_wrote():
    with pytest.raises(ReadOnlyViolationError, match="QV-004: pg_sleep"):
        routed("SELECT pg_sleep(1)", client_dialect="postgres")


def test_target_rules_apply_to_the_transpiled_query():
    with pytest.raises(ReadOnlyViolationError, match="QV-005: read_csv"):
        routed("SELECT * FROM read_csv('/etc/passwd')", client_dialect="postgres")


def test_transpile_failure_is_a_clear_error():
    with pytest.raises(InvalidQueryError) as caught:
        routed("SELECT ARRAY[1, 2] @> ARRAY[1]", client_dialect="postgres", session_catalog="shop")
    assert caught.value.message == (
        "QV-001: cannot translate the query from postgres to mysql: Arrays are not supported by MySQL; "
        "write it in mysql instead"
    )


def test_explain_routes_with_its_query():
    result = routed("EXPLAIN SELECT * FROM demo.main.nation")
    assert result == RoutedQuery("demo", "EXPLAIN SELECT * FROM main.nation", 0)


def test_rule_refusal_wins_over_a_parse_error():
    # sqlglot cannot parse EXPORT DATABASE; the keyword rule still names what it is.
    with pytest.raises(ReadOnlyViolationError, match=r"^QV-005: EXPORT is not allowed"):
        routed("EXPORT DATABASE '/tmp/x'")


def test_rule_refusal_wins_over_a_parse_error_in_the_client_dialect():
    with pytest.raises(ReadOnlyViolationError, match=r"^QV-004: NOTIFY is not allowed"):
        routed("NOTIFY ch, 'x'", client_dialect="postgres")


def test_engine_dialect_rules_apply_to_backends_that_execute_through_another_engine():
    sources = {
        "plain": SourceProfile("mysql"),
        "via_duckdb": SourceProfile("mysql", engine_dialects=("duckdb",)),
    }

    def go(sql, source):
        return route(sql, sources=sources, session_catalog=source, default_source="plain")

    for sql, rule in [("SELECT * FROM query('SELECT 42')", "QV-004"), ("SELECT getenv('HOME')", "QV-005")]:
        # Unknown to sqlglot's MySQL and on no MySQL list: refused as a function nobody reviewed.
        with pytest.raises(ReadOnlyViolationError, match="^QV-011: "):
            go(sql, "plain")
        with pytest.raises(ReadOnlyViolationError, match=f"^{rule}: "):
            go(sql, "via_duckdb")
    with pytest.raises(ReadOnlyViolationError, match="^QV-004: sleep"):
        go("SELECT sleep(1)", "via_duckdb")  # the source's own rules still apply
    hash(sources["via_duckdb"])
