"""Grants decide what a principal may see and read: every table and column a query references, after parsing.

The decision reads the identity snapshot (roles' grants, refreshed from the catalog), never the database, and
never the source: an object the principal may not read is refused with the same PERMISSION_DENIED whether it
exists or not, before any engine is asked, so a refusal tells nothing about what exists. Sources the principal
may not see are left out of routing altogether, so naming one reads exactly like naming one that does not exist.

What counts as a reference (found with sqlglot in the source's dialect): every table of every ``FROM``/``JOIN``,
subquery, CTE body, set operation and lateral join; a name a CTE defines is not a table. A table function
(``read_csv(...)``, ``generate_series``) needs the whole source. Where a role holds only some columns of a
table, every column the query names that could belong to it must be among them, and ``*`` (bare or qualified)
and whole-row references are refused: there is no schema to expand them against here, so the check is strict
rather than blind. ``count(*)`` reads no column. The ``system`` catalog is the administrators'.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope

from nexus_flight.catalog.grants import GrantInfo
from nexus_flight.core.errors import ForbiddenError, InvalidQueryError
from nexus_flight.core.plan import QueryPlan
from nexus_flight.server.query.principal import Principal
from nexus_flight.server.security.identities import IdentityCache
from nexus_flight.server.security.policies import BackendOf, PolicyRewriter

SYSTEM_CATALOG = "system"
#: Decisions remembered per grants snapshot (the same query of the same roles is parsed once).
_MAX_DECISIONS = 10_000


@dataclass(frozen=True)
class _Reach:
    """What a principal's grants allow on one table: everything, or these columns (lower case)."""

    columns: frozenset[str] | None


def denied(what: str) -> ForbiddenError:
    """The one refusal text, whatever the reason (no grant, no such object)."""
    return ForbiddenError(f"permission denied: no SELECT privilege on {what}")


