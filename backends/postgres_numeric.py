"""The scale PostgreSQL gives numeric results whose type it reports unconstrained (``sum``, ``a * b`` ...).

PostgreSQL reports ``numeric`` without a precision for every computed numeric value, yet for most computations
over declared columns the scale of each value is fixed by its rules (``numeric.c``): ``sum``, ``min`` and ``max``
keep the argument's scale, ``+``/``-`` take the larger scale, ``*`` adds the scales, ``round(x, n)`` has scale
``n``. This module follows those rules through the query with sqlglot, so that such a column can travel as
``decimal128(38, s)`` instead of a catch-all type. Where the scale depends on the values (``avg``, ``/``,
unconstrained columns, functions it does not know) it answers None.

A wrong answer here cannot corrupt data: a value with more digits than the announced scale fails the conversion
loudly, it is never rounded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import Scope, build_scope

#: A column's PostgreSQL type: (typname, atttypmod).
PgColumnType = tuple[str, int]
#: Table reference as PostgreSQL resolves it (``"schema"."table"`` or ``"table"``) → its columns, in order.
ColumnLookup = Callable[[Sequence[str]], Mapping[str, Mapping[str, PgColumnType]]]

_INTEGERS = {"int2", "int4", "int8", "oid"}
#: EXTRACT fields whose numeric result (PostgreSQL 14 on) is a whole number.
_WHOLE_FIELDS = {"YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "QUARTER", "WEEK", "DOW", "DOY", "ISODOW", "ISOYEAR",
                 "DECADE", "CENTURY", "MILLENNIUM", "DAYOFWEEK", "DAYOFYEAR"}
_FLOATS = {"float4", "float8"}


@dataclass(frozen=True)
class _Kind:
    """What an expression yields: an integer, a numeric of known (or unknown) scale, a float, or something else."""

    name: str
    scale: int | None = None


_INT = _Kind("int", 0)
_FLOAT = _Kind("float")
_OTHER = _Kind("other")
_NULL = _Kind("null")
_UNKNOWN = _Kind("numeric", None)


def _numeric(scale: int | None) -> _Kind:
    return _Kind("numeric", scale)


def result_scales(tree: exp.Expression | None, lookup: ColumnLookup) -> list[int | None] | None:
    """One fixed scale (or None) per output column of the query ``tree``; None when it cannot be followed.

    The tree is the plan's (read once by the router, shared): it is only read here.
    """
    if tree is None:
        return None
    try:
        root = build_scope(tree)
    except (sqlglot.errors.SqlglotError, RecursionError):
        return None
    if root is None:
        return None
    scopes = {id(scope.expression): scope for scope in root.traverse()}
    tables = sorted({_reference(t) for scope in root.traverse() for t in scope.sources.values()
                     if isinstance(t, exp.Table)})
    columns = lookup(tables) if tables else {}
    follower = _Follower(columns, scopes)
    kinds = follower.outputs(root)
    if kinds is None:
        return None
    return [k.scale if k.name in ("numeric", "int") else None for k in kinds]


def _reference(table: exp.Table) -> str:
    """The table as PostgreSQL's ``to_regclass`` reads it."""
    parts = [p for p in (table.args.get("db"), table.this) if p is not None]
    return ".".join(exp.to_identifier(p.name, quoted=True).sql("postgres") for p in parts)


