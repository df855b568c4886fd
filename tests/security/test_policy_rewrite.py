"""The rewrite itself, on plans made by the gateway's own planner, for what the engine suites cannot reach.

Time-travel names belong to the lake families, whose engines these tests do not start: the table metadata the
rewrite asks for is a small stand-in here (the docstring of ``Metadata`` says so); the SQL produced is then read
back by DuckDB, which runs it on a real table, to show it means what it should.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from nexus_flight.backends.base import TableInfo
from nexus_flight.catalog.models import utcnow
from nexus_flight.catalog.policies import PolicyInfo
from nexus_flight.core.errors import ForbiddenError
from nexus_flight.core.plan import plan_sql
from nexus_flight.server.query.principal import Principal
from nexus_flight.server.security.policies import PolicyRewriter
from tests.support.backend_defaults import BackendDefaults


def policy(name, kind, table="orders", column=None, expression=None, exempt=()):
    return PolicyInfo(name, name, kind, "lake", "main", table, column, expression, tuple(exempt), "cli", None,
                      utcnow())


class Metadata(BackendDefaults):
    """A stand-in for a lake backend's metadata (no lake engine runs in these tests): one table, ``orders``."""

    dialect = "duckdb"

    def table_schema(self, db_schema, table):
        return pa.schema([("id", pa.int64()), ("region", pa.utf8()), ("secret", pa.utf8())])

    def list_tables(self, db_schema=None):
        return [TableInfo("main", "orders", "TABLE")]


POLICIES = [policy("f", "row_filter", expression="region = {user.region}"),
            policy("m", "column_mask", column="secret", exempt=("auditor",))]
BOB = Principal("bob", frozenset({"analyst"}), "password", {"region": "EU"}, authenticated=True)


def rewrite(sql, principal=BOB, policies=POLICIES, dialect="duckdb"):
    rewriter = PolicyRewriter(lambda: policies)
    return rewriter.rewrite(principal, plan_sql(sql, dialect, "lake"), lambda source: Metadata(), "main")


@pytest.fixture(scope="module")
def engine():
    con = duckdb.connect()
    con.execute("CREATE TABLE orders AS SELECT * FROM (VALUES (1, 'EU', 's1'), (2, 'US', 's2')) t(id, region, secret)")
    yield con
    con.close()


def test_a_time_travel_name_is_read_through_the_policies():
    assert rewrite('SELECT * FROM "orders@v3" o WHERE o.id > 0') == (
        'SELECT * FROM (SELECT "id", "region", CAST(NULL AS TEXT) AS "secret" FROM "orders@v3" '
        "WHERE (region = 'EU')) AS o WHERE o.id > 0")


def test_the_rewritten_sql_means_the_filtered_masked_table(engine):
    for sql, expected in [
        ("SELECT * FROM orders", [(1, "EU", None)]),
        ("SELECT main.orders.secret FROM main.orders", [(None,)]),
        ("SELECT count(*) FROM orders o, orders p WHERE o.id = p.id", [(1,)]),
        ("SELECT x.* FROM orders AS x(a, b, c) WHERE b <> 'EU' OR true", [(1, "EU", None)]),
    ]:
        assert engine.execute(rewrite(sql)).fetchall() == expected, sql


TRICKY = ["EU' OR 'x'='x", "a\\' OR 1=1 -- ", "EU\\", "it's \"quoted\" /* c */ ; DROP TABLE orders"]


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "sqlite", "mysql", "tsql", "bigquery", "clickhouse",
                                     "snowflake", "trino", "databricks"])
def test_attribute_values_come_back_as_the_same_literal_in_each_dialect(dialect):
    for value in TRICKY:
        who = Principal("quinn", frozenset({"analyst"}), "password", {"region": value}, authenticated=True)
        orders = exp.to_identifier("orders", quoted=True).sql(dialect=dialect)  # Snowflake folds unquoted to ORDERS
        tree = sqlglot.parse_one(rewrite(f"SELECT id FROM {orders}", who, dialect=dialect), read=dialect)
        [literal] = [node for node in tree.find_all(exp.Literal) if node.is_string]
        assert literal.this == value, (dialect, value)


def test_a_hostile_attribute_matches_nothing_in_the_engine(engine):
    for value in TRICKY:
        who = Principal("quinn", frozenset({"analyst"}), "password", {"region": value}, authenticated=True)
        assert engine.execute(rewrite("SELECT id FROM orders", who)).fetchall() == []


def test_admins_exempt_roles_and_unauthenticated_callers_are_not_rewritten():
    admin = Principal("alice", frozenset({"admin"}), "password", authenticated=True)
    auditor = Principal("aud", frozenset({"auditor"}), "password", {"region": "EU"}, authenticated=True)
    assert rewrite("SELECT * FROM orders", admin) is None
    assert "NULL AS" not in rewrite("SELECT * FROM orders", auditor)
    assert rewrite("SELECT * FROM orders", Principal("anonymous")) is None
    assert rewrite("SELECT 1") is None


def test_what_cannot_be_rewritten_with_certainty_is_refused():
    rewriter = PolicyRewriter(lambda: POLICIES)
    unreadable = plan_sql("SELECT * FROM orders WHERE", "duckdb", "lake")
    with pytest.raises(ForbiddenError, match="cannot be read"):
        rewriter.rewrite(BOB, unreadable, lambda source: Metadata(), "main")

    class NoColumns(Metadata):
        def table_schema(self, db_schema, table):
            from nexus_flight.core.errors import NotFoundError
            raise NotFoundError("gone")

    with pytest.raises(ForbiddenError, match="columns of lake.main.orders are unknown"):
        PolicyRewriter(lambda: POLICIES).rewrite(BOB, plan_sql("SELECT 1 FROM orders", "duckdb", "lake"),
                                                 lambda source: NoColumns(), "main")


def test_a_kept_refusal_holds_nothing_of_the_call_that_made_it():
    # A raised error's traceback keeps every frame of its call (request, session, gRPC call): kept for the
    # next caller as raised, each refused rewrite held its call's whole stack.
    rewriter = PolicyRewriter(lambda: POLICIES)
    for n in range(3):
        with pytest.raises(ForbiddenError):
            rewriter.rewrite(BOB, plan_sql(f"SELECT {n} FROM orders WHERE", "duckdb", "lake"),
                             lambda source: Metadata(), "main")
    kept = [found for _, found in rewriter._rewrites.values() if isinstance(found, Exception)]
    assert len(kept) == 3
    assert [e for e in kept if e.__traceback__ is not None or e.__context__ is not None] == []


def test_a_changed_policy_applies_to_the_next_query():
    current = {"policies": (POLICIES[0],)}  # replaced, never changed in place, like the identity snapshot
    rewriter = PolicyRewriter(lambda: current["policies"])
    plan = plan_sql("SELECT id FROM orders", "duckdb", "lake")
    assert "'EU'" in rewriter.rewrite(BOB, plan, lambda source: Metadata(), "main")
    current["policies"] = (policy("f", "row_filter", expression="region <> {user.region}"),)
    assert "<> 'EU'" in rewriter.rewrite(BOB, plan, lambda source: Metadata(), "main")
    current["policies"] = ()
    assert rewriter.rewrite(BOB, plan, lambda source: Metadata(), "main") is None
