"""Which rows of the ``system`` catalog's log tables a query can need, read from its own WHERE clause.

Each query of the ``system`` catalog runs on Arrow snapshots of the catalog's tables; the history and the audit
trail grow with every query, so a whole snapshot of them per query would cost minutes and gigabytes on a busy
gateway. Where a query reads such a table once, from a SELECT with no join, the top-level conjuncts of that
SELECT's WHERE that compare one of its columns with a constant narrow the snapshot too: ``created_at`` from below
(``>``, ``>=``, ``BETWEEN``; the constant evaluated by DuckDB itself, ``now() - INTERVAL 1 HOUR`` included) and a
few text columns for equality with a string or ``IN`` a list of strings. DuckDB still applies the whole WHERE to
the snapshot, so a predicate left alone costs nothing but rows; one taken must keep every row the query could keep:

- the table is referenced once (a self-join or a second reference in a union reads all of it), not shadowed by
  a CTE of its name, from the SELECT's own FROM, with no join beside it;
- only AND-ed conjuncts at the top of that SELECT's WHERE (never under OR, NOT or CASE);
- a bound from below only: ``now()`` is evaluated before the query runs, so a lower bound keeps a few more rows
  than the query will, where an upper bound would keep fewer;
- constants of literals, casts, intervals, ``+``/``-``, ``now()``/``current_timestamp``/``current_date`` and
  ``date_trunc`` alone (no parameter, column, subquery or volatile function);
- never through a sample (``USING SAMPLE``: the filter would change what is sampled), a pivot, or columns
  renamed by the alias (``AS h(a, b)``).

When every conjunct of that WHERE was taken (or there is none) and the SELECT is a plain one (no aggregate,
window, DISTINCT, GROUP BY, HAVING or QUALIFY) ordered first by ``created_at DESC`` with a literal ``LIMIT`` (and
``OFFSET``), only the newest ``LIMIT + OFFSET`` rows can reach the answer: ``Narrowing.newest`` says how many, and
the reader keeps every row at least as new as the last of them (ties included, whatever the other sort keys).

A query that still needs more than ``system_table_rows`` rows of a log table is refused with the limit named
(``SystemBackend``), before anything is read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table
from sqlglot import exp

log = logging.getLogger(__name__)

#: Text columns compared for equality with a string literal, per log table.
_EQUAL_COLUMNS: Mapping[str, frozenset[str]] = {
    "query_history": frozenset({"user_name", "status", "source_name", "sql_sha256", "correlation_id"}),
    "audit_events": frozenset({"kind", "actor", "subject"}),
}
#: Nodes a constant bound may be built of (DuckDB evaluates it, ``constant``).
_CONSTANT_NODES = (exp.Literal, exp.Cast, exp.Interval, exp.Add, exp.Sub, exp.Paren, exp.Neg, exp.DataType,
                   exp.Var, exp.CurrentTimestamp, exp.CurrentDate, exp.DateTrunc, exp.TimestampTrunc)
#: Functions sqlglot leaves unnamed that a constant bound may call (the query's start time).
_CONSTANT_FUNCTIONS = frozenset({"now", "get_current_timestamp"})
_FLIPPED = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE, exp.EQ: exp.EQ}


@dataclass
class Narrowing:
    """What of one log table a query can need: rows meeting ``conditions``, only the ``newest`` of them if set."""

    conditions: list[ColumnElement[bool]] = field(default_factory=list)
    newest: int | None = None


def pushed_down(tree: exp.Expression | None, tables: Mapping[str, Table],
                constant: Callable[[str], datetime | None]) -> dict[str, Narrowing]:
    """How each of ``tables`` (system name -> catalog table) may be narrowed for the query sqlglot read as ``tree``.

    ``constant`` evaluates a constant SQL expression as a timestamp with time zone in the query's own engine (None
    when it cannot). A query sqlglot could not read (``tree`` None: the plan's) narrows nothing.
    """
    if tree is None:
        return {}
    references = [t for t in tree.find_all(exp.Table)]
    shadowed = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    found: dict[str, Narrowing] = {}
    for name, table in tables.items():
        mine = [t for t in references if t.name.lower() == name]
        if len(mine) != 1 or name in shadowed:
            continue
        try:
            narrowing = _narrowing(mine[0], name, table, constant)
        except Exception:  # noqa: BLE001 - a tree of a shape not foreseen narrows nothing; the query still runs
            log.debug("no narrowing of %s for a query sqlglot read in an unforeseen shape", name, exc_info=True)
            continue
        if narrowing is not None:
            found[name] = narrowing
    return found


def _narrowing(reference: exp.Table, name: str, table: Table,
               constant: Callable[[str], datetime | None]) -> Narrowing | None:
    select = _sole_source_of(reference)
    if select is None:
        return None
    names = {name, reference.alias_or_name.lower()}
    terms = _conjuncts(select)
    conditions = [c for term in terms if (c := _condition(term, name, table, names, constant)) is not None]
    newest = _newest(select, names) if len(conditions) == len(terms) else None
    return Narrowing(conditions, newest) if conditions or newest is not None else None


def _newest(select: exp.Select, names: set[str]) -> int | None:
    """LIMIT + OFFSET of a plain SELECT ordered first by ``created_at DESC`` (None when it is not one)."""
    order, limit = select.args.get("order"), select.args.get("limit")
    if order is None or limit is None or not order.expressions:
        return None
    first = order.expressions[0]
    if not first.args.get("desc") or _column_of(first.this, names) != "created_at":
        return None
    if any(select.args.get(k) for k in ("distinct", "group", "having", "qualify", "windows")) or any(
            node.find(exp.AggFunc, exp.Window) for node in (*select.expressions, *order.expressions)):
        return None
    count = _literal_int(limit.expression)
    offset = select.args.get("offset")
    skipped = 0 if offset is None else _literal_int(offset.expression)
    return None if count is None or skipped is None else count + skipped


def _literal_int(node: exp.Expression | None) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    return None


def _sole_source_of(reference: exp.Table) -> exp.Select | None:
    """The SELECT whose FROM is ``reference`` alone (no join, no other source), or None."""
    source = reference.parent
    select = source.parent if isinstance(source, exp.From) else None
    if not isinstance(select, exp.Select) or any(select.args.get(k) for k in ("joins", "laterals", "sample")):
        return None
    if any(reference.args.get(k) for k in ("joins", "laterals", "sample", "pivots")) \
            or not isinstance(reference.this, exp.Identifier):
        return None
    alias = reference.args.get("alias")
    if alias is not None and alias.columns:  # ``AS h(a, b)`` renames the columns: names no longer say which
        return None
    return select


def _conjuncts(select: exp.Select) -> list[exp.Expression]:
    where = select.args.get("where")
    if where is None:
        return []
    return list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]


def _condition(term: exp.Expression, name: str, table: Table, names: set[str],
               constant: Callable[[str], datetime | None]) -> ColumnElement[bool] | None:
    term = term.unnest()
    if isinstance(term, exp.Between):
        column, low = term.this, term.args.get("low")
        if _column_of(column, names) == "created_at" and low is not None:
            bound = _bound(low, constant)
            return None if bound is None else table.c.created_at >= bound
        return None
    if isinstance(term, exp.In):
        column, values = _column_of(term.this, names), term.expressions
        if column in _EQUAL_COLUMNS.get(name, ()) and values and not term.args.get("query") \
                and all(isinstance(v, exp.Literal) and v.is_string for v in values):
            return table.c[column].in_([v.this for v in values])
        return None
    if type(term) not in _FLIPPED:
        return None
    left, right, kind = term.this, term.expression, type(term)
    if _column_of(left, names) is None:
        left, right, kind = right, left, _FLIPPED[kind]
    column = _column_of(left, names)
    if column == "created_at" and kind in (exp.GT, exp.GTE):
        bound = _bound(right, constant)
        if bound is None:
            return None
        return table.c.created_at > bound if kind is exp.GT else table.c.created_at >= bound
    if column in _EQUAL_COLUMNS.get(name, ()) and kind is exp.EQ and isinstance(right, exp.Literal) \
            and right.is_string:
        return table.c[column] == right.this
    return None


def _column_of(node: exp.Expression, names: set[str]) -> str | None:
    """The column ``node`` names, when it is a bare column of the table (by its name or alias)."""
    if not isinstance(node, exp.Column) or (node.table and node.table.lower() not in names):
        return None
    if node.args.get("db") or node.args.get("catalog"):
        return None
    return node.name.lower()


def _bound(node: exp.Expression, constant: Callable[[str], datetime | None]) -> Any:
    if not all(isinstance(part, _CONSTANT_NODES) or _constant_function(part) for part in node.walk()):
        return None
    return constant(node.sql(dialect="duckdb"))


def _constant_function(node: exp.Expression) -> bool:
    return isinstance(node, exp.Anonymous) and node.name.lower() in _CONSTANT_FUNCTIONS and not node.expressions