class _Follower:
    """Follows PostgreSQL's numeric scale rules through one query's scopes."""

    def __init__(self, columns: Mapping[str, Mapping[str, PgColumnType]], scopes: Mapping[int, Scope]) -> None:
        self._columns = columns
        self._scopes = scopes

    # -- a scope's output columns ------------------------------------------------------------------------------

    def outputs(self, scope: Scope) -> list[_Kind] | None:
        """The kind of each output column of ``scope`` (its ``*`` expanded), or None if it cannot be followed."""
        query = scope.expression
        if isinstance(query, exp.SetOperation):
            branches = [self._scope_of(query.left), self._scope_of(query.right)]
            if any(b is None for b in branches):
                return None
            left, right = (self.outputs(b) for b in branches)
            if left is None or right is None or len(left) != len(right):
                return None
            return [_combine([a, b]) for a, b in zip(left, right, strict=True)]
        if not isinstance(query, exp.Select):
            return None
        kinds: list[_Kind] = []
        for projection in query.expressions:
            if isinstance(projection, exp.Star) or (isinstance(projection, exp.Column) and projection.is_star):
                expanded = self._star(scope, projection)
                if expanded is None:
                    return None
                kinds += expanded
            else:
                kinds.append(self.kind(projection, scope))
        return kinds

    def _star(self, scope: Scope, projection: exp.Expression) -> list[_Kind] | None:
        table = projection.table if isinstance(projection, exp.Column) else ""
        sources = [scope.sources[table]] if table else [scope.sources[name] for name in scope.selected_sources]
        kinds: list[_Kind] = []
        for source in sources:
            if isinstance(source, exp.Table):
                columns = self._columns.get(_reference(source))
                if columns is None:
                    return None
                kinds += [_of_column(*t) for t in columns.values()]
            else:
                inner = self.outputs(source)
                if inner is None:
                    return None
                kinds += inner
        return kinds

    def _scope_of(self, expression: exp.Expression) -> Scope | None:
        return self._scopes.get(id(expression.unnest() if isinstance(expression, exp.Subquery) else expression))

    # -- expressions -------------------------------------------------------------------------------------------

    def kind(self, node: exp.Expression, scope: Scope) -> _Kind:  # noqa: C901, PLR0911, PLR0912 - one rule a line
        """The kind of one expression evaluated in ``scope``."""
        if isinstance(node, exp.Alias | exp.Paren | exp.Neg | exp.Abs | exp.Distinct):
            inner = node.expressions[0] if isinstance(node, exp.Distinct) else node.this
            return self.kind(inner, scope)
        if isinstance(node, exp.Column):
            return self._column(node, scope)
        if isinstance(node, exp.Literal):
            return _literal(node)
        if isinstance(node, exp.Null):
            return _NULL
        if isinstance(node, exp.Cast):
            return self._cast(node, scope)
        if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Mod):
            return _arithmetic(node, self.kind(node.this, scope), self.kind(node.expression, scope))
        if isinstance(node, exp.Div | exp.IntDiv):
            left, right = self.kind(node.this, scope), self.kind(node.expression, scope)
            if left.name == right.name == "int":
                return _INT
            return _FLOAT if _FLOAT in (left, right) else _UNKNOWN
        if isinstance(node, exp.Sum | exp.Min | exp.Max | exp.AnyValue):
            return self.kind(node.this, scope)
        if isinstance(node, exp.Count):
            return _INT
        if isinstance(node, exp.Avg | exp.Stddev | exp.StddevSamp | exp.StddevPop | exp.Variance):
            inner = self.kind(node.this, scope)
            return _FLOAT if inner == _FLOAT else _UNKNOWN
        if isinstance(node, exp.Round):
            return self._round(node, scope)
        if isinstance(node, exp.Ceil | exp.Floor):
            inner = self.kind(node.this, scope)
            return _numeric(0) if inner.name in ("numeric", "int") else inner
        if isinstance(node, exp.Window):
            return self.kind(node.this, scope)
        if isinstance(node, exp.Extract):
            return _numeric(0) if node.this.name.upper() in _WHOLE_FIELDS else _UNKNOWN
        if isinstance(node, exp.Coalesce | exp.Greatest | exp.Least):
            return _combine([self.kind(e, scope) for e in (node.this, *node.expressions)])
        if isinstance(node, exp.Nullif):
            return self.kind(node.this, scope)
        if isinstance(node, exp.Case):
            branches = [i.args["true"] for i in node.args.get("ifs", [])] + [node.args.get("default") or exp.null()]
            return _combine([self.kind(b, scope) for b in branches])
        if isinstance(node, exp.If):
            return _combine([self.kind(node.args["true"], scope), self.kind(node.args.get("false") or exp.null(),
                                                                              scope)])
        if isinstance(node, exp.Subquery):
            inner = self._scope_of(node)
            outputs = self.outputs(inner) if inner is not None else None
            return outputs[0] if outputs and len(outputs) == 1 else _OTHER
        return _OTHER

    def _column(self, column: exp.Column, scope: Scope | None) -> _Kind:
        while scope is not None:
            for name, source in scope.sources.items():
                if column.table and column.table != name:
                    continue
                found = self._in_source(column.name, source)
                if found is not None:
                    return found
            scope = scope.parent
        return _OTHER

    def _in_source(self, name: str, source: exp.Table | Scope) -> _Kind | None:
        if isinstance(source, exp.Table):
            columns = self._columns.get(_reference(source), {})
            return _of_column(*columns[name]) if name in columns else None
        query = source.expression
        selects = query.selects if isinstance(query, exp.Select | exp.SetOperation) else []
        names = [s.alias_or_name for s in selects]
        if name not in names:
            return None
        outputs = self.outputs(source)
        return outputs[names.index(name)] if outputs is not None and len(outputs) == len(names) else _OTHER

    def _cast(self, node: exp.Cast, scope: Scope) -> _Kind:
        to = node.to
        if to.is_type(*exp.DataType.INTEGER_TYPES):
            return _INT
        if to.is_type(*exp.DataType.REAL_TYPES) and not to.is_type(exp.DataType.Type.DECIMAL):
            return _FLOAT
        if to.is_type(exp.DataType.Type.DECIMAL):
            parameters = to.expressions
            if parameters:
                return _numeric(int(parameters[1].name) if len(parameters) > 1 else 0)
            inner = self.kind(node.this, scope)
            return inner if inner.name in ("numeric", "int") else _UNKNOWN
        return _OTHER

    def _round(self, node: exp.Round, scope: Scope) -> _Kind:
        inner = self.kind(node.this, scope)
        if inner.name not in ("numeric", "int"):
            return inner
        digits = node.args.get("decimals")
        if digits is None:
            return _numeric(0)
        if isinstance(digits, exp.Literal) and digits.is_int:
            return _numeric(max(int(digits.name), 0))
        return _UNKNOWN


