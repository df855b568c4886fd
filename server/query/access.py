"""Who is asking, and what they may see: the one place access is decided, for queries and metadata alike.

Authentication (``server/flight/auth.py``) turns a caller's credentials into a ``Principal``; the principal
travels with the session, the prepared statements and tickets, and into history. An ``AccessPolicy`` answers
the two questions every path asks:

- which sources (catalogs) may this principal see? Asked by the query path before routing (a source it may
  not see is as unknown as one that does not exist) and by the metadata commands (GetCatalogs, GetDbSchemas,
  GetTables, keys, session options);
- may it read these tables and columns? Asked by the query path with the plan's tables and columns
  (``QueryPlan.tables``/``columns``: CTEs, subqueries, set operations and time-travel names resolved, see
  ``core/references.py``), and by GetTables for each table it would list.

``AllowAll`` (the default) answers yes to both without looking at the plan, so it costs nothing per query. A
policy refuses a query with ``ForbiddenError`` (PERMISSION_DENIED), naming what may not be read; it never says
whether a source it hides exists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from nexus_flight.core.errors import ForbiddenError
from nexus_flight.core.identifiers import CASE_INSENSITIVE, IdentifierRules
from nexus_flight.core.plan import ColumnRef, QueryPlan, TableRef
from nexus_flight.server.query.authorization import QueryAccess
from nexus_flight.server.query.principal import Principal


class AccessPolicy:
    """What a principal may see and read; this base class allows everything (subclass and override).

    Implementations must be thread-safe and fast: ``may_read`` runs for every query a policy does not wave
    through in ``check_query``.
    """

    def visible_sources(self, principal: Principal, sources: Sequence[str]) -> list[str]:
        """Return the sources of ``sources`` that ``principal`` may see, in the same order."""
        return list(sources)

    def may_read(
        self, principal: Principal, source: str, tables: Sequence[TableRef], columns: Sequence[ColumnRef] = ()
    ) -> bool:
        """Tell whether ``principal`` may read these tables and columns of ``source``."""
        return True

    def readable_columns(self, principal: Principal, source: str, db_schema: str | None,
                         table: str) -> frozenset[str] | None:
        """The columns of a table ``principal`` may read and see in metadata, by ``identifiers(source).key``.

        None: every one.
        """
        return None

    def identifiers(self, source: str) -> IdentifierRules:
        """How ``source``'s engine compares names (``core/identifiers.py``)."""
        return CASE_INSENSITIVE

    def reads_plans(self, principal: Principal, home: str) -> bool:
        """Whether ``check_query`` or the policies read the tables of ``principal``'s plans on source ``home``.

        Routing then reads sqlglot's tree at once instead of first deciding a plain statement on its engine's
        reading alone (``home``: where a statement naming no source runs, the only plans so decided).
        """
        return True

    def check_query(self, principal: Principal, plan: QueryPlan) -> None:
        """Refuse a planned query that reads what ``principal`` may not.

        Raises:
            ForbiddenError: a table or column of the plan may not be read.

        """
        if not self.may_read(principal, plan.source, plan.tables, plan.columns):
            names = ", ".join(t.name for t in plan.tables) or "its tables"
            raise ForbiddenError(f"{principal.name} may not read {names} of {plan.source}", source=plan.source)


class AllowAll(AccessPolicy):
    """Every principal sees every source and reads everything (no authorization is configured)."""

    def reads_plans(self, principal: Principal, home: str) -> bool:
        """Never: nothing is checked."""
        return False

    def check_query(self, principal: Principal, plan: QueryPlan) -> None:
        """Allow without looking at the plan's tables (they are worked out only when asked for)."""
        return None


class GrantedAccess(AccessPolicy):
    """The grants (``server/security``, through ``QueryAccess``) as this module's policy; none installed: allow all.

    Args:
        grants: Returns the installed grants, or None (authentication off); asked on every decision, so grants
            installed after the service was built apply.
        default_schema: The schema a source's unqualified table names resolve to.
        table_columns: A table's column names (source, schema, table), to expand ``*`` against.
        identifiers: How a source's engine compares names.

    """

    def __init__(
        self,
        grants: Callable[[], QueryAccess | None],
        default_schema: Callable[[str], str | None],
        table_columns: Callable[[str, str | None, str], Sequence[str] | None] = lambda *_: None,
        identifiers: Callable[[str], IdentifierRules] = lambda _: CASE_INSENSITIVE,
    ) -> None:
        self._grants = grants
        self._default_schema = default_schema
        self._table_columns = table_columns
        self._identifiers = identifiers

    def identifiers(self, source: str) -> IdentifierRules:
        """How ``source``'s engine compares names."""
        return self._identifiers(source)

    def visible_sources(self, principal: Principal, sources: Sequence[str]) -> list[str]:
        """The sources the grants let ``principal`` see, in the same order."""
        grants = self._grants()
        if grants is None or not principal.authenticated:
            return list(sources)
        visible = grants.visible_catalogs(principal, sources)
        return [s for s in sources if s in visible]

    def may_read(
        self, principal: Principal, source: str, tables: Sequence[TableRef], columns: Sequence[ColumnRef] = ()
    ) -> bool:
        """Whether every table shows in ``principal``'s metadata (column grants are judged per query)."""
        grants = self._grants()
        if grants is None or not principal.authenticated:
            return True
        rules = self._identifiers(source)
        return all(grants.visible(principal, source, t.db_schema, t.base_name, rules) for t in tables)

    def readable_columns(self, principal: Principal, source: str, db_schema: str | None,
                         table: str) -> frozenset[str] | None:
        """The columns the grants let ``principal`` read of a table (None: every one)."""
        grants = self._grants()
        if grants is None or not principal.authenticated:
            return None
        return grants.readable_columns(principal, source, db_schema, table, self._identifiers(source))

    def reads_plans(self, principal: Principal, home: str) -> bool:
        """Whether the grants or policies read ``principal``'s plans on ``home``.

        Only with grants installed, for a signed-in principal who is no admin, and as the grants say.
        """
        grants = self._grants()
        return (grants is not None and principal.authenticated and not principal.is_admin
                and grants.reads_plans(principal, home))

    def check_query(self, principal: Principal, plan: QueryPlan) -> None:
        """Refuse the plan when the grants refuse its statement (PERMISSION_DENIED naming the object)."""
        grants = self._grants()
        if grants is None or not principal.authenticated:
            return
        source = plan.source
        grants.check_query(principal, plan, self._default_schema(source),
                           lambda db_schema, table: self._table_columns(source, db_schema, table),
                           self._identifiers(source))
