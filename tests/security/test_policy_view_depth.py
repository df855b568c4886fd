"""How deep the rewrite looks through views, and what it does with a view that reads itself.

The depth is tried on a real DuckDB database file read by the real DuckDB backend: a chain of views over an open
table is read as it is up to ``MAX_VIEW_DEPTH`` views deep, and one view more is refused naming the limit.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from nexus_flight.backends.base import TableInfo
from nexus_flight.backends.duckdb import DuckDBBackend
from nexus_flight.backends.profile import source_profile
from nexus_flight.catalog.models import utcnow
from nexus_flight.catalog.policies import PolicyInfo
from nexus_flight.core.errors import ForbiddenError
from nexus_flight.core.plan import plan_sql
from nexus_flight.core.source import SourceSpec
from nexus_flight.server.query.principal import Principal
from nexus_flight.server.security.policies import PolicyRewriter
from nexus_flight.server.security.policy_views import MAX_VIEW_DEPTH
from tests.support.backend_defaults import BackendDefaults

FILTER = PolicyInfo("f", "f", "row_filter", "lake", "main", "secret", None, "region = {user.region}", (), "cli",
                    None, utcnow())
BOB = Principal("bob", frozenset({"analyst"}), "password", {"region": "EU"}, authenticated=True)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """``v1`` reads the open table, each ``v<n>`` reads ``v<n-1>``, one view past the limit."""
    path = tmp_path_factory.mktemp("views") / "chain.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE open_t AS SELECT 1 AS id")
        con.execute("CREATE TABLE secret AS SELECT 1 AS id, 'EU' AS region")
        con.execute("CREATE VIEW v1 AS SELECT * FROM open_t")
        for n in range(2, MAX_VIEW_DEPTH + 2):
            con.execute(f"CREATE VIEW v{n} AS SELECT * FROM v{n - 1}")
    options = {"path": str(path)}
    backend = DuckDBBackend(SourceSpec("lake", "duckdb", options))
    yield backend, source_profile(DuckDBBackend, options)
    backend.close()


def rewrite(sql, backend, profile):
    return PolicyRewriter(lambda: (FILTER,)).rewrite(BOB, plan_sql(sql, "duckdb", "lake"), lambda source: backend,
                                                      "main", lambda: profile)


def test_views_are_looked_through_to_the_depth_limit_and_no_further(chain):
    backend, profile = chain
    assert rewrite(f"SELECT * FROM v{MAX_VIEW_DEPTH}", backend, profile) is None
    with pytest.raises(ForbiddenError, match=f"lake.main.v{MAX_VIEW_DEPTH + 1} reads views more than "
                                             f"{MAX_VIEW_DEPTH} deep"):
        rewrite(f"SELECT * FROM v{MAX_VIEW_DEPTH + 1}", backend, profile)


class Circular(BackendDefaults):
    """Two views reading each other, as no engine here lets anyone define them (each binds its query first)."""

    dialect = "duckdb"

    def list_tables(self, db_schema=None):
        return [TableInfo("main", "a", "VIEW"), TableInfo("main", "b", "VIEW")]

    def view_definition(self, db_schema, view):
        return {"a": "SELECT * FROM b", "b": "SELECT * FROM a"}[view]

    def get_schema(self, plan):
        """Each view describes (a refused view is described, to tell a broken one from one that reads)."""
        return pa.schema([("id", pa.int64())])


def test_a_view_reading_itself_is_refused():
    profile = source_profile(DuckDBBackend, {})
    with pytest.raises(ForbiddenError, match="lake.main.a -> lake.main.b -> lake.main.a reads itself"):
        rewrite("SELECT * FROM a", Circular(), profile)
