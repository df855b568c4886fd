"""Behaviour of the read-only validator beyond the corpus: messages, positions, paths, limits, cache."""

from __future__ import annotations

import re
import threading
import time

import pytest
from sqlglot import exp

import nexus_flight.server.query.sql.readonly as readonly
from nexus_flight.core.errors import (
    InvalidQueryError,
    LimitExceededError,
    QueryRejectedError,
    ReadOnlyViolationError,
)
from nexus_flight.core.source import ValidationLimits
from nexus_flight.server.query.sql.cache import LRU
from nexus_flight.server.query.sql.readonly import analyze, validate
from nexus_flight.server.query.sql.rules import (
    DENIED_FUNCTIONS,
    RULES,
    STATEMENT_KEYWORD_PAIRS,
    STATEMENT_KEYWORDS,
    TOKEN_SEQUENCES,
    denied_function_rule,
)


def refusal(sql: str, dialect: str = "duckdb", **kwargs):
    with pytest.raises(Exception) as caught:
        validate(sql, dialect, **kwargs)
    return caught.value


# -- messages -------------------------------------------------------------------------------------------


def test_message_names_rule_construct_reason_and_position():
    error = refusal("DELETE FROM t")
    assert isinstance(error, ReadOnlyViolationError)
    assert error.message == "QV-002: DELETE is not allowed: this gateway is read-only (line 1, column 1)"
    assert error.details == {"rule": "QV-002", "line": 1, "column": 1}


def test_position_points_at_the_offending_call_on_its_line():
    error = refusal("SELECT a,\n       b\nFROM t\nWHERE pg_sleep(1) IS NULL", "postgres")
    assert error.details["rule"] == "QV-004"
    assert "pg_sleep()" in error.message
    assert (error.details["line"], error.details["column"]) == (4, 7)
    assert error.message.endswith("(line 4, column 7)")


def test_position_of_a_data_modifying_cte():
    error = refusal("WITH x AS (\n  DELETE FROM t RETURNING *)\nSELECT * FROM x")
    assert (error.details["line"], error.details["column"]) == (2, 3)


def test_second_statement_is_named_in_the_refusal():
    error = refusal("SELECT 1;\n  DROP TABLE t")
    assert error.message.startswith(
        "QV-001: only one statement is allowed, got 2; the second starts with 'DROP'"
    )
    assert (error.details["line"], error.details["column"]) == (2, 3)


def test_parse_error_is_plain_text_with_position():
    error = refusal("SELECT * FROM t WHERE (a = 1")
    assert isinstance(error, InvalidQueryError)
    assert error.message.startswith("QV-001: SQL does not parse: ")
    assert "\x1b" not in error.message
    assert "line" in error.details


def test_plain_strips_ansi_codes():
    assert readonly.plain(ValueError("bad \x1b[4mtoken\x1b[0m here\nmore")) == "bad token here"


def test_character_refusal_names_the_character():
    error = refusal("SELECT\u00a01")
    assert isinstance(error, QueryRejectedError)
    assert "U+00A0 (NO-BREAK SPACE)" in error.message
    assert (error.details["line"], error.details["column"]) == (1, 7)


def test_invalid_utf8_bytes_are_refused():
    error = refusal(b"SELECT '\xff\xfe'")
    assert isinstance(error, QueryRejectedError)
    assert error.message.startswith("QV-010: the query is not valid UTF-8")


def test_lone_surrogate_is_refused():
    assert refusal("SELECT '\ud800'").details["rule"] == "QV-010"


def test_utf8_bytes_are_accepted():
    assert isinstance(validate("SELECT 'é'".encode(), "duckdb"), exp.Select)


# -- statement shapes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    ["SELECT 1", "SELECT 1;", "SELECT 1 ;; ", "  (SELECT 1)  ", "VALUES (1)", "FROM t", "SELECT 1 -- c"],
)
def test_queries_with_trailing_semicolons_and_comments(sql):
    validate(sql, "duckdb")


def test_explain_is_judged_by_the_query_it_explains():
    validate("EXPLAIN SELECT * FROM t", "duckdb")
    assert refusal("EXPLAIN DELETE FROM t").details["rule"] == "QV-002"
    assert refusal("EXPLAIN ANALYZE SELECT 1").details["rule"] == "QV-004"
    assert refusal("EXPLAIN (ANALYZE) SELECT 1", "postgres").details["rule"] == "QV-004"
    validate("EXPLAIN (FORMAT JSON) SELECT 1", "postgres")


@pytest.mark.parametrize(
    ("dialect", "sql", "allowed"),
    [
        ("duckdb", "DESCRIBE t", True),
        ("duckdb", "SHOW TABLES", True),
        ("duckdb", "SUMMARIZE t", True),
        ("duckdb", "SHOW '/etc/passwd'", False),
        ("postgres", "SHOW search_path", True),
        ("postgres", "DESCRIBE t", False),
        ("mysql", "SHOW TABLES", True),
        ("bigquery", "DESCRIBE t", False),
    ],
)
def test_metadata_statements_per_dialect(dialect, sql, allowed):
    if allowed:
        validate(sql, dialect)
    else:
        assert refusal(sql, dialect).details["rule"] in ("QV-001", "QV-005")


