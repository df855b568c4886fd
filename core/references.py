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
each table of its scope. A column of a derived table or a CTE is attributed inside that query, where it is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, traverse_scope

#: A time-travel suffix (lake families): ``orders@v3``, ``orders@2026-11-23T12:00:00Z``.
_AT = re.compile(r"^(?P<table>.+)@(?P<at>[^@]+)$")


@dataclass(frozen=True)
class TableRef:
    """A table or view a query reads, named as the query wrote it (case as written, quotes removed).

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

    """

    name: str
    table: TableRef | None = None
    candidates: tuple[TableRef, ...] = ()


@dataclass(frozen=True)
class References:
    """What a query reads: tables, table functions (lower-case names) and columns, each once (scope by scope)."""

    tables: tuple[TableRef, ...] = ()
    functions: tuple[str, ...] = ()
    columns: tuple[ColumnRef, ...] = ()


def table_ref(node: exp.Table) -> TableRef:
    """The reference of one table node."""
    return TableRef(node.name, node.db or None, node.catalog or None)


def references(tree: exp.Expression | None) -> References:
    """Return the tables, table functions and columns ``tree`` reads (nothing for None)."""
    if tree is None:
        return References()
    functions = _table_functions(tree)
    try:
        scopes = list(traverse_scope(tree))
    except (SqlglotError, RecursionError, KeyError, AttributeError, ValueError):
        scopes = []
    if not scopes:
        named = dict.fromkeys(table_ref(t) for t in tree.find_all(exp.Table) if _named(t))
        return References(tuple(named), functions)
    tables: dict[TableRef, None] = {}
    columns: dict[ColumnRef, None] = {}
    placed: set[int] = set()
    for scope in scopes:
        for node in scope.tables:
            placed.add(id(node))
            if _named(node) and not isinstance(scope.sources.get(node.alias_or_name), Scope):
                tables[table_ref(node)] = None
        for column in _columns(scope, _relations(scope)):
            columns[column] = None
    for node in tree.find_all(exp.Table):  # outside every scope sqlglot knows: kept, to name too many never too few
        if id(node) not in placed and _named(node):
            tables[table_ref(node)] = None
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
    if tree.find(exp.Unnest) is not None:
        names["unnest"] = None
    return tuple(names)


def _relations(scope: Scope) -> dict[str, TableRef | None]:
    """Each relation a scope selects from, by name or alias: its table, or None (CTE, derived table, function)."""
    relations: dict[str, TableRef | None] = {}
    for name, (_, source) in scope.selected_sources.items():
        if isinstance(source, exp.Table) and _named(source):
            relations[name] = table_ref(source)
        else:
            relations[name] = None
    return relations


def _columns(scope: Scope, relations: dict[str, TableRef | None]) -> list[ColumnRef]:
    found: list[ColumnRef] = []
    tables = tuple(ref for ref in relations.values() if ref is not None)
    only = tables[0] if len(relations) == 1 and tables else None
    for column in scope.columns:
        qualifier = column.table
        if qualifier:
            if qualifier in relations:
                ref = relations[qualifier]
                if ref is not None:
                    found.append(ColumnRef(column.name, ref))
            continue
        if only is not None:
            found.append(ColumnRef(column.name, only))
        elif tables:
            found.append(ColumnRef(column.name, None, tables))
    if isinstance(scope.expression, exp.Select):
        for projection in scope.expression.expressions:
            if isinstance(projection, exp.Star):
                found += [ColumnRef("*", ref) for ref in tables]
            elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                ref = relations.get(projection.table)
                if ref is not None:
                    found.append(ColumnRef("*", ref))
    return found
