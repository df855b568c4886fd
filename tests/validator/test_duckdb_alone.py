"""Statements decided on DuckDB's reading alone (``server/query/sql/duckdb_alone.py``) against the whole validator.

The property that makes the path safe: what it accepts, the whole validator (sqlglot's reading, its walk and
DuckDB's reading) accepts too, with the same first word — or refuses only because sqlglot cannot parse it, and
then an oracle over DuckDB's full parse tree (``json_serialize_sql``, no validator code) finds one query calling
only allowed functions and reading no file. Everything else goes to the whole validator, so refusals keep their
rule and message. Checked on the dot-free corpora, TPC-H, and mutations aimed at what the path checks on DuckDB's
tokens itself (file paths as table names, operators, typed literals, the limits), under default and tight limits.
"""

from __future__ import annotations

import logging

import duckdb
import pytest

from nexus_flight.core.errors import GatewayError
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.source import SourceProfile, ValidationLimits
from nexus_flight.server.query.sql.duckdb_alone import decided_alone
from nexus_flight.server.query.sql.readonly import analyze
from nexus_flight.server.query.sql.routing import clear_plans, route
from nexus_flight.server.query.sql.rules import PATH_TABLE_MARKERS, allowed_functions
from nexus_flight.server.query.sql.walker import normalised_prefix, path_allowed
from tests.validator.alone import (
    assert_plan_reads_its_tree_on_first_use,
    assert_routing_refuses_as_the_validator,
    verdict,
)
from tests.validator.corpus import ATTACKS, LEGIT
from tests.validator.duckdb_oracle import DUCKDB_SYNTAX, duckdb_reads
from tests.validator.mutations import FRAGMENTS, mutations
from tests.validator.tpch import TPCH_QUERIES

_TIGHT = ValidationLimits(max_nesting=3, max_joins=2, max_operator_depth=4, max_expression_depth=200)
_PROFILES = [
    SourceProfile("duckdb", engine="duckdb"),
    SourceProfile("duckdb", engine="duckdb", limits=_TIGHT),
    SourceProfile("duckdb", engine="duckdb", allowed_paths=("/data/lake/",)),
]
#: Edits aimed at the checks the path makes on DuckDB's tokens itself.
_SHAPE_FRAGMENTS = [
    " FROM 'x.csv'", ", '/etc/passwd'", " JOIN e'/etc/passwd' ON true", ' FROM "a/b"', ' "x:y" ', " ('/etc/passwd')",
    "(VALUES ('a'))", " ON 1 = 1", " USING (a)", ", ", " CASE WHEN a THEN b END ", " END", " CASE ", "(", ")",
    " JOIN n ", " read_csv('/data/lake/a.csv') ", " read_csv('/etc/passwd') ", " x'00' ", " 1 + 2 * 3 - ",
    " FROM ", " WHERE ", " LATERAL ", "/* FROM 'x' */", "-- ,\n", " INSERT INTO t ", " INTO t ",
]
_POOL = [
    *(s for d, _, s in ATTACKS if d == "duckdb" and len(s) < 500),
    *(s for d, s in LEGIT if d == "duckdb"),
    *TPCH_QUERIES.values(),
    "SELECT a, 'x' FROM t1, t2 JOIN t3 USING (k), t4 WHERE b IN ('p', 'q')",
    "SELECT CASE WHEN (a > 1) THEN (SELECT max(b) FROM u) ELSE 0 END FROM (SELECT 1 AS a, 2 AS b) AS s",
    "FROM read_csv('/data/lake/a.csv') SELECT count(*)",
    "SELECT n_name FROM nation WHERE n_comment LIKE '%Zürich%' OR n_name = 'CÔTE D''IVOIRE' OR n_name = '東京'",
]


def _judge(profile: SourceProfile):
    prefixes = tuple(normalised_prefix(p) for p in profile.allowed_paths)
    return lambda sql: decided_alone(sql, profile.limits, (), lambda path: path_allowed(path, prefixes))


def _harmless_to_duckdb(con, sql: str) -> bool:
    reads = duckdb_reads(con, sql)
    if reads is None:
        return False
    called, tables = reads
    allowed = allowed_functions("duckdb") | DUCKDB_SYNTAX
    paths = [t for t in tables if any(m in t for m in PATH_TABLE_MARKERS)]
    return all(n in allowed for n in called if n.isidentifier()) and not paths


@pytest.mark.parametrize("profile", _PROFILES, ids=["default", "tight-limits", "allowed-paths"])
def test_what_duckdb_alone_accepts_the_whole_validator_accepts(profile):
    logging.getLogger("sqlglot").setLevel(logging.CRITICAL)
    alone, con = _judge(profile), duckdb.connect()
    decided = 0
    statements = [*_POOL, *mutations(_POOL, 7, 6000, [*FRAGMENTS, *_SHAPE_FRAGMENTS])]
    for sql in statements:
        keyword = alone(sql)
        if keyword is None:
            continue
        decided += 1
        whole = verdict(sql, profile)
        if whole.startswith("QV-001: SQL does not parse"):  # sqlglot's grammar, not a rule
            assert _harmless_to_duckdb(con, sql), sql
        else:
            assert whole == keyword, sql
    assert decided > 100  # the path is taken, not merely skipped


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM 'data.csv'",
        "SELECT * FROM nation, '/etc/passwd'",
        "SELECT * FROM nation JOIN e'/etc/passwd' ON true",
        'SELECT * FROM "/etc/passwd"',
        "SELECT * FROM ('/etc/passwd')",
        "SELECT * FROM (FROM '/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "WITH x AS (INSERT INTO nation VALUES (1)) SELECT 1",
        "SELECT * INTO copy FROM nation",
        "SELECT * FROM nation FOR UPDATE",
        "SELECT getenv('HOME')",
        "SELECT * FROM duckdb_settings()",
        "SELECT current_setting('temp_directory')",
        "SELECT 1; SELECT 2",
        "EXPLAIN ANALYZE SELECT 1",
    ],
)
def test_refusals_are_the_whole_validators(sql):
    assert _judge(_PROFILES[0])(sql) is None
    assert_routing_refuses_as_the_validator(sql, _PROFILES[0])


