"""Which tables, table functions and columns a parsed query reads, scope by scope.

A table is every relation the query reads from a catalog: a name in FROM or JOIN anywhere (subqueries, set
operations, CTE bodies, derived tables, LATERAL) that is not a CTE of an enclosing WITH, a table function
or a derived table. CTE names follow SQL's scoping: a CTE is visible in the query its WITH belongs to and in
the CTEs after it (all of them in a ``WITH RECURSIVE``), so ``(WITH orders AS (...) SELECT ... FROM orders)``
shadows ``orders`` inside its parentheses only. Scopes come from sqlglot's scope analysis; a tree it cannot
analyse (a statement that is not a plain query, e.g. DuckDB's PIVOT statement, or one nested too deeply) falls
back to every named table in the tree, CTE references included: more names, never fewer.

A column is every column reference, attributed to its table when the query says which: a qualifier naming a
table (or its alias) of the same scope, or the only relation of its scope; ``*`` stands for every column of
each table of its scope (less the names of its ``EXCLUDE``), and so does a star or ``COLUMNS(...)`` elsewhere (inside
a function call) and a ``NATURAL`` join; a ``USING`` column may belong to any table of its scope, and so may a
column whose qualifier names no relation of its scope (a struct field of a column, or a mistake: more names, never
fewer). A column of a derived table or a CTE is attributed inside that query, where it is read. Where sqlglot cannot
analyse scopes, the columns are unknown and ``References.complete`` is False.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, traverse_scope

from nexus_flight.core.identifiers import CASE_INSENSITIVE, IdentifierRules

#: A time-travel suffix (lake families): ``orders@v3``, ``orders@2026-11-23T12:00:00Z``.
_AT = re.compile(r"^(?P<table>.+)@(?P<at>[^@]+)$")


@dataclass(frozen=True)
class TableRef:
    """A table or view a query reads, named as its engine resolves it (``core/identifiers.py``, quotes removed).

    Where the engine folds unquoted names (PostgreSQL) they are folded; elsewhere case stays as written.

    Attributes:
        name: The table's name as the engine is asked for it (``orders@v3`` included).
        db_schema: The schema part, if written.
        catalog: The catalog part left in the SQL the source receives (the source's own database), if any.

    """

    name: str
    db_schema: str | None = None
    catalog: str | None = None

    @property
    def base_name(self) -> str:
        """The name without a time-travel suffix (``orders`` for ``orders@v3``)."""
        match = _AT.match(self.name)
        return match["table"] if match else self.name

    @property
    def version(self) -> str | None:
        """What follows ``@`` in a time-travel name (``v3``), else None."""
        match = _AT.match(self.name)
        return match["at"] if match else None


@dataclass(frozen=True)
class ColumnRef:
    """A column a query reads.

    Attributes:
        name: The column's name as written; ``*`` for every column of ``table``.
        table: The table it belongs to; None when only the tables' schemas could tell (several relations in its
            scope and no qualifier), then it is one of ``candidates``.
        candidates: For an unattributed column, the tables of its scope it may belong to.
        excluded: For ``*``, the columns its ``EXCLUDE`` names.
        outer: Tables of enclosing scopes an unqualified column may resolve to.
        inner_known: Whether only tables (no derived table or CTE) make up the column's own scope.

    """

    name: str
    table: TableRef | None = None
    candidates: tuple[TableRef, ...] = ()
    #: For ``*``: the column names its ``EXCLUDE`` leaves out (as written).
    excluded: tuple[str, ...] = ()
    #: For an unqualified column of a subquery: the tables of enclosing queries it may belong to when the tables of
    #: its own scope (``table`` or ``candidates``) have no column of that name (SQL resolves it outwards).
    outer: tuple[TableRef, ...] = ()
    #: Whether every relation of its scope is a table (so their schemas tell whether the column is theirs).
    inner_known: bool = True


@dataclass(frozen=True)
class References:
    """What a query reads: tables, table functions (lower-case names) and columns, each once (scope by scope).

    ``complete`` is False when sqlglot could not analyse the scopes: then ``columns`` is empty, not known.
    """

    tables: tuple[TableRef, ...] = ()
    functions: tuple[str, ...] = ()
    columns: tuple[ColumnRef, ...] = ()
    complete: bool = True


def table_ref(node: exp.Table, rules: IdentifierRules = CASE_INSENSITIVE) -> TableRef:
    """The reference of one table node, its names resolved by the engine's ``rules``."""
    return TableRef(rules.resolved(node.this), rules.resolved(node.args.get("db")) or None,
                    rules.resolved(node.args.get("catalog")) or None)