def test_unknown_dialect_is_a_clear_error():
    error = refusal("SELECT 1", "nosuchdialect")
    assert isinstance(error, InvalidQueryError)
    assert error.message.startswith("QV-001: unknown SQL dialect")


def test_unknown_dialect_family_gets_every_deny_list():
    assert denied_function_rule("tsql", "pg_sleep") == "QV-004"
    assert denied_function_rule("tsql", "load_file") == "QV-005"
    assert denied_function_rule("redshift", "pg_sleep") == "QV-004"
    assert denied_function_rule("duckdb", "pg_read_file") is None


# -- file access ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "allowed"),
    [
        ("SELECT * FROM read_parquet('/data/sales/2024.parquet')", True),
        ("SELECT * FROM read_parquet('/data/sales/*.parquet', hive_partitioning = true)", True),
        ("SELECT * FROM read_csv(['/data/sales/a.csv', '/data/sales/b.csv'])", True),
        ("SELECT * FROM '/data/sales/a.csv'", True),
        ("SELECT * FROM read_parquet('s3://bucket/sales/x.parquet')", True),
        ("SELECT * FROM read_csv(['/data/sales/a.csv', '/etc/passwd'])", False),
        ("SELECT * FROM read_parquet('/data/sales/../../etc/passwd')", False),
        ("SELECT * FROM read_parquet('/data/salesmen/x.parquet')", False),
        ("SELECT * FROM read_parquet('/data/sales')", True),
        ("SELECT * FROM read_parquet('data/sales/x.parquet')", False),
        ("SELECT * FROM read_parquet('s3://bucket/other/x.parquet')", False),
        ("SELECT * FROM read_parquet('s3://bucket/sales/../other/x.parquet')", False),
        ("SELECT * FROM read_parquet('\\\\server\\share\\x.parquet')", False),
        ("SELECT * FROM read_parquet(?)", False),
        ("SELECT * FROM sqlite_scan('/data/sales/db.sqlite', 't')", True),
        ("SELECT * FROM sqlite_scan('/tmp/db.sqlite', 't')", False),
        ("SELECT * FROM read_parquet('s3://bucket/salesmen/x.parquet')", False),
        ("SELECT * FROM read_parquet('/data/sales/sub/../x.parquet')", False),
        ("SELECT * FROM read_parquet('/data/sales/./x.parquet')", True),
        ("SELECT * FROM read_parquet('s3:/bucket/sales/x.parquet')", False),
    ],
)
def test_file_readers_only_under_allowed_paths(sql, allowed):
    paths = ("/data/sales", "s3://bucket/sales")
    if allowed:
        validate(sql, "duckdb", allowed_paths=paths)
    else:
        error = refusal(sql, allowed_paths=paths)
        assert error.details["rule"] == "QV-005", error.message


def test_allowed_paths_are_part_of_the_cache_key():
    sql = "SELECT * FROM read_parquet('/data/sales/x.parquet')"
    validate(sql, "duckdb", allowed_paths=("/data/sales",))
    assert refusal(sql, allowed_paths=("/data/other",)).details["rule"] == "QV-005"


def test_file_readers_are_not_special_in_other_dialects():
    validate("SELECT * FROM read_csv('/x')", "postgres")  # a user function there; the backend decides


# -- limits ---------------------------------------------------------------------------------------------


def test_limits_are_configurable():
    joins = "SELECT * FROM a JOIN b ON true JOIN c ON true JOIN d ON true"
    validate(joins, "duckdb")
    error = refusal(joins, limits=ValidationLimits(max_joins=2))
    assert isinstance(error, LimitExceededError)
    assert error.message.startswith("QV-008: more than max_joins=2 joins")
    nested = "SELECT ((((1))))"
    assert refusal(nested, limits=ValidationLimits(max_nesting=3)).details["rule"] == "QV-008"
    long = "SELECT 1 AS " + "x" * 200
    error = refusal(long, limits=ValidationLimits(max_length=100))
    assert error.message.startswith(f"QV-009: the query is {len(long)} bytes, over the limit max_length=100")


def test_length_counts_utf8_bytes():
    sql = "SELECT '" + "é" * 60 + "'"  # 69 characters, 129 bytes
    assert refusal(sql, limits=ValidationLimits(max_length=100)).details["rule"] == "QV-009"


