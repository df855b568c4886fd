"""The sqlglot dialect the gateway reads SQL of each dialect name in.

Every dialect is sqlglot's own but MySQL's. The gateway announces ``"`` as its identifier quote for every catalog
(GetSqlInfo's SQL_IDENTIFIER_QUOTE_CHAR), and BI tools quote names with it; MySQL without ``ANSI_QUOTES`` reads
``"OrderId"`` as the text 'OrderId', an answer silently wrong. So MySQL is read as with ``ANSI_QUOTES``: ``"…"``
and backticks quote identifiers, only single quotes strings. The MySQL family's sessions set ``ANSI_QUOTES`` and
keep backslash escapes (``backends/mysql.py``), so the validator, the grants and policies that read the tree, and
the engine that runs the text all read one statement one way.
"""

from __future__ import annotations

from functools import lru_cache

from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.mysql import MySQL


class MySQLAnsiQuotes(MySQL):
    """MySQL with ``sql_mode`` ``ANSI_QUOTES``: ``"`` quotes identifiers, as backticks do."""

    class Tokenizer(MySQL.Tokenizer):
        """Single quotes make strings; backticks and double quotes identifiers."""

        QUOTES = ["'"]
        IDENTIFIERS = ["`", '"']
        # MySQL's without '"', which is no longer a string's quote; inside identifiers a backslash is a character.
        STRING_ESCAPES = ["'", "\\"]


#: Dialect names read by another dialect than sqlglot's of that name.
_READ_AS: dict[str, type[Dialect]] = {"mysql": MySQLAnsiQuotes}


@lru_cache(maxsize=64)  # sqlglot builds a Dialect on each get_or_raise
def sql_dialect(name: str) -> Dialect:
    """The sqlglot dialect SQL in the dialect ``name`` is read in (MySQL's writes the same SQL as sqlglot's).

    Raises:
        ValueError: sqlglot knows no dialect of that name.

    """
    found = _READ_AS.get(name.lower())
    return found() if found is not None else Dialect.get_or_raise(name)
