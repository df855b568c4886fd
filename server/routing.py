"""Which source a query runs on, and the SQL that source receives.

Minimal first version: one statement, query statements only, the catalog qualifier of three-part names removed.
The full validator (rules QV-001..QV-010, per-dialect deny lists, limits) lives in ``server/readonly.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

from backends.errors import InvalidQueryError, NotFoundError, ReadOnlyViolationError


@dataclass(frozen=True)
class RouteTarget:
    """What routing needs to know of one source."""

    dialect: str
    #: Paths and URL prefixes the source's own data lives under (file readers may touch only these).
    allowed_paths: tuple[str, ...] = ()
    limits: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RoutedQuery:
    """A validated query bound to one source."""

    source: str
    sql: str
    parameter_count: int


_QUERY_TYPES = (exp.Query, exp.Values)


def route(
    sql: str,
    *,
    sources: Mapping[str, RouteTarget],
    session_catalog: str | None,
    default_source: str,
    client_dialect: str | None = None,
    validate_sql: bool = True,
) -> RoutedQuery:
    """Validate ``sql`` and bind it to the source it names (else the session's catalog, else the default).

    Raises:
        InvalidQueryError: the SQL does not parse or is not one statement.
        ReadOnlyViolationError: the statement is not a query.
        NotFoundError: the named source does not exist.

    """
    source = session_catalog or default_source
    if source not in sources:
        raise NotFoundError(f"unknown catalog {source!r}; known catalogs: {', '.join(sorted(sources))}")
    dialect = client_dialect or sources[source].dialect
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        raise InvalidQueryError(f"QV-001: SQL does not parse: {_plain(exc)}") from exc
    if len(statements) != 1:
        raise InvalidQueryError(f"QV-001: exactly one statement is allowed, got {len(statements)}")
    tree = statements[0]
    if validate_sql and not isinstance(tree, _QUERY_TYPES):
        raise ReadOnlyViolationError(
            f"QV-002: {tree.key.upper()} is not allowed: this gateway is read-only"
        )
    named = {t.catalog for t in tree.find_all(exp.Table) if t.catalog in sources}
    if len(named) > 1:
        raise InvalidQueryError(f"QV-001: a query may read one source, this one names {', '.join(sorted(named))}")
    if named:
        source = named.pop()
        for table in tree.find_all(exp.Table):
            if table.catalog == source:
                table.set("catalog", None)
        sql = tree.sql(dialect=sources[source].dialect)
    params = len(list(tree.find_all(exp.Placeholder)))
    return RoutedQuery(source=source, sql=sql, parameter_count=params)


def _plain(exc: Exception) -> str:
    """Sqlglot messages carry ANSI underline codes; clients get plain text."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines()[0]
