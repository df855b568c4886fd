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
attribute the user does not have. On a source where policies apply to the caller, only the source's own tables,
and views that cannot reach a table with policies, are read as they are: a table function, a file path, or a
relation the source's metadata does not list (a system catalog's statistics) could read a filtered table's data
under another name, and is refused. A view with policies of its own is read through them like a table. Any other
view is looked through (``server/security/policy_views.py``): its definition, read from the source's metadata
(``Backend.view_definition``) and judged by the source's read-only validator, must name only tables and views
the metadata lists, recursively (at most ``MAX_VIEW_DEPTH`` views deep); the view is read as it is when none of
them has a policy that applies to the caller (an unqualified name inside a view counts every schema's policies on
it), and refused naming the first that has one. A view whose definition cannot be read or judged (a family
without ``view_definition``, a function the validator refuses, a table function, a path, another database's
name, anything unlisted) stays refused, saying why, unless the engine itself cannot describe it for the source's
login (its table dropped, a function it calls gone or not executable, its definer gone): the query then fails
with the engine's own error, and nothing is sent to run. What a view reads is reused like the other metadata
(``_METADATA_SECONDS``), and so is each rewrite. Administrators and the exempt roles read tables and views as they
are. Where the source hands a table's rows out under other names (PostgreSQL's partitions, inheritance
children and foreign tables: ``server/security/policy_lineage.py``), a partition or child is read through its
parents' policies too, and a parent whose partitions carry policies it does not, or a foreign table no policy
names, is refused, directly or inside a view (a parent read ``ONLY`` reads none of its partitions' rows, so they
do not refuse it there either). The rewritten SQL goes through the read-only validator again
before it is dispatched (the caller, ``QueryService``, routes it afresh).

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

from nexus_flight.backends.base import DATABASE_TYPE_NAME, TableInfo
from nexus_flight.backends.type_names import sql_type_name
from nexus_flight.catalog.policies import PolicyInfo, attribute_of, parse_expression
from nexus_flight.core.errors import (
    BackendError,
    ConfigError,
    ForbiddenError,
    GatewayError,
    InvalidQueryError,
    NotFoundError,
)
from nexus_flight.core.identifiers import IdentifierRules, identifier_rules, rules_of
from nexus_flight.core.plan import QueryPlan, plan_sql
from nexus_flight.core.references import cte_references, table_ref
from nexus_flight.core.source import SourceProfile
from nexus_flight.server.query.principal import Principal
from nexus_flight.server.query.table_lookup import resolved_table_schema
from nexus_flight.server.security.policy_lineage import LineageIndex, lineage_index
from nexus_flight.server.security.policy_views import PATH_CHARACTERS, ViewReach, view_reach

#: The backend of a source by name (``SourceDirectory.backend``): its metadata tells columns and views.
BackendOf = Callable[[str], Any]
#: The validator's rules of the plan's source (``SourceDirectory.route_target``), asked when a view is met.
ProfileOf = Callable[[], SourceProfile]

_PARAMETER_MARK = "__nexus_policy_parameter__"
#: Rewrites remembered per policy snapshot (the same query of the same user is rewritten once a while).
_MAX_REWRITES = 10_000
#: How long a table's columns, a schema's tables and views, what a view reads, and a rewrite made of them, are
#: reused (a view redefined, or a table replaced by a view, counts after this long at most).
_METADATA_SECONDS = 30.0
#: How long what could not be read (metadata the source did not answer) is remembered.
_RETRY_SECONDS = 1.0
#: The engine's errors that say a view cannot be read (rather than that the source cannot answer now).
_ABOUT_THE_VIEW = (InvalidQueryError, NotFoundError, ForbiddenError, BackendError)


