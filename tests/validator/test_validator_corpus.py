"""Every attack of the corpus is refused with its rule; every legitimate query is accepted.

Both with sqlglot's reading alone and with the engine's own reading on top (PostgreSQL's parser through
pglast, DuckDB's parser and lexer), as the gateway runs it for sources of those engines.
"""

from __future__ import annotations

import pytest
import sqlglot

from nexus_flight.core.errors import GatewayError, InvalidQueryError, LimitExceededError, ReadOnlyViolationError
from nexus_flight.server.query.sql.readonly import validate
from nexus_flight.server.query.sql.rules import RULES
from tests.validator.corpus import ATTACKS, LEGIT
from tests.validator.tpch import TPCH_QUERIES

OUT = "/tmp/nexus-validator-out"
SENTINEL = "/tmp/nexus-validator-sentinel.txt"


def fill(sql: str) -> str:
    return sql.replace("{OUT}", OUT).replace("{SENTINEL}", SENTINEL)


def _id(value) -> str:
    return repr(value)[:60]


def test_corpus_sizes():
    assert len(ATTACKS) >= 150
    assert len(LEGIT) >= 100
    assert {d for d, _, _ in ATTACKS} >= {"duckdb", "postgres", "mysql", "clickhouse"}
    assert {rule for _, rule, _ in ATTACKS} == set(RULES)


#: The engine whose own parser reads a dialect's statements in the gateway.
ENGINES = {"duckdb": "duckdb", "postgres": "postgres"}


@pytest.fixture(params=["sqlglot", "engine"])
def engine_for(request):
    return lambda dialect: ENGINES.get(dialect) if request.param == "engine" else None


@pytest.mark.parametrize(("dialect", "rule", "sql"), ATTACKS, ids=_id)
def test_attack_is_refused_with_its_rule(dialect, rule, sql, engine_for):
    with pytest.raises(GatewayError) as caught:
        validate(fill(sql), dialect, engine=engine_for(dialect))
    error = caught.value
    assert error.message.startswith(f"{rule}: "), error.message
    assert error.details["rule"] == rule
    assert isinstance(error, RULES[rule].error)
    assert "\x1b[" not in error.message
    if rule in ("QV-002", "QV-003", "QV-004", "QV-005", "QV-006", "QV-007", "QV-011"):
        assert isinstance(error, ReadOnlyViolationError)
    elif rule in ("QV-008", "QV-009"):
        assert isinstance(error, LimitExceededError)
    else:
        assert isinstance(error, InvalidQueryError)


@pytest.mark.parametrize(("dialect", "sql"), LEGIT, ids=_id)
def test_legitimate_query_is_accepted(dialect, sql, engine_for):
    tree = validate(sql, dialect, engine=engine_for(dialect))
    assert tree is not None


#: Every dialect a backend family speaks, with the engine parser the gateway applies to it.
FAMILY_DIALECTS = [("duckdb", "duckdb"), ("postgres", "postgres"), ("postgres", None), ("mysql", None),
                   ("sqlite", None), ("snowflake", None), ("redshift", "postgres")]


@pytest.mark.parametrize("number", sorted(TPCH_QUERIES))
@pytest.mark.parametrize(("dialect", "engine"), FAMILY_DIALECTS, ids=lambda v: str(v))
def test_tpch_passes_in_every_dialect(dialect, engine, number):
    sql = sqlglot.transpile(TPCH_QUERIES[number], read="duckdb", write=dialect)[0]
    validate(sql, dialect, engine=engine)