def test_text_in_any_script_is_decided_alone_and_refused_characters_are_not():
    alone = _judge(_PROFILES[0])
    assert alone("SELECT n_name FROM nation WHERE n_name = 'CÔTE D''IVOIRE' OR n_comment LIKE '%東京%'") == "select"
    hidden = "SELECT n_name FROM nation WHERE n_name = 'FRANCE\u200b'"
    assert alone(hidden) is None
    assert verdict(hidden, _PROFILES[0]).startswith("QV-010")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM a JOIN b USING (k), c, d",  # commas after USING still join
        "SELECT count(*) FROM a JOIN b ON a = b, c JOIN d ON true",
        "SELECT ((((1))))",
        "SELECT CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN (1) END END END",
        "SELECT 1 + 1 + 1 + 1 + 1 + 1",
    ],
)
def test_limits_over_estimated_go_to_the_validator(sql):
    profile = _PROFILES[1]
    assert _judge(profile)(sql) is None
    with pytest.raises(GatewayError, match="QV-008"):
        analyze(sql, "duckdb", profile.limits, engine="duckdb")


#: TPC-H queries without a qualified name (Q7, Q8, Q21: ``n1.n_name``) or an alias with a column list (Q13).
_DECIDED_ALONE = [1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 14, 15, 16, 17, 18, 19, 20, 22]


def test_tpch_queries_decided_alone():
    alone = _judge(_PROFILES[0])
    assert [n for n, q in TPCH_QUERIES.items() if alone(q)] == _DECIDED_ALONE


@pytest.mark.parametrize("number", _DECIDED_ALONE)
def test_tpch_plans_read_their_tree_on_first_use(number):
    sql, profile = TPCH_QUERIES[number], _PROFILES[0]
    plan = assert_plan_reads_its_tree_on_first_use(sql, profile)
    assert plan.tables and plan.tables == plan_of_validator(sql, profile).tables


def plan_of_validator(sql: str, profile: SourceProfile):
    """The plan the whole validator makes of ``sql`` (as routing does for a statement with a qualified name)."""
    analysis = analyze(sql, "duckdb", profile.limits, engine="duckdb")
    return QueryPlan("demo", sql, analysis.parameter_count, "duckdb", analysis.tree, analysis.query)


def test_a_plan_whose_tree_is_wanted_is_read_by_the_whole_validator_at_once():
    """Grants apply (``tree_wanted``): deciding on DuckDB's reading first would only be done again."""
    sql, profile = TPCH_QUERIES[1], _PROFILES[0]
    clear_plans()
    plan = route(sql, sources={"demo": profile}, session_catalog=None, default_source="demo", tree_wanted=True)
    assert plan.parsed_tree is not None and plan.read_later is None
    assert plan.tree == analyze(sql, "duckdb", profile.limits, engine="duckdb").tree


def test_grants_want_the_tree_of_signed_in_users_only():
    from nexus_flight.server.query.access import AllowAll, GrantedAccess
    from nexus_flight.server.query.principal import Principal, anonymous

    class Grants:
        """The grants' own answer for a signed-in user (``GrantAccess.reads_plans``: a whole-source grant without
        policies needs no tree; tested with real grants in tests/security/test_privilege_escalation.py)."""

        def __init__(self, wanted: bool) -> None:
            self.wanted = wanted

        def reads_plans(self, principal, catalog) -> bool:
            return self.wanted

    granted = GrantedAccess(lambda: Grants(True), lambda source: "main")
    analyst = Principal("bob", frozenset({"analyst"}), auth_method="password", authenticated=True)
    admin = Principal("root", frozenset({"admin"}), auth_method="password", authenticated=True)
    assert granted.reads_plans(analyst, "demo")
    assert not GrantedAccess(lambda: Grants(False), lambda source: "main").reads_plans(analyst, "demo")
    assert not granted.reads_plans(admin, "demo") and not granted.reads_plans(anonymous(), "demo")
    assert not GrantedAccess(lambda: None, lambda source: "main").reads_plans(analyst, "demo")
    assert not AllowAll().reads_plans(analyst, "demo")


def test_sources_whose_backend_reads_every_tree_are_routed_by_the_whole_validator():
    """File and lake sources bind the tables each plan reads: the tree is read at once, not after DuckDB's reading."""
    from nexus_flight.backends.files import FilesBackend
    from nexus_flight.backends.profile import source_profile

    profile = source_profile(FilesBackend, {"tables": []})
    assert profile.reads_tree and profile.engine == "duckdb"
    clear_plans()
    plan = route(TPCH_QUERIES[1], sources={"files": profile}, session_catalog=None, default_source="files")
    assert plan.parsed_tree is not None and plan.read_later is None