#: Why a foreign table is refused (completes "<table> is …").
_FOREIGN = "a foreign table: what it reads cannot be seen from the source's metadata"


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
        self._rewrites: dict[tuple, tuple[float, str | GatewayError | None]] = {}
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
                default_schema: str | None, profile_of: ProfileOf | None = None) -> str | None:
        """The SQL the source must run instead of ``plan.sql`` for ``principal`` (None: no policy applies).

        ``profile_of`` gives the source's validator rules, which judge the definitions of the views a query
        reads (without it every view is refused).

        Raises:
            ForbiddenError: the policies cannot be applied with certainty (the query is refused, naming why).
            GatewayError: the engine's own error about a view the query names that it cannot read itself.

        """
        policies = self.applicable(principal, plan.source)
        if not policies:
            return None
        attributes = tuple(sorted((k, repr(v)) for k, v in principal.attributes.items()))
        key = (plan.source, plan.sql, plan.dialect, principal.name, principal.roles, attributes, default_schema,
               profile_of is not None)
        now = time.monotonic()
        kept = self._rewrites.get(key)
        if kept is not None and kept[0] > now:
            found = kept[1]
        else:
            rewrite = _Rewrite(self, principal, plan, policies, backend_of, default_schema, profile_of)
            try:
                found = rewrite.sql()
            except GatewayError as exc:  # refused, or the engine's own error about a view it cannot read
                # Kept unraised: the raised one's traceback would keep every frame of the call that made it.
                found = type(exc)(exc.message, **exc.details)
            with self._lock:
                if len(self._rewrites) >= _MAX_REWRITES:
                    self._rewrites = {}
                self._rewrites[key] = (now + (_RETRY_SECONDS if rewrite.unread else _METADATA_SECONDS), found)
        if isinstance(found, GatewayError):
            raise type(found)(found.message, **found.details)  # a fresh one: each caller adds its own context
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
              rules: IdentifierRules) -> Mapping[str, TableInfo] | None:
        """The tables and views of a schema (every schema for None), ``rules.table_key`` of a name -> as listed.

        None when the source's metadata could not be read. Where two names share a key (the engine would not
        tell them apart) a view wins: looked through or refused, never read as a table.
        """
        def read() -> Mapping[str, TableInfo]:
            found: dict[str, TableInfo] = {}
            backend = backend_of(source)
            listed = backend.list_tables(db_schema)
            if not listed and db_schema is not None and not rules.table_names_exact:
                listed = backend.list_tables(_schema_as_listed(backend, db_schema, rules))
            for info in listed:
                key = rules.table_key(info.name)
                if key not in found or found[key].table_type != "VIEW":
                    found[key] = TableInfo(info.db_schema, info.name, info.table_type.upper())
            return found

        return self._reused(("kinds", source.lower(), db_schema or "", rules), read)

    def view_reach(self, backend_of: BackendOf, source: str, view: TableInfo, profile: SourceProfile,
                   rules: IdentifierRules) -> ViewReach | None:
        """What a view reads, through its definition (``policy_views.py``); None: the metadata did not answer."""
        def read() -> ViewReach:
            backend = backend_of(source)
            return view_reach(source, view, backend, profile, rules,
                              lambda db_schema: self.kinds(backend_of, source, db_schema, rules))

        return self._reused(("view", source.lower(), view.db_schema, view.name, profile, rules), read)

    def lineage(self, backend_of: BackendOf, source: str, rules: IdentifierRules) -> LineageIndex | None:
        """The source's partitions, inheritance children and foreign tables; None: the metadata did not answer."""
        def read() -> LineageIndex:
            return lineage_index(backend_of(source).table_lineage(), rules)

        return self._reused(("lineage", source.lower(), rules), read)

    def engine_error(self, backend_of: BackendOf, source: str, view: TableInfo,
                     dialect: str) -> GatewayError | None:
        """The engine's own error describing ``SELECT *`` of ``view`` now (None: it reads, or did not answer).

        Asked only when a view cannot be looked through: one the engine cannot read either (its table dropped,
        a function it calls gone or not executable by the source's login, its definer gone) then fails the
        query with the engine's answer rather than a refusal that blames the policies. The view may be repaired
        at any time, so a rewrite that ends in the engine's error is kept only ``_RETRY_SECONDS``.
        """
        table = exp.table_(exp.to_identifier(view.name, quoted=True), db=exp.to_identifier(view.db_schema,
                                                                                           quoted=True))
        sql = exp.select("*").from_(table).sql(dialect=dialect)
        try:
            backend_of(source).get_schema(plan_sql(sql, dialect, source))
        except _ABOUT_THE_VIEW as exc:
            return exc
        except GatewayError:  # unreachable, timed out, over a limit: nothing is known about the view
            return None
        return None

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
            self._metadata[key] = (now + (_METADATA_SECONDS if found else _RETRY_SECONDS), found)
        return found


def _schema_as_listed(backend: Any, db_schema: str, rules: IdentifierRules) -> str:
    """``db_schema`` as the source lists it, for an engine that ignores the case of names: ``MAIN`` is ``main``."""
    schemas = backend.list_schemas()
    if db_schema in schemas:
        return db_schema
    return next((s for s in schemas if rules.same_table(s, db_schema)), db_schema)


def _source_rules(backend_of: BackendOf, plan: QueryPlan) -> IdentifierRules:
    """How the plan's source compares names: its backend's rules, or its dialect's when it is not served."""
    try:
        return rules_of(backend_of(plan.source))
    except GatewayError:
        return identifier_rules(plan.dialect)


