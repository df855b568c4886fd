"""Splitting a scan of files into groups of files, one endpoint each, so that clients fetch them in parallel.

Only a query whose result is the union of its results over any split of its table's rows splits: one table, no
join, subquery, set operation, aggregate, window, DISTINCT, GROUP BY, ORDER BY, LIMIT or OFFSET. Its rows then
come out the same, as a multiset, whether read whole or group by group.
"""

from __future__ import annotations

from sqlglot import exp

from nexus_flight.core.plan import QueryPlan

#: Clauses after which rows depend on other rows (or on their order).
_ROW_DEPENDENT = ("with", "joins", "laterals", "group", "having", "order", "limit", "offset", "distinct", "qualify",
                  "windows", "connect", "match", "pivots", "sample", "settings", "locks")


def splits_by_rows(plan: QueryPlan) -> bool:
    """Whether the result of ``plan`` is the union of its results over groups of its one table's files."""
    query = plan.query
    if not isinstance(query, exp.Select) or plan.keyword != "select" or plan.tree is not query:
        return False
    if any(query.args.get(clause) for clause in _ROW_DEPENDENT):
        return False
    source = query.args.get("from_") or query.args.get("from")
    if not isinstance(source, exp.From) or not isinstance(source.this, exp.Table):
        return False
    if source.this.args.get("pivots") or source.this.args.get("sample"):
        return False
    for node in query.walk():
        if node is query:
            continue
        if isinstance(node, exp.Select | exp.Subquery | exp.SetOperation | exp.AggFunc | exp.Window | exp.Unnest):
            return False
    return True


def file_group(count: int, index: int, files: list) -> list:
    """The files of group ``index`` of ``count`` (every ``count``-th file: groups of even size)."""
    return files[index::count]