def cte_references(tree: exp.Expression) -> set[int]:
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


def references(tree: exp.Expression | None, rules: IdentifierRules = CASE_INSENSITIVE) -> References:
    """Return the tables, table functions and columns ``tree`` reads (nothing for None).

    Names are resolved by the engine's identifier ``rules`` (PostgreSQL folds unquoted names to lower case).
    """
    if tree is None:
        return References()
    functions = _table_functions(tree)
    try:
        scopes = list(traverse_scope(tree))
    except (SqlglotError, RecursionError, KeyError, AttributeError, ValueError):
        scopes = []
    if not scopes:
        named = dict.fromkeys(table_ref(t, rules) for t in tree.find_all(exp.Table) if _named(t))
        return References(tuple(named), functions, complete=tree.find(exp.Column, exp.Star, exp.Columns) is None)
    tables: dict[TableRef, None] = {}
    columns: dict[ColumnRef, None] = {}
    placed: set[int] = set()
    by_expression: dict[int, Scope] = {}
    in_scope: dict[int, dict[str, TableRef | None]] = {}
    seen: set[int] = set()  # the columns sqlglot places in a scope (others may be references to output aliases)
    for scope in scopes:
        by_expression[id(scope.expression)] = scope
        relations = in_scope[id(scope.expression)] = _relations(scope, rules)
        seen.update(id(column) for column in scope.columns)
        for node in scope.tables:
            placed.add(id(node))
            if _named(node) and not isinstance(scope.sources.get(node.alias_or_name), Scope):
                tables[table_ref(node, rules)] = None
        for column in _stars_and_joins(scope, relations, rules):
            columns[column] = None
    for node in tree.find_all(exp.Table):  # outside every scope sqlglot knows: kept, to name too many never too few
        if id(node) not in placed and _named(node):
            tables[table_ref(node, rules)] = None
    for column_node in tree.find_all(exp.Column):  # every column node, not only those sqlglot lists (it skips some)
        for column in _column(column_node, id(column_node) in seen, by_expression, in_scope, rules):
            columns[column] = None
    for column in _stars_elsewhere(tree, in_scope):
        columns[column] = None
    return References(tuple(tables), functions, tuple(columns))


def _named(node: exp.Table) -> bool:
    """A table node that names a relation (not a table function, not a file path literal)."""
    return isinstance(node.this, exp.Identifier) and bool(node.name)


def _table_functions(tree: exp.Expression) -> tuple[str, ...]:
    names: dict[str, None] = {}
    for node in tree.find_all(exp.Table):
        call = node.this
        if isinstance(call, exp.Func):
            names[(call.name if isinstance(call, exp.Anonymous) else call.sql_name()).lower()] = None
        elif not isinstance(call, exp.Identifier) and call is not None:  # a path or expression read as a table
            names[call.sql()] = None
    if tree.find(exp.Unnest) is not None:
        names["unnest"] = None
    return tuple(names)


def _relations(scope: Scope, rules: IdentifierRules) -> dict[str, TableRef | None]:
    """Each relation a scope selects from, by name or alias: its table, or None (CTE, derived table, function)."""
    relations: dict[str, TableRef | None] = {}
    for name, (_, source) in scope.selected_sources.items():
        if isinstance(source, exp.Table) and _named(source):
            relations[name] = table_ref(source, rules)
        else:
            relations[name] = None
    return relations


def _innermost(node: exp.Expression, by_expression: dict[int, Scope]) -> Scope | None:
    parent = node.parent
    while parent is not None and id(parent) not in by_expression:
        parent = parent.parent
    return by_expression[id(parent)] if parent is not None else None