def _of_column(typname: str, typmod: int) -> _Kind:
    if typname in _INTEGERS:
        return _INT
    if typname in _FLOATS:
        return _FLOAT
    if typname == "numeric":
        return _numeric((typmod - 4) & 0xFFFF if typmod >= 4 else None)
    return _OTHER


def _literal(node: exp.Literal) -> _Kind:
    if node.is_string:
        return _OTHER
    text = node.name
    if node.is_int:
        return _INT
    if "e" in text.lower() or "." not in text:
        return _UNKNOWN
    return _numeric(len(text.split(".", 1)[1]))


def _arithmetic(node: exp.Expression, left: _Kind, right: _Kind) -> _Kind:
    if _OTHER in (left, right) or _NULL in (left, right):
        return _OTHER
    if _FLOAT in (left, right):
        return _FLOAT
    if left.name == right.name == "int":
        return _INT
    if left.scale is None or right.scale is None:
        return _UNKNOWN
    if isinstance(node, exp.Mul):
        return _numeric(left.scale + right.scale)
    return _numeric(max(left.scale, right.scale))


def _combine(kinds: list[_Kind]) -> _Kind:
    """The kind of a column whose rows come from several branches (CASE, COALESCE, UNION)."""
    kinds = [k for k in kinds if k != _NULL]
    if not kinds:
        return _NULL
    if any(k.name == "other" for k in kinds):
        return _OTHER
    if _FLOAT in kinds:
        return _FLOAT
    if all(k == _INT for k in kinds):
        return _INT
    if any(k.scale is None for k in kinds):
        return _UNKNOWN
    return _numeric(max(k.scale for k in kinds))
