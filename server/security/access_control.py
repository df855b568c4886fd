"""Grants decide what a principal may see and read: every table and column a query references, after parsing.

The decision reads the identity snapshot (roles' grants, refreshed from the catalog), never the database, and
never the source: an object the principal may not read is refused with the same PERMISSION_DENIED whether it
exists or not, before any engine is asked, so a refusal tells nothing about what exists. Sources the principal
may not see are left out of routing altogether, so naming one reads exactly like naming one that does not exist.

What counts as a reference is the plan's (``core/references.py``, parsed once by the query pipeline): every
table of every ``FROM``/``JOIN``, subquery, CTE body, set operation and lateral join; a name a CTE defines is not
a table. A table function (``read_csv(...)``, ``generate_series``) needs the whole source. Where a role holds
only some columns of a table, every column the query names that could belong to it must be among them (an
unqualified column over several tables counts against each: strict rather than blind), and a whole-row reference
is refused. A ``*`` (bare, qualified, with ``EXCLUDE``, in a function, ``COLUMNS(...)``, a ``NATURAL`` join) is
expanded against the table's cached schema: allowed when every column it stands for is granted, else refused
naming the first that is not. An unqualified table name resolves in the source's default schema, the one its
engine resolves it in. ``count(*)`` reads no column. Schema, table and column names compare by the source
engine's identifier rules (``core/identifiers.py``): on PostgreSQL a grant on ``x`` reaches ``x`` and unquoted
``X``, never the column ``"X"``; on DuckDB, SQLite and MySQL names compare without case. A grant names objects as
the source's catalog holds them. Source (catalog) names are the gateway's own and compare without case. The
``system`` catalog is the administrators', but for its ``query_history``, which every signed-in user sees cut to
their own rows (``catalog/system_backend.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlglot import exp

from nexus_flight.catalog.grants import GrantInfo
from nexus_flight.catalog.system_tables import OWN_ROWS
from nexus_flight.core.errors import ForbiddenError, InvalidQueryError
from nexus_flight.core.identifiers import CASE_INSENSITIVE, IdentifierRules, identifier_rules
from nexus_flight.core.plan import ColumnRef, QueryPlan, TableRef
from nexus_flight.core.references import References
from nexus_flight.server.query.authorization import TableColumns
from nexus_flight.server.query.principal import Principal
from nexus_flight.server.security.identities import IdentityCache
from nexus_flight.server.security.policies import BackendOf, PolicyRewriter, ProfileOf

SYSTEM_CATALOG = "system"
#: Statements that read no table by name but may list the source's objects: a whole-source grant's only.
_LISTINGS = (exp.Show, exp.Command, exp.Pragma)
_SYSTEM_SCHEMA = "main"
#: The ``system`` tables every signed-in user sees (cut to their own rows by the system backend).
_OWN_SYSTEM_TABLES = frozenset(OWN_ROWS)


@dataclass(frozen=True)
class _Reach:
    """What a principal's grants allow on one table: everything, or these columns (keys of their names)."""

    columns: frozenset[str] | None


def denied(what: str) -> ForbiddenError:
    """The one refusal text, whatever the reason (no grant, no such object)."""
    return ForbiddenError(f"permission denied: no SELECT privilege on {what}")


def _has_column(tables: Iterable[TableRef], name: str, default_schema: str | None,
                table_columns: TableColumns, rules: IdentifierRules) -> bool:
    """Whether one of ``tables`` has a column ``name`` (by their cached schemas)."""
    for table in tables:
        names = table_columns(table.db_schema or default_schema, table.base_name) or ()
        if rules.key(name) in {rules.key(n) for n in names}:
            return True
    return False


def _within(grant: str | None, name: str | None, rules: IdentifierRules) -> bool:
    """Whether a grant's schema or table (None: any) reaches ``name`` (None: unknown, reached by any)."""
    return grant is None or name is None or rules.same_table(grant, name)


