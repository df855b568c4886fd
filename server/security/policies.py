"""Row filters and column masks, applied by rewriting the query's sqlglot tree before any engine sees it.

Every reference to a table that has policies becomes a derived table of the same name (or alias) and the same
columns, reading the table through the policies::

    SELECT o.amount FROM orders AS o
    -> SELECT o.amount FROM (SELECT "id", NULL AS "email", ... FROM orders WHERE (region = 'EU')) AS o

Because the table itself is replaced, whatever the query does around it (aliases, subqueries, CTEs, set
operations, joins, LATERAL, ``SELECT *``, expressions, ``GROUP BY`` or functions over a masked column) reads
only the filtered rows and the masked values: there is no way to name the raw table past the rewrite. A CTE that
shadows the table's name is left alone (sqlglot's scopes tell a CTE's name from the table), while the table
inside the CTE's body is rewritten. ``{user.…}`` placeholders become SQL literals built by sqlglot.

The rewrite fails closed, with PERMISSION_DENIED naming the table, where it cannot be sure: a statement sqlglot
cannot read, a wrapped statement (``EXPLAIN``), a mask on a table whose columns are unknown, or a filter needing an
attribute the user does not have. On a source where policies apply to the caller, only the source's own tables
are read as they are: a table function, a file path, a view, or a relation the source's metadata does not list as
a table (a system catalog's statistics) could read a filtered table's data under another name, and is refused
(a view with policies of its own is read through them like a table). Administrators and the exempt roles read the
table as it is. The rewritten SQL goes through the read-only validator again before it is dispatched (the caller,
``QueryService``, routes it afresh).

Names compare by the source engine's identifier rules (``core/identifiers.py``): on PostgreSQL a policy on the
table ``orders`` applies to ``orders``, ``Orders`` and ``"orders"`` and not to a table ``"Orders"``, and a mask on
the column ``x`` masks ``x``, not ``"X"``; elsewhere names compare without case.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.optimizer.scope import Scope, traverse_scope

from nexus_flight.backends.base import DATABASE_TYPE_NAME
from nexus_flight.backends.type_names import sql_type_name
from nexus_flight.catalog.policies import PolicyInfo, attribute_of, parse_expression
from nexus_flight.core.errors import ConfigError, ForbiddenError, GatewayError
from nexus_flight.core.identifiers import IdentifierRules, identifier_rules, rules_of
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.references import table_ref
from nexus_flight.server.query.principal import Principal
from nexus_flight.server.query.table_lookup import resolved_table_schema

#: The backend of a source by name (``SourceDirectory.backend``): its metadata tells columns and views.
BackendOf = Callable[[str], Any]

_PARAMETER_MARK = "__nexus_policy_parameter__"
#: Rewrites remembered per policy snapshot (the same query of the same user is rewritten once).
_MAX_REWRITES = 10_000
#: How long a table's columns, and a schema's tables and views, are reused.
_METADATA_SECONDS = 30.0
#: Characters in a table name that make DuckDB read a file instead (``FROM "data/orders.csv"``).
_PATH_CHARACTERS = ("/", "\\", ".", ":")


def _denied(reason: str) -> ForbiddenError:
    return ForbiddenError(f"permission denied: {reason}")


class PolicyRewriter:
    """Applies the policies of a snapshot (``IdentityCache.policies``) to the plans of one principal at a time.

    Args:
        policies: Returns the current policies (asked on every query; cheap).

    """

    def __init__(self, policies: Callable[[], Sequence[PolicyInfo]]) -> None:
        self._policies = policies
        self._lock = threading.Lock()
        self._snapshot: tuple[PolicyInfo, ...] = ()
        self._read: object = None
        self._by_catalog: dict[str, tuple[PolicyInfo, ...]] = {}
        self._templates: dict[tuple[str, str], exp.Expression] = {}
        self._rewrites: dict[tuple, str | ForbiddenError | None] = {}
        self._metadata: dict[tuple, tuple[float, Any]] = {}

    def _current(self) -> Mapping[str, tuple[PolicyInfo, ...]]:
        read = self._policies()
        if read is self._read:  # the identity snapshot did not refresh since
            return self._by_catalog
        snapshot = tuple(read)
        with self._lock:
            if snapshot != self._snapshot:
                by_catalog: dict[str, list[PolicyInfo]] = {}
                for policy in snapshot:
                    by_catalog.setdefault(policy.catalog.lower(), []).append(policy)
                self._snapshot = snapshot
                self._by_catalog = {k: tuple(v) for k, v in by_catalog.items()}
                self._rewrites, self._templates = {}, {}
            self._read = read  # last: another thread sees the new snapshot's policies once it sees this
            return self._by_catalog

    def applicable(self, principal: Principal, source: str) -> tuple[PolicyInfo, ...]:
        """The policies of ``source`` that hold for ``principal`` (none for administrators and without sign-in)."""
        if not principal.authenticated or principal.is_admin:
            return ()
        found = self._current().get(source.lower(), ())
        return tuple(p for p in found if not principal.roles.intersection(p.exempt_roles))

    def rewrite(self, principal: Principal, plan: QueryPlan, backend_of: BackendOf,
                default_schema: str | None) -> str | None:
        """The SQL the source must run instead of ``plan.sql`` for ``principal`` (None: no policy applies).

        Raises:
            ForbiddenError: the policies cannot be applied with certainty (the query is refused, naming why).

        """
        policies = self.applicable(principal, plan.source)
        if not policies:
            return None
        attributes = tuple(sorted((k, repr(v)) for k, v in principal.attributes.items()))
        key = (plan.source, plan.sql, plan.dialect, principal.name, principal.roles, attributes, default_schema)
        found = self._rewrites.get(key, False)
        if found is False:
            try:
                found = _Rewrite(self, principal, plan, policies, backend_of, default_schema).sql()
            except ForbiddenError as exc:
                found = exc
            with self._lock:
                if len(self._rewrites) >= _MAX_REWRITES:
                    self._rewrites = {}
                self._rewrites[key] = found
        if isinstance(found, ForbiddenError):
            raise ForbiddenError(found.message)
        return found

    def template(self, policy: PolicyInfo, dialect: str) -> exp.Expression:
        """A policy's parsed expression in a source's dialect (kept; copy before changing it).

        Raises:
            ForbiddenError: the expression does not parse in the source's dialect (the query is refused).

        """
        key = (policy.id, dialect)
        tree = self._templates.get(key)
        if tree is None:
            try:
                tree = parse_expression(policy.expression or "NULL", dialect)
            except ConfigError:
                raise _denied(f"policy {policy.name} cannot be read in the {dialect} dialect of "
                              f"{policy.catalog}") from None
            self._templates[key] = tree
        return tree

    def columns(self, backend_of: BackendOf, source: str, db_schema: str | None,
                table: str) -> tuple[pa.Field, ...] | None:
        """A table's columns as its schema cache holds them (None: unknown), reused for a short while."""
        def read() -> tuple[pa.Field, ...] | None:
            if db_schema is None:
                return None
            schema = resolved_table_schema(backend_of(source), db_schema, table)
            return tuple(schema) if schema is not None else None

        return self._reused(("columns", source.lower(), db_schema or "", table), read)

    def kinds(self, backend_of: BackendOf, source: str, db_schema: str | None,
              rules: IdentifierRules) -> Mapping[str, str]:
        """The tables and views of a schema (every schema for None), ``rules.table_key`` of a name -> its kind.

        Where two names share a key (the engine would not tell them apart) a view wins: refused, never read.
        """
        def read() -> Mapping[str, str]:
            found: dict[str, str] = {}
            for info in backend_of(source).list_tables(db_schema):
                key = rules.table_key(info.name)
                if found.get(key) != "VIEW":
                    found[key] = info.table_type.upper()
            return found

        return self._reused(("kinds", source.lower(), db_schema or ""), read) or {}

    def _reused(self, key: tuple, read: Callable[[], Any]) -> Any:
        now = time.monotonic()
        cached = self._metadata.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            found = read()
        except GatewayError:
            found = None
        with self._lock:
            if len(self._metadata) >= _MAX_REWRITES:
                self._metadata = {}
            self._metadata[key] = (now + (_METADATA_SECONDS if found else 1.0), found)
        return found