def _column(node: exp.Column, listed: bool, by_expression: dict[int, Scope],
            in_scope: dict[int, dict[str, TableRef | None]], rules: IdentifierRules) -> list[ColumnRef]:
    """The references one column node stands for, resolved from its innermost scope outwards.

    Qualifiers are matched as sqlglot's scopes name relations; the column's own name is resolved by ``rules``.
    """
    if isinstance(node.this, exp.Star) or isinstance(node.parent, exp.Star) and node.arg_key in ("except", "except_"):
        return []  # a qualified star (counted with its scope) or a name EXCLUDE leaves out
    scope = _innermost(node, by_expression)
    if scope is None:
        return []
    qualifier, name = node.table, rules.resolved(node.this)
    if not qualifier and not listed and isinstance(scope.expression, exp.Select) and name in {
            e.alias for e in scope.expression.expressions if isinstance(e, exp.Alias)}:
        return []  # ORDER BY/GROUP BY naming an output column
    if qualifier:
        outer: Scope | None = scope
        while outer is not None:
            relations = in_scope[id(outer.expression)]
            if qualifier in relations:
                ref = relations[qualifier]
                return [ColumnRef(name, ref)] if ref is not None else []
            outer = outer.parent
        tables = _tables_of(in_scope[id(scope.expression)])  # no relation of that name: a field of a column so named
        field_of = rules.resolved(node.args.get("table"))
        return [ColumnRef(field_of, None, tables), ColumnRef(name, None, tables)] if tables else []
    relations = in_scope[id(scope.expression)]
    tables = _tables_of(relations)
    enclosing: list[TableRef] = []
    parent = scope.parent
    while parent is not None:
        enclosing += _tables_of(in_scope[id(parent.expression)])
        parent = parent.parent
    known = all(ref is not None for ref in relations.values())
    if len(relations) == 1 and tables:
        return [ColumnRef(name, tables[0], outer=tuple(enclosing), inner_known=known)]
    if tables or enclosing:
        return [ColumnRef(name, None, tables, outer=tuple(enclosing), inner_known=known)]
    return []


def _tables_of(relations: dict[str, TableRef | None]) -> tuple[TableRef, ...]:
    return tuple(ref for ref in relations.values() if ref is not None)


def _stars_and_joins(scope: Scope, relations: dict[str, TableRef | None],
                     rules: IdentifierRules) -> list[ColumnRef]:
    """The stars of a scope's projections and the columns its NATURAL and USING joins compare."""
    found: list[ColumnRef] = []
    tables = _tables_of(relations)
    if isinstance(scope.expression, exp.Select):
        for projection in scope.expression.expressions:
            if isinstance(projection, exp.Star):
                found += [ColumnRef("*", ref, excluded=_excluded(projection, rules)) for ref in tables]
            elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                ref = relations.get(projection.table)
                if ref is not None:
                    found.append(ColumnRef("*", ref, excluded=_excluded(projection.this, rules)))
        for join in scope.expression.args.get("joins") or ():
            if join.args.get("method", "").upper() == "NATURAL" or join.args.get("kind", "").upper() == "NATURAL":
                found += [ColumnRef("*", ref) for ref in tables]  # joined on every column of the same name
            for name in join.args.get("using") or ():
                if tables:
                    found.append(ColumnRef(rules.resolved(name), None, tables))
    return found


def _excluded(star: exp.Star, rules: IdentifierRules) -> tuple[str, ...]:
    names = star.args.get("except_") or star.args.get("except") or ()
    return tuple(rules.resolved(node.this if isinstance(node, exp.Column) else node) for node in names)


def _projection(node: exp.Expression) -> bool:
    return isinstance(node.this if isinstance(node, exp.Column) else node, exp.Star) and isinstance(
        node.parent, exp.Select) and node.arg_key == "expressions"


def _stars_elsewhere(tree: exp.Expression, in_scope: dict[int, dict[str, TableRef | None]]) -> list[ColumnRef]:
    """Stars that are no projection (``struct_pack(*)``, ``COLUMNS(...)``): every column of their scope's tables."""
    found: list[ColumnRef] = []
    for node in tree.find_all(exp.Star, exp.Columns):
        parent = node.parent
        wrapped = isinstance(parent, exp.Column) and _projection(parent)
        if isinstance(parent, exp.Count) or _projection(node) or wrapped:
            continue  # count(*) reads no column; a projection star was counted with its scope
        qualifier = parent.table if isinstance(parent, exp.Column) else ""
        while parent is not None and id(parent) not in in_scope:
            parent = parent.parent
        relations = in_scope[id(parent)] if parent is not None else {}
        found += [ColumnRef("*", ref) for name, ref in relations.items()
                  if ref is not None and (not qualifier or qualifier == name)]
    return found
