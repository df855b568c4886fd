"""SQL text helpers for engines the gateway hands statements to as text.

Engines whose sessions cannot be made read-only get a guard against statements that are not queries. (Where a
statement's placeholders stand is the plan's to say: ``core/plan.py``.)
"""

from __future__ import annotations

import re

from nexus_flight.core.errors import ReadOnlyViolationError

_QUERY_KEYWORDS = ("SELECT", "WITH", "VALUES", "TABLE", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "FROM", "(")
_LEADING_COMMENTS = re.compile(r"^(\s|--[^\n]*\n|/\*.*?\*/)*", re.DOTALL)


def require_query(sql: str, source: str, engine: str) -> str:
    """Refuse statements that do not start like a query (for engines whose sessions cannot be made read-only).

    This is a guard against accidents, not a guarantee: a "query" can still call a function with side effects.

    Raises:
        ReadOnlyViolationError: the statement is not a query.

    """
    stripped = _LEADING_COMMENTS.sub("", sql)
    if not stripped.upper().startswith(_QUERY_KEYWORDS):
        keyword = stripped.split(None, 1)[0].upper() if stripped.strip() else "an empty statement"
        raise ReadOnlyViolationError(
            f"[{engine}] {keyword} is not sent to the source: only queries are", source=source
        )
    return sql
