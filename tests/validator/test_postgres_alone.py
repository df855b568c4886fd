"""Statements decided on PostgreSQL's reading alone (``server/query/sql/postgres_alone.py``) against the whole
validator.

As for DuckDB (``test_duckdb_alone.py``): what the path accepts, the whole validator (sqlglot's reading, its
walk and PostgreSQL's reading) accepts too, with the same first word, or refuses only because sqlglot cannot
parse it, and then an oracle over libpg_query's tree (no validator code) finds one SELECT of allowed functions
without DML. Checked on the PostgreSQL corpora, TPC-H and mutations, under default and tight limits.
"""

from __future__ import annotations

import logging

import pytest

from nexus_flight.core.errors import GatewayError
from nexus_flight.core.source import SourceProfile, ValidationLimits
from nexus_flight.server.query.sql.postgres_alone import decided_alone
from nexus_flight.server.query.sql.readonly import analyze
from nexus_flight.server.query.sql.routing import clear_plans, route
from nexus_flight.server.query.sql.rules import allowed_functions
from tests.validator.alone import (
    assert_plan_reads_its_tree_on_first_use,
    assert_routing_refuses_as_the_validator,
    verdict,
)
from tests.validator.corpus import ATTACKS, LEGIT
from tests.validator.mutations import FRAGMENTS, mutations
from tests.validator.postgres_oracle import postgres_reading
from tests.validator.tpch import TPCH_QUERIES

_TIGHT = ValidationLimits(max_nesting=3, max_joins=2, max_operator_depth=12, max_expression_depth=200)
_PROFILES = [
    SourceProfile("postgres", engine="postgres"),
    SourceProfile("postgres", engine="postgres", limits=_TIGHT),
]
_TPCH = {n: q.replace("interval '90' day (3)", "interval '90 day'") for n, q in TPCH_QUERIES.items()}
_POOL = [
    *(s for d, _, s in ATTACKS if d == "postgres" and len(s) < 500),
    *(s for d, s in LEGIT if d == "postgres"),
    *_TPCH.values(),
    "SELECT a, 'x' FROM t1, t2 JOIN t3 USING (k), t4 WHERE b IN ('p', 'q')",
    "SELECT CASE WHEN (a > 1) THEN (SELECT max(b) FROM u) ELSE 0 END FROM (SELECT 1 AS a, 2 AS b) AS s",
    'SELECT U&"\\0070g_sleep"(1)',
    "SELECT t.pg_read_file FROM t",
]
_PG_FRAGMENTS = [" JOIN u ON true ", ", ", " CASE WHEN a THEN b END ", "(", ")", " 1 + 2 * 3 - ", " INTO t ",
                 " FOR UPDATE ", "demo.public.", " OPERATOR(public.+) ", "/* ( */", "-- ,\n"]


@pytest.mark.parametrize(("profile", "least"), [(_PROFILES[0], 60), (_PROFILES[1], 15)],
                         ids=["default", "tight-limits"])
def test_what_postgres_alone_accepts_the_whole_validator_accepts(profile, least):
    logging.getLogger("sqlglot").setLevel(logging.CRITICAL)
    allowed = allowed_functions("postgres")
    decided = 0
    for sql in [*_POOL, *mutations(_POOL, 11, 6000, [*FRAGMENTS, *_PG_FRAGMENTS])]:
        keyword = decided_alone(sql, profile.limits, ())
        if keyword is None:
            continue
        decided += 1
        whole = verdict(sql, profile)
        if whole.startswith("QV-001: SQL does not parse"):  # sqlglot's grammar, not a rule
            kinds, called, dml = postgres_reading(sql)
            assert kinds == ["SelectStmt"] and not dml and called <= allowed, sql
        else:
            assert whole == keyword, sql
    assert decided > least  # the path is taken, not merely skipped


@pytest.mark.parametrize(
    "sql",
    [
        'SELECT U&"\\0070g_read_file"(\'/etc/passwd\')',
        "SELECT t.pg_read_file FROM t",
        "SELECT * INTO copy FROM t",
        "SELECT * FROM t FOR UPDATE",
        "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
        "SELECT set_config('a', 'b', false)",
        "SELECT current_setting('data_directory')",
        "SELECT * FROM pg_catalog.pg_shadow",
        "SELECT 1 OPERATOR(public.+) 2",
        "EXPLAIN ANALYZE SELECT 1",
        "SELECT 1; SELECT 2",
    ],
)
def test_refusals_are_the_whole_validators(sql):
    assert decided_alone(sql, _PROFILES[0].limits, ()) is None
    assert_routing_refuses_as_the_validator(sql, _PROFILES[0])


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM a JOIN b USING (k), c, d",
        "SELECT ((((1))))",
        "SELECT CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN (1) END END END",
        "SELECT 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1",
    ],
)
def test_limits_over_estimated_go_to_the_validator(sql):
    profile = _PROFILES[1]
    assert decided_alone(sql, profile.limits, ()) is None
    with pytest.raises(GatewayError, match="QV-008"):
        analyze(sql, "postgres", profile.limits, engine="postgres")


def test_three_part_names_are_routed_by_the_whole_validator():
    """A catalog-qualified name picks (or names an unknown) source: routing needs sqlglot's reading."""
    assert decided_alone("SELECT * FROM pg.public.t", ValidationLimits(), ()) is None
    clear_plans()
    plan = route("SELECT * FROM pg.public.t", sources={"pg": _PROFILES[0]}, session_catalog=None,
                 default_source="pg")
    assert plan.sql == "SELECT * FROM public.t" and plan.parsed_tree is not None


@pytest.mark.parametrize("number", sorted(_TPCH))
def test_tpch_plans_read_their_tree_on_first_use(number):
    assert_plan_reads_its_tree_on_first_use(_TPCH[number], _PROFILES[0])