def _same(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a.lower() == b.lower()


class GrantAccess:
    """Decides with the roles' grants of an identity snapshot (:class:`IdentityCache`)."""

    def __init__(self, identities: IdentityCache) -> None:
        self.identities = identities
        #: (roles, catalog, sql, dialect, default schema) -> the refusal (None: allowed), for one grants snapshot
        self._decisions: dict[tuple, str | None] = {}
        self._decided_for: object = None
        self.policies = PolicyRewriter(lambda: identities.policies)

    def _grants(self, principal: Principal) -> list[GrantInfo]:
        grants = self.identities.grants
        return [g for role in principal.roles for g in grants.get(role, ())]

    @staticmethod
    def _unrestricted(principal: Principal) -> bool:
        return not principal.authenticated or principal.is_admin

    # -- metadata ------------------------------------------------------------------------------------------------

    def visible_catalogs(self, principal: Principal, names: Iterable[str]) -> set[str]:
        """The catalogs among ``names`` the principal holds any grant in (``system``: admins only)."""
        names = set(names)
        if self._unrestricted(principal):
            return names
        granted = {g.catalog.lower() for g in self._grants(principal)}
        return {n for n in names if n.lower() in granted and n.lower() != SYSTEM_CATALOG}

    def visible(self, principal: Principal, catalog: str, db_schema: str | None = None,
                table: str | None = None) -> bool:
        """Whether a catalog, schema or table shows: some grant reaches it or something below it."""
        if self._unrestricted(principal):
            return True
        if catalog.lower() == SYSTEM_CATALOG:
            return False
        for grant in self._grants(principal):
            if grant.catalog.lower() != catalog.lower():
                continue
            if db_schema is not None and not _same(grant.db_schema, db_schema):
                continue
            if table is not None and not _same(grant.table, table):
                continue
            return True
        return False

    # -- queries -------------------------------------------------------------------------------------------------

    def reach(self, principal: Principal, catalog: str, db_schema: str | None, table: str) -> _Reach | None:
        """What the principal may read of a table (None: nothing)."""
        columns: set[str] = set()
        found = False
        for grant in self._grants(principal):
            if grant.catalog.lower() != catalog.lower() or not _same(grant.db_schema, db_schema):
                continue
            if grant.table is not None and grant.table.lower() != table.lower():
                continue
            if grant.db_schema is not None and db_schema is None:
                continue  # a schema grant does not reach a table whose schema is unknown
            if grant.columns is None:
                return _Reach(None)
            found = True
            columns.update(c.lower() for c in grant.columns)
        return _Reach(frozenset(columns)) if found else None

    def check_query(self, principal: Principal, catalog: str, sql: str, dialect: str,
                    default_schema: str | None) -> None:
        """Refuse a query reading a table or column the principal may not read.

        Raises:
            ForbiddenError: naming the first object refused.
            InvalidQueryError: the SQL does not parse (it was validated before: this only fails closed).

        """
        if self._unrestricted(principal):
            return
        if catalog.lower() == SYSTEM_CATALOG:
            raise denied(f"catalog {catalog}")
        grants = self.identities.grants
        if grants is not self._decided_for or len(self._decisions) >= _MAX_DECISIONS:
            self._decisions, self._decided_for = {}, grants  # grants changed (or many queries): decide afresh
        key = (principal.roles, catalog, sql, dialect, default_schema)
        if key in self._decisions:
            refusal = self._decisions[key]
        else:
            try:
                trees = [t for t in sqlglot.parse(sql, read=dialect) if t is not None]
            except sqlglot.errors.ParseError:
                raise InvalidQueryError("the query cannot be checked against the grants") from None
            refusal = None
            try:
                for tree in trees:
                    self._check_tree(principal, catalog, tree, default_schema)
            except ForbiddenError as exc:
                refusal = exc.message
            self._decisions[key] = refusal
        if refusal is not None:
            raise ForbiddenError(refusal)

    def apply_policies(self, principal: Principal, plan: QueryPlan, backend_of: BackendOf,
                       default_schema: str | None) -> str | None:
        """The SQL to run instead of the plan's, with the row filters and column masks (None: none applies)."""
        return self.policies.rewrite(principal, plan, backend_of, default_schema)

    def _check_tree(self, principal: Principal, catalog: str, tree: exp.Expression,
                    default_schema: str | None) -> None:
        defined = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        restricted: list[tuple[str, set[str], frozenset[str]]] = []  # (shown name, names it goes by, columns)
        for table in tree.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier):
                name = table.this.sql() if table.this is not None else "a table function"
                if not self._whole_source(principal, catalog):
                    raise denied(f"{catalog}: table function {name.split('(')[0].lower()}")
                continue
            name, schema = table.name, table.db or None
            if not schema and name.lower() in defined:
                continue  # a CTE's name
            shown = ".".join(p for p in (catalog, schema or default_schema, name) if p)
            reach = self.reach(principal, catalog, schema or default_schema, name)
            if reach is None:
                raise denied(f"table {shown}")
            if reach.columns is not None:
                restricted.append((shown, {name.lower(), table.alias_or_name.lower()}, reach.columns))
        if restricted:
            self._check_columns(tree, restricted)

    def _whole_source(self, principal: Principal, catalog: str) -> bool:
        return any(g.catalog.lower() == catalog.lower() and g.db_schema is None and g.table is None
                   and g.columns is None for g in self._grants(principal))

    @staticmethod
    def _check_columns(tree: exp.Expression, restricted: list[tuple[str, set[str], frozenset[str]]]) -> None:
        """Columns of column-restricted tables, each in its own scope (a subquery's names are its own).

        Every column and star of the tree is checked (not only those sqlglot attributes to a scope): each is
        placed in the innermost scope around it, and checked against the restricted tables that scope reads.
        """
        try:
            sources = {id(scope.expression): {s.lower() for s in scope.selected_sources}
                       for scope in traverse_scope(tree)}
        except Exception:  # noqa: BLE001 - sqlglot cannot scope it: every column against every table
            sources = {}

        def around(node: exp.Expression) -> list[tuple[str, set[str], frozenset[str]]]:
            parent = node.parent
            while parent is not None and id(parent) not in sources:
                parent = parent.parent
            if parent is None:
                return restricted
            return [r for r in restricted if r[1] & sources[id(parent)]]

        for star in tree.find_all(exp.Star):
            if isinstance(star.parent, exp.Count):
                continue  # count(*) reads no column
            qualifier = star.parent.table.lower() if isinstance(star.parent, exp.Column) else ""
            for shown, names, _ in around(star):
                if not qualifier or qualifier in names:
                    raise denied(f"every column of {shown} (name the granted columns instead of *)")
        for column in tree.find_all(exp.Column):
            if isinstance(column.this, exp.Star):
                continue
            qualifier, name = column.table.lower(), column.name.lower()
            for shown, names, allowed in around(column):
                if qualifier and qualifier not in names:
                    continue
                if name not in allowed:
                    raise denied(f"column {shown}.{column.name}")
