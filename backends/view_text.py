"""The query of a view, cut from the ``CREATE VIEW`` statement an engine keeps (DuckDB's and SQLite's catalogs).

The text after the view's ``AS`` is kept exactly as the catalog holds it (nothing is parsed or regenerated), so
whoever judges it reads what the engine runs.
"""

from __future__ import annotations

from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

from nexus_flight.core.dialects import sql_dialect


def query_of_create_view(statement: str, dialect: str) -> str | None:
    """The query a ``CREATE [TEMP] VIEW name [(columns)] AS query`` statement defines (None: not one).

    The query starts after the first ``AS`` outside parentheses that follows ``VIEW`` (a column list's names
    and a quoted view name are tokens of their own, never that keyword).
    """
    try:
        tokens = sql_dialect(dialect).tokenize(statement)
    except (SqlglotError, ValueError):
        return None
    if not tokens or tokens[0].token_type != TokenType.CREATE:
        return None
    depth, seen_view = 0, False
    for token in tokens[1:]:
        if token.token_type == TokenType.L_PAREN:
            depth += 1
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1
        elif token.token_type == TokenType.VIEW and depth == 0:
            seen_view = True
        elif token.token_type == TokenType.ALIAS and depth == 0 and seen_view:
            query = statement[token.end + 1:].strip()
            return query or None
    return None
