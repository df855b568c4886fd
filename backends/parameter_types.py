"""Concrete Arrow types for ``?`` placeholders, inferred from what each one is compared with.

JDBC converts bound Java values into the server-declared parameter types and cannot bind union or null types, so
every placeholder needs a concrete type. Engines rarely report them (DuckDB says UNKNOWN), so we look at the
placeholder's neighbour in the SQL (``col = ?``, ``? BETWEEN a AND b``, ``col IN (?, ?)``, ``CAST(? AS T)``,
``LIMIT ?``) and ask the engine for that expression's type. Anything else is declared utf8, which engines cast
from on binding. The placeholders and their neighbours come from the plan's tree (``QueryPlan.placeholder_nodes``,
in the order values bind in): nothing is parsed here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import pyarrow as pa
from sqlglot import exp

from nexus_flight.core.errors import GatewayError
from nexus_flight.core.plan import QueryPlan

_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Like)
_FALLBACK = pa.utf8()

TypeProbe = Callable[[str], "pa.Schema | None"]


def quiet_probe(describe: Callable[[str], pa.Schema]) -> TypeProbe:
    """Return a probe that asks ``describe``; an expression the engine refuses tells nothing (None)."""

    def probe(sql: str) -> pa.Schema | None:
        try:
            return describe(sql)
        except GatewayError:
            return None

    return probe


def infer_parameter_types(
    plan: QueryPlan, probe: TypeProbe, wanted: Collection[int] | None = None
) -> list[pa.DataType]:
    """Return one Arrow type per placeholder of ``plan``, in the order values bind in.

    ``probe`` runs a generated query (in the plan's dialect) and returns its schema, or None when it cannot.
    Only the placeholders at the 0-based positions ``wanted`` (None: all) are probed; the others are utf8.
    """
    count = plan.parameter_count
    if count == 0:
        return []
    if plan.query is None:
        return [_FALLBACK] * count
    types = [_infer_one(p, probe, plan.dialect) if wanted is None or i in wanted else _FALLBACK
             for i, p in enumerate(plan.placeholder_nodes[:count])]
    types += [_FALLBACK] * (count - len(types))
    return types


def _neighbour(placeholder: exp.Placeholder) -> exp.Expression | None:
    parent = placeholder.parent
    if isinstance(parent, _COMPARISONS):
        other = parent.expression if parent.this is placeholder else parent.this
        return other
    if isinstance(parent, exp.In) and parent.this is not placeholder:
        return parent.this
    if isinstance(parent, exp.Between) and parent.this is not placeholder:
        return parent.this
    return None


def _infer_one(placeholder: exp.Placeholder, probe: TypeProbe, dialect: str) -> pa.DataType:
    parent = placeholder.parent
    if isinstance(parent, (exp.Limit, exp.Offset)):
        return pa.int64()
    if isinstance(parent, exp.Cast):
        schema = probe(f"SELECT CAST(NULL AS {parent.to.sql(dialect=dialect)}) AS t")
        return _from_schema(schema)
    other = _neighbour(placeholder)
    if other is None or other.find(exp.Placeholder) is not None:
        return _FALLBACK
    select = placeholder.find_ancestor(exp.Select)
    if select is None:
        return _FALLBACK
    probe_query = exp.select(other.copy().as_("t"))
    from_ = select.args.get("from_") or select.args.get("from")
    if from_ is not None:
        probe_query.set("from_", from_.copy())
    if select.args.get("joins"):
        probe_query.set("joins", [j.copy() for j in select.args["joins"]])
    with_ = tree_with(select)
    if with_ is not None:
        probe_query.set("with", with_.copy())
    if any(isinstance(p, exp.Placeholder) for p in probe_query.find_all(exp.Placeholder)):
        return _FALLBACK
    return _from_schema(probe(probe_query.sql(dialect=dialect)))


def tree_with(select: exp.Select) -> exp.With | None:
    """The WITH clause governing ``select``, if it is attached to an outer query."""
    node = select
    while node is not None:
        if node.args.get("with"):
            return node.args["with"]
        node = node.parent
    return None


def _from_schema(schema: pa.Schema | None) -> pa.DataType:
    if schema is None or len(schema) != 1:
        return _FALLBACK
    t = schema.field(0).type
    if pa.types.is_dictionary(t):
        return t.value_type
    if pa.types.is_null(t):
        return _FALLBACK
    return t