class _Rewrite:
    """One rewrite of one plan for one principal."""

    def __init__(self, owner: PolicyRewriter, principal: Principal, plan: QueryPlan, policies: Sequence[PolicyInfo],
                 backend_of: BackendOf, default_schema: str | None, profile_of: ProfileOf | None) -> None:
        self.owner = owner
        self.principal = principal
        self.plan = plan
        self.backend_of = backend_of
        self.default_schema = default_schema
        self.profile_of = profile_of
        #: Whether some of the source's metadata could not be read (the verdict is then kept only shortly).
        self.unread = False
        self.rules = _source_rules(backend_of, plan)
        self.by_table: dict[str, list[PolicyInfo]] = {}
        for policy in policies:
            self.by_table.setdefault(self.rules.table_key(policy.table), []).append(policy)
        self._index: LineageIndex | None = None

    def sql(self) -> str | None:
        plan = self.plan
        if plan.query is None:
            raise _denied(f"policies apply to tables of {plan.source}, and the query cannot be read to apply them")
        if plan.tree is not plan.query:
            raise _denied(f"policies apply to tables of {plan.source}: {plan.keyword.upper() or 'this statement'} "
                          "of a query is not offered there")
        tree = plan.query.copy()
        shadowed = cte_references(tree)
        wrapped: set[tuple[str, str]] = set()
        targets = []
        for node in tree.find_all(exp.Table):
            if id(node) in shadowed:
                continue
            self._refuse_indirect_reads(node)
            policies = self._table_policies(node)
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
        if any(c in node.name for c in PATH_CHARACTERS):
            raise _denied(f"policies apply to tables of {self.plan.source}: reading {node.name!r} by path "
                          "is not offered there")

    def _refuse_unknown_relation(self, node: exp.Table) -> None:
        """Refuse a relation that is not one of the source's own tables, or a view that could read a filtered one.

        A system relation or anything the metadata does not list could read a filtered table's rows or
        statistics unfiltered; a view is read as it is only when what it reads reaches no relation with policies
        (``_refuse_view``).
        """
        ref = table_ref(node, self.rules)
        schema = ref.db_schema or self.default_schema
        listed = self.owner.kinds(self.backend_of, self.plan.source, schema, self.rules)
        self.unread |= listed is None
        info = (listed or {}).get(self.rules.table_key(ref.base_name))
        if info is not None and info.table_type == "TABLE":
            return
        shown = ".".join(p for p in (self.plan.source, schema, ref.name) if p)
        if info is None or info.table_type != "VIEW":
            raise _denied(f"policies apply to tables of {self.plan.source}, and {shown} is not a table of the "
                          "source: it could read them unfiltered")
        self._refuse_view(info, shown, known_schema=schema is not None)

    def _refuse_view(self, view: TableInfo, shown: str, known_schema: bool) -> None:
        """Refuse a view unless what it reads, to the last table, has no policy that applies to the caller."""
        source = self.plan.source
        if not known_schema or self.profile_of is None:  # which view the engine would read cannot be told
            raise _denied(f"policies apply to tables of {source}, and {shown} is a view: it could read them "
                          "unfiltered")
        try:
            profile = self.profile_of()
        except GatewayError:
            profile = None
        reach = self.owner.view_reach(self.backend_of, source, view, profile, self.rules) if profile else None
        if reach is None:
            self.unread = True
            raise _denied(f"policies apply to tables of {source}, and {shown} is a view whose definition cannot "
                          "be read now: it could read them unfiltered")
        if reach.refusal is not None:
            engine_error = self.owner.engine_error(self.backend_of, source, view, self.plan.dialect)
            if engine_error is not None:
                self.unread = True  # the view may be repaired any moment: the verdict is kept briefly
                raise engine_error
            raise _denied(f"policies apply to tables of {source}, and {shown} is a view that could read them "
                          f"unfiltered: {reach.refusal}")
        for reached in reach.relations:
            way = f" (through {', '.join(reached.through[1:])})" if len(reached.through) > 1 else ""
            if self._policies_on(reached.db_schema, reached.name):
                raise _denied(f"policies apply to tables of {source}, and {shown} is a view reading "
                              f"{reached.shown}{way}, which has policies: the view would read it unfiltered")
            parent = self._inherited_from(reached.db_schema, reached.name)
            why = (f"a partition or inheritance child of {source}.{parent[0]}.{parent[1]}, which has policies"
                   if parent is not None else self._lineage_refusal(reached.db_schema, reached.name, (),
                                                                    only=reached.only))
            if why is not None:
                raise _denied(f"policies apply to tables of {source}, and {shown} is a view reading "
                              f"{reached.shown}{way}, {why}: the view would read it unfiltered")

    def _lineage(self) -> LineageIndex:
        """The source's partitions, inheritance children and foreign tables (refused when they cannot be read)."""
        if self._index is None:
            found = self.owner.lineage(self.backend_of, self.plan.source, self.rules)
            if found is None:
                self.unread = True
                raise _denied(f"policies apply to tables of {self.plan.source}, and which of its tables read "
                              "others' rows (partitions, inheritance, foreign tables) cannot be read now")
            self._index = found
        return self._index

    def _table_policies(self, node: exp.Table) -> list[PolicyInfo]:
        """The policies a table is read through: its own, and those of every table it is a partition or child of.

        A partition holds its parent's columns and an inheritance child at least those, so the parent's filters
        and masks apply to it as written; where the table and a parent both mask a column, the table's own mask
        is applied. Refused (``_lineage_refusal``): a foreign table without policies of its own, and a table
        whose partitions or children carry policies its own do not cover (unless it is read ``ONLY``).
        """
        ref = table_ref(node, self.rules)
        db_schema = ref.db_schema or self.default_schema
        own = self._policies_on(db_schema, ref.base_name)
        index = self._lineage()
        if index.empty:
            return own
        inherited = [p for parent in index.ancestors(db_schema, ref.base_name) for p in self._policies_on(*parent)]
        why = self._lineage_refusal(db_schema, ref.base_name, own + inherited, own_policies=bool(own),
                                    only=bool(node.args.get("only")))
        if why is not None:
            shown = ".".join(p for p in (self.plan.source, db_schema, ref.name) if p)
            hint = " (a policy on the foreign table itself lets it be read through it)" if why is _FOREIGN else ""
            raise _denied(f"policies apply to tables of {self.plan.source}, and {shown} is {why}{hint}")
        masked = {self.rules.key(p.column) for p in own if p.kind == "column_mask" and p.column}
        applied = list(own)
        for policy in inherited:
            if policy not in applied and not (policy.kind == "column_mask" and policy.column
                                              and self.rules.key(policy.column) in masked):
                applied.append(policy)
        return applied

    def _lineage_refusal(self, db_schema: str | None, table: str, covered: Sequence[PolicyInfo],
                         own_policies: bool = False, only: bool = False) -> str | None:
        """Why reading a table could escape policies through the source's lineage (None: it cannot).

        The table is read through ``covered``: a partition or child below it whose policies (its own, or those
        of another table it descends from) are not all among them would be read unfiltered, and so would a
        foreign table without a policy of its own (``own_policies``), the table itself or one below it (none is
        read below a table read ``ONLY``). The answer completes "<table> is …".
        """
        index = self._lineage()
        source = self.plan.source
        if index.is_foreign(db_schema, table) and not own_policies:
            return _FOREIGN
        signatures = {_signature(p, self.rules) for p in covered}
        for child in () if only else index.descendants(db_schema, table):
            shown = f"{source}.{child[0]}.{child[1]}"
            if index.is_foreign(*child) and not self._policies_on(*child):
                return (f"a parent of the foreign table {shown}: what that reads cannot be seen from the source's "
                        "metadata")
            for holder in (child, *index.ancestors(*child)):
                if any(_signature(p, self.rules) not in signatures for p in self._policies_on(*holder)):
                    where = "" if holder == child else f" (those of {source}.{holder[0]}.{holder[1]})"
                    return (f"a parent of {shown}, a partition or inheritance child with policies{where} that "
                            "reading the parent would not apply")
        return None

    def _inherited_from(self, db_schema: str | None, table: str) -> tuple[str, str] | None:
        """The nearest table ``table`` descends from that has policies applying to the caller (None: none)."""
        return next((parent for parent in self._lineage().ancestors(db_schema, table) if self._policies_on(*parent)),
                    None)

    def _policies_on(self, db_schema: str | None, table: str) -> list[PolicyInfo]:
        """The caller's policies on a relation; without a schema, every schema's on the name: more, never fewer."""
        candidates = self.by_table.get(self.rules.table_key(table), ())
        return [p for p in candidates if not db_schema or self.rules.same_table(p.db_schema, db_schema)]

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


def _signature(policy: PolicyInfo, rules: IdentifierRules) -> tuple[str, str | None, str | None]:
    """What a policy does to the rows it reads (two policies alike in this apply alike)."""
    return policy.kind, rules.key(policy.column) if policy.column else None, policy.expression


def _generate(tree: exp.Expression, dialect: str, source: str) -> str:
    for placeholder in list(tree.find_all(exp.Placeholder)):
        if not placeholder.args.get("this"):
            placeholder.replace(exp.var(_PARAMETER_MARK))
    try:
        return tree.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE).replace(_PARAMETER_MARK, "?")
    except (SqlglotError, RecursionError):
        raise _denied(f"the query cannot be written back with the policies of {source} applied") from None