class GrantAccess:
    """Decides with the roles' grants of an identity snapshot (:class:`IdentityCache`)."""

    def __init__(self, identities: IdentityCache) -> None:
        self.identities = identities
        self.policies = PolicyRewriter(lambda: identities.policies)

    def _grants(self, principal: Principal) -> list[GrantInfo]:
        grants = self.identities.grants
        return [g for role in principal.roles for g in grants.get(role, ())]

    @staticmethod
    def _unrestricted(principal: Principal) -> bool:
        return not principal.authenticated or principal.is_admin

    # -- metadata ------------------------------------------------------------------------------------------------

    def visible_catalogs(self, principal: Principal, names: Iterable[str]) -> set[str]:
        """The catalogs among ``names`` the principal holds any grant in, and ``system`` (its own history)."""
        names = set(names)
        if self._unrestricted(principal):
            return names
        granted = {g.catalog.lower() for g in self._grants(principal)} | {SYSTEM_CATALOG}
        return {n for n in names if n.lower() in granted}

    def visible(self, principal: Principal, catalog: str, db_schema: str | None = None,
                table: str | None = None, rules: IdentifierRules = CASE_INSENSITIVE) -> bool:
        """Whether a catalog, schema or table shows: some grant reaches it or something below it.

        ``rules`` are the source engine's (``db_schema`` and ``table`` are names its catalog holds).
        """
        if self._unrestricted(principal):
            return True
        if catalog.lower() == SYSTEM_CATALOG:
            return _within(_SYSTEM_SCHEMA, db_schema, CASE_INSENSITIVE) and (
                table is None or table.lower() in _OWN_SYSTEM_TABLES)
        for grant in self._grants(principal):
            if grant.catalog.lower() != catalog.lower():
                continue
            if not _within(grant.db_schema, db_schema, rules) or not _within(grant.table, table, rules):
                continue
            return True
        return False

    def readable_columns(self, principal: Principal, catalog: str, db_schema: str | None,
                         table: str, rules: IdentifierRules = CASE_INSENSITIVE) -> frozenset[str] | None:
        """The columns of a table the principal may read, as ``rules.key`` of their names: None for every one."""
        if self._unrestricted(principal) or catalog.lower() == SYSTEM_CATALOG:
            return None
        reach = self.reach(principal, catalog, db_schema, table, rules)
        return reach.columns if reach is not None else frozenset()

    # -- queries -------------------------------------------------------------------------------------------------

    def reach(self, principal: Principal, catalog: str, db_schema: str | None, table: str,
              rules: IdentifierRules = CASE_INSENSITIVE) -> _Reach | None:
        """What the principal may read of a table (None: nothing), names compared by the engine's ``rules``."""
        columns: set[str] = set()
        found = False
        for grant in self._grants(principal):
            if grant.catalog.lower() != catalog.lower() or not _within(grant.db_schema, db_schema, rules):
                continue
            if not _within(grant.table, table, rules):
                continue
            if grant.db_schema is not None and db_schema is None:
                continue  # a schema grant does not reach a table whose schema is unknown
            if grant.columns is None:
                return _Reach(None)
            found = True
            columns.update(rules.key(c) for c in grant.columns)
        return _Reach(frozenset(columns)) if found else None

    def reads_plans(self, principal: Principal, catalog: str) -> bool:
        """Whether the plans of ``principal`` on ``catalog`` must be read (their tables and columns).

        Not for a whole-source grant (everything in it may be read) without policies that apply, except in
        ``system``, where users read their own rows only.
        """
        if self._unrestricted(principal):
            return False
        return (catalog.lower() == SYSTEM_CATALOG or not self._whole_source(principal, catalog)
                or bool(self.policies.applicable(principal, catalog)))

    def check_query(self, principal: Principal, plan: QueryPlan, default_schema: str | None,
                    table_columns: TableColumns, rules: IdentifierRules | None = None) -> None:
        """Refuse a planned query reading a table or column the principal may not read.

        Reads the plan's tables and columns (``QueryPlan.references``, worked out once per plan); a ``*`` over a
        table the principal holds only some columns of is expanded with ``table_columns`` (the schema cache).

        Raises:
            ForbiddenError: naming the first object refused.
            InvalidQueryError: the plan has no parsed query (the validator is off and sqlglot cannot parse it).

        """
        if self._unrestricted(principal):
            return
        catalog = plan.source
        if catalog.lower() != SYSTEM_CATALOG and self._whole_source(principal, catalog):
            return  # every table and column of it, whatever the plan reads: its tree is not read
        if plan.query is None:  # only with the validator off: what it reads cannot be told, so it is refused
            raise InvalidQueryError("the query cannot be checked against the grants: sqlglot cannot parse it")
        refs = plan.references
        rules = rules or identifier_rules(plan.dialect)
        if catalog.lower() == SYSTEM_CATALOG:
            self._check_system(refs)
            return
        if isinstance(plan.query, _LISTINGS):  # SHOW TABLES, PRAGMA show_tables: the source's names
            raise denied(f"{catalog}: {plan.keyword.upper() or 'this'} statements (they list the whole source)")
        for function in refs.functions:
            if function != "unnest":
                raise denied(f"{catalog}: table function {function.split('(')[0].lower()}")
        restricted: dict[TableRef, tuple[str, frozenset[str]]] = {}  # table -> (shown name, granted columns)
        for table in refs.tables:
            schema = table.db_schema or default_schema
            shown = ".".join(p for p in (catalog, schema, table.base_name) if p)
            reach = self.reach(principal, catalog, schema, table.base_name, rules)
            if reach is None:
                raise denied(f"table {shown}")
            if reach.columns is not None:
                restricted[table] = (shown, reach.columns)
        if not restricted:
            return
        if not refs.complete:
            shown = next(iter(restricted.values()))[0]
            raise denied(f"every column of {shown} (the query's columns cannot be told apart)")
        for column in refs.columns:
            inner = (column.table,) if column.table is not None else column.candidates
            for table in inner:
                if table in restricted:
                    self._check_column(column, table, restricted[table], default_schema, table_columns, rules)
            if any(t in restricted for t in column.outer) and not (
                    column.inner_known and _has_column(inner, column.name, default_schema, table_columns, rules)):
                for table in column.outer:  # SQL resolves it outwards when no table of its own scope has it
                    if table in restricted:
                        self._check_column(column, table, restricted[table], default_schema, table_columns, rules)

    def apply_policies(self, principal: Principal, plan: QueryPlan, backend_of: BackendOf,
                       default_schema: str | None, profile_of: ProfileOf | None = None) -> str | None:
        """The SQL to run instead of the plan's, with the row filters and column masks (None: none applies)."""
        return self.policies.rewrite(principal, plan, backend_of, default_schema, profile_of)

    @staticmethod
    def _check_system(refs: References) -> None:
        """A user who is no admin reads the ``system`` catalog's own-rows tables, and nothing else of it."""
        for function in refs.functions:
            raise denied(f"{SYSTEM_CATALOG}: table function {function.split('(')[0].lower()}")
        for table in refs.tables:
            schema = table.db_schema or _SYSTEM_SCHEMA
            if schema.lower() != _SYSTEM_SCHEMA or table.base_name.lower() not in _OWN_SYSTEM_TABLES:
                raise denied(f"table {SYSTEM_CATALOG}.{schema}.{table.base_name}")

    @staticmethod
    def _check_column(column: ColumnRef, table: TableRef, reach: tuple[str, frozenset[str]],
                      default_schema: str | None, table_columns: TableColumns, rules: IdentifierRules) -> None:
        shown, allowed = reach
        if column.name != "*":
            if rules.key(column.name) not in allowed:
                raise denied(f"column {shown}.{column.name}")
            return
        names = table_columns(table.db_schema or default_schema, table.base_name)
        if names is None:  # no schema to expand against: what it stands for cannot be told
            raise denied(f"every column of {shown} (name the granted columns instead of *)")
        excluded = {rules.key(name) for name in column.excluded}
        for name in names:
            if rules.key(name) not in allowed and rules.key(name) not in excluded:
                raise denied(f"column {shown}.{name}")

    def _whole_source(self, principal: Principal, catalog: str) -> bool:
        return any(g.catalog.lower() == catalog.lower() and g.db_schema is None and g.table is None
                   and g.columns is None for g in self._grants(principal))