def _source_rules(backend_of: BackendOf, plan: QueryPlan) -> IdentifierRules:
    """How the plan's source compares names: its backend's rules, or its dialect's when it is not served."""
    try:
        return rules_of(backend_of(plan.source))
    except GatewayError:
        return identifier_rules(plan.dialect)


class _Rewrite:
    """One rewrite of one plan for one principal."""

    def __init__(self, owner: PolicyRewriter, principal: Principal, plan: QueryPlan,
                 policies: Sequence[PolicyInfo], backend_of: BackendOf, default_schema: str | None) -> None:
        self.owner = owner
        self.principal = principal
        self.plan = plan
        self.backend_of = backend_of
        self.default_schema = default_schema
        self.rules = _source_rules(backend_of, plan)
        self.by_table: dict[str, list[PolicyInfo]] = {}
        for policy in policies:
            self.by_table.setdefault(self.rules.table_key(policy.table), []).append(policy)

    def sql(self) -> str | None:
        plan = self.plan
        if plan.query is None:
            raise _denied(f"policies apply to tables of {plan.source}, and the query cannot be read to apply them")
        if plan.tree is not plan.query:
            raise _denied(f"policies apply to tables of {plan.source}: {plan.keyword.upper() or 'this statement'} "
                          "of a query is not offered there")
        tree = plan.query.copy()
        shadowed = _cte_references(tree)
        wrapped: set[tuple[str, str]] = set()
        targets = []
        for node in tree.find_all(exp.Table):
            if id(node) in shadowed:
                continue
            self._refuse_indirect_reads(node)
            policies = self._matching(node)
            if policies:
                targets.append((node, policies))
            else:
                self._refuse_unknown_relation(node)
        if not targets:
            return None
        for node, policies in targets:
            if node.db:
                wrapped.add((node.db.lower(), node.name.lower()))
            node.replace(self._derived(node, policies))
        for column in tree.find_all(exp.Column):  # ``schema.table.column`` now names the derived table
            if column.args.get("db") and (column.text("db").lower(), column.table.lower()) in wrapped:
                column.set("db", None)
                column.set("catalog", None)
        return _generate(tree, plan.dialect, plan.source)

    def _refuse_indirect_reads(self, node: exp.Table) -> None:
        """Table functions and file paths could read a filtered table's data under another name: refused."""
        if not isinstance(node.this, exp.Identifier) or not node.name:
            what = node.this.sql(dialect=self.plan.dialect).split("(")[0] if node.this is not None else "?"
            raise _denied(f"policies apply to tables of {self.plan.source}: table function {what.lower()} "
                          "is not offered there")
        if any(c in node.name for c in _PATH_CHARACTERS):
            raise _denied(f"policies apply to tables of {self.plan.source}: reading {node.name!r} by path "
                          "is not offered there")

    def _refuse_unknown_relation(self, node: exp.Table) -> None:
        """Refuse a relation that is not one of the source's own tables (it could read a filtered table).

        A view, a system relation or anything the metadata does not list could read a filtered table's rows or
        statistics unfiltered.
        """
        ref = table_ref(node, self.rules)
        schema = ref.db_schema or self.default_schema
        kind = self.owner.kinds(self.backend_of, self.plan.source, schema, self.rules).get(
            self.rules.table_key(ref.base_name))
        if kind != "TABLE":
            shown = ".".join(p for p in (self.plan.source, schema, ref.name) if p)
            what = "a view" if kind == "VIEW" else "not a table of the source"
            raise _denied(f"policies apply to tables of {self.plan.source}, and {shown} is {what}: it could "
                          "read them unfiltered")

    def _matching(self, node: exp.Table) -> list[PolicyInfo]:
        ref = table_ref(node, self.rules)
        candidates = self.by_table.get(self.rules.table_key(ref.base_name), ())
        schema = ref.db_schema or self.default_schema
        # Without a schema (and no default), every schema's policies on the name apply: more, never fewer.
        return [p for p in candidates if not schema or self.rules.same_table(p.db_schema, schema)]

    def _derived(self, node: exp.Table, policies: list[PolicyInfo]) -> exp.Subquery:
        ref = table_ref(node, self.rules)
        shown = ".".join(p for p in (self.plan.source, ref.db_schema or self.default_schema, ref.name) if p)
        inner = node.copy()
        moved = {arg: inner.args.get(arg) for arg in ("joins", "laterals", "pivots") if inner.args.get(arg)}
        for arg in ("alias", *moved):
            inner.set(arg, None)
        masks = {self.rules.key(p.column): p for p in sorted(policies, key=lambda p: p.name)
                 if p.kind == "column_mask" and p.column}
        filters = [p for p in policies if p.kind == "row_filter"]
        if masks:
            fields = self.owner.columns(self.backend_of, self.plan.source, ref.db_schema or self.default_schema,
                                        ref.base_name)
            if fields is None:
                raise _denied(f"the columns of {shown} are unknown, so its column masks cannot be applied")
            projection = [
                exp.alias_(self._value(masks[self.rules.key(f.name)], f), exp.to_identifier(f.name, quoted=True))
                if self.rules.key(f.name) in masks else exp.column(exp.to_identifier(f.name, quoted=True))
                for f in fields
            ]
        else:
            projection = [exp.Star()]
        select = exp.select(*projection).from_(inner, copy=False)
        if filters:
            select = select.where(exp.and_(*(exp.paren(self._value(p), copy=False) for p in filters)), copy=False)
        alias = node.args.get("alias")
        alias = alias.copy() if alias is not None else exp.TableAlias(this=node.this.copy())
        derived = exp.Subquery(this=select, alias=alias)
        for arg, value in moved.items():
            derived.set(arg, value)
        return derived

    def _value(self, policy: PolicyInfo, column: pa.Field | None = None) -> exp.Expression:
        """A policy's expression with each ``{user.…}`` placeholder replaced by the user's value as a literal.

        A mask without an expression is NULL of the masked ``column``'s type, so that masked and unmasked callers
        get one result schema.
        """
        if policy.expression is None:
            return self._typed_null(column)
        tree = self.owner.template(policy, self.plan.dialect).copy()
        for column in list(tree.find_all(exp.Column)):
            name = attribute_of(column)
            if name is None:
                continue
            if name == "name":
                value: Any = self.principal.name
            elif name in self.principal.attributes:
                value = self.principal.attributes[name]
            else:
                raise _denied(f"policy {policy.name} on {policy.target} needs the user attribute {name!r}, "
                              f"which {self.principal.name} does not have")
            column.replace(exp.null() if value is None else exp.convert(value))
        return tree


    def _typed_null(self, column: pa.Field | None) -> exp.Expression:
        """``CAST(NULL AS <the column's type>)``, the type as the engine names it (plain NULL if it cannot be read).

        The type is the database's own name from the schema cache; where a backend names none (files, lake tables,
        run by DuckDB) it is DuckDB's name of the Arrow type.
        """
        if column is None:
            return exp.null()
        named = (column.metadata or {}).get(DATABASE_TYPE_NAME)
        type_name = named.decode() if named else (
            sql_type_name(column.type) if self.plan.dialect == "duckdb" else None)
        if not type_name:
            return exp.null()
        try:
            data_type = exp.DataType.build(type_name, dialect=self.plan.dialect, udt=True)
        except (SqlglotError, ValueError):
            return exp.null()
        return exp.Cast(this=exp.null(), to=data_type)


def _cte_references(tree: exp.Expression) -> set[int]:
    """The table nodes that name a CTE in their scope (not the table of the same name)."""
    found: set[int] = set()
    try:
        for scope in traverse_scope(tree):
            for node in scope.tables:
                if isinstance(scope.sources.get(node.alias_or_name), Scope):
                    found.add(id(node))
    except Exception:  # noqa: BLE001 - no scopes: every name is taken for the table (filtered, never escaped)
        return set()
    return found


def _generate(tree: exp.Expression, dialect: str, source: str) -> str:
    for placeholder in list(tree.find_all(exp.Placeholder)):
        if not placeholder.args.get("this"):
            placeholder.replace(exp.var(_PARAMETER_MARK))
    try:
        return tree.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE).replace(_PARAMETER_MARK, "?")
    except (SqlglotError, RecursionError):
        raise _denied(f"the query cannot be written back with the policies of {source} applied") from None
