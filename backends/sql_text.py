"""SQL text helpers for engines the gateway hands statements to as text.

Placeholders are rewritten with sqlglot's tokenizer (so a ``?`` in a string, a comment or an operator is left
alone), and engines whose sessions cannot be made read-only get a guard against statements that are not queries.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlglot
from sqlglot.tokens import TokenType

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


def rewrite_placeholders(sql: str, dialect: str, replacement: Callable[[int], str]) -> str:
    """Replace each ``?`` placeholder (1-based ``n``) by ``replacement(n)``, using the SQL tokenizer.

    ``?`` inside strings and comments is untouched, and so are operators that contain it (jsonb ``?|``).
    ``?::int`` tokenizes as one operator in some dialects; its ``?`` is still a placeholder.
    """
    if "?" not in sql:
        return sql
    try:
        tokens = sqlglot.tokenize(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return sql
    out, last, n = [], 0, 0
    for token in tokens:
        is_placeholder = token.token_type == TokenType.PLACEHOLDER and token.text == "?"
        if is_placeholder or token.token_type == TokenType.QDCOLON:
            n += 1
            out.append(sql[last : token.start])
            out.append(replacement(n))
            last = token.start + 1
    out.append(sql[last:])
    return "".join(out)