def test_limits_from_mapping():
    limits = ValidationLimits.from_mapping({"max_joins": "3", "unknown": 1})
    assert limits == ValidationLimits(max_joins=3)
    assert ValidationLimits.from_mapping(limits) is limits


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT " + "(" * 50_000 + "1" + ")" * 50_000,
        "SELECT " + "-" * 90_000 + "1",
        "SELECT " + "NOT " * 20_000 + "1",
        "SELECT " + "CASE WHEN 1 THEN " * 5000 + "1" + " END" * 5000,
        "SELECT [" * 30_000 + "]" * 30_000,
        "SELECT " + "+".join(["1"] * 30_000),
    ],
    ids=["parens", "minus", "not", "case", "lists", "long-chain"],
)
def test_pathological_input_is_refused_quickly_without_recursion_error(sql):
    started = time.perf_counter()
    try:
        validate(sql, "duckdb")
    except (LimitExceededError, InvalidQueryError) as error:
        assert error.details["rule"] in ("QV-001", "QV-008", "QV-009")
    assert time.perf_counter() - started < 5


def test_a_long_or_chain_is_accepted():
    validate("SELECT * FROM t WHERE " + " OR ".join(f"a = {i}" for i in range(500)), "duckdb")


# -- cache ----------------------------------------------------------------------------------------------


def test_cache_returns_the_same_tree_and_fresh_errors():
    sql = "SELECT 42 AS cached_answer"
    assert validate(sql, "duckdb") is validate(sql, "duckdb")
    first = refusal("DELETE FROM cached")
    first.with_context(source="a")
    second = refusal("DELETE FROM cached")
    assert first is not second
    assert "source" not in second.details


def test_cache_is_keyed_by_dialect_and_limits():
    sql = "SELECT txid_current()"
    validate(sql, "duckdb")
    assert refusal(sql, "postgres").details["rule"] == "QV-004"
    joins = "SELECT * FROM a JOIN b ON true"
    validate(joins, "duckdb")
    assert refusal(joins, limits=ValidationLimits(max_joins=0)).details["rule"] == "QV-008"


def test_cache_is_bounded_by_entries_and_text_size():
    lru = LRU(entries=3, chars=1000)
    for i in range(5):
        lru.get_or_compute(i, 10, lambda i=i: i)
    assert list(lru._data) == [2, 3, 4]
    lru.get_or_compute("big", 101, lambda: "x")  # over a tenth of the budget: not kept
    assert "big" not in lru._data
    for i in range(10, 20):
        lru.get_or_compute(i, 90, lambda: None)
    assert lru._held <= 1000


def test_cache_is_thread_safe():
    errors = []

    def work(n):
        try:
            for i in range(200):
                validate(f"SELECT {i % 50} AS v{n % 3}", "duckdb")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- analysis used by routing ---------------------------------------------------------------------------


def test_analysis_reports_catalogs_and_parameters():
    a = analyze("SELECT * FROM demo.main.t JOIN s.u ON t.a = ? WHERE b = ?", "duckdb")
    assert a.catalogs == ("demo",)
    assert a.parameter_count == 2
    assert analyze("SELECT $1, $2, $1", "postgres").parameter_count == 2


def test_unchecked_analysis_parses_without_rules():
    assert isinstance(analyze("DELETE FROM t", "duckdb", check=False).tree, exp.Delete)


# -- the rules table ------------------------------------------------------------------------------------


def test_every_rule_is_documented_in_the_module_docstring():
    for rule_id in RULES:
        assert re.search(rf"^{rule_id}\b", readonly.__doc__, re.M), rule_id


def test_rule_tables_use_known_rule_ids():
    used = [
        *STATEMENT_KEYWORDS.values(),
        *STATEMENT_KEYWORD_PAIRS.values(),
        *TOKEN_SEQUENCES.values(),
        *(rule for table in DENIED_FUNCTIONS.values() for rule in table.values()),
    ]
    assert set(used) <= set(RULES)
    for table in DENIED_FUNCTIONS.values():
        assert all(name == name.lower() for name in table)


def test_positions_inside_explain_count_from_the_whole_statement():
    error = refusal("EXPLAIN\n  SELECT * FROM read_text('/etc/passwd')")
    assert (error.details["line"], error.details["column"]) == (2, 17)
    assert error.message.endswith("(line 2, column 17)")
    error = refusal("EXPLAIN SELECT pg_sleep(1)", "postgres")
    assert (error.details["line"], error.details["column"]) == (1, 16)


def test_sqlglot_does_not_log_refused_sql(caplog):
    with caplog.at_level("DEBUG"):
        refusal("VACUUM secret_table_name")
        validate("SHOW TABLES", "duckdb")
    assert "secret_table_name" not in caplog.text
    assert "Command" not in caplog.text


def test_denied_names_are_matched_as_written_even_when_sqlglot_renames_the_call(monkeypatch):
    # sqlglot reads DuckDB's list_value(...) as an ARRAY constructor: only the written name says list_value.
    sql = "SELECT list_value(1, 2) AS l"
    validate(sql, "duckdb")
    monkeypatch.setitem(DENIED_FUNCTIONS["duckdb"], "list_value", "QV-004")
    denied_function_rule.cache_clear()
    readonly.clear_cache()
    try:
        error = refusal(sql)
        assert error.message.startswith("QV-004: list_value() is not allowed")
        assert (error.details["line"], error.details["column"]) == (1, 8)
    finally:
        monkeypatch.undo()
        denied_function_rule.cache_clear()
        readonly.clear_cache()
