"""One query, routed and read once: the plan every later step reads instead of the SQL text.

Routing and validation (``server/query/sql/``) parse a statement once and hand on a ``QueryPlan``: the text the
source receives, its dialect, the source, the analysed sqlglot tree, where its ``?`` placeholders stand, and (on
first use) every table and column it references. Backends take the plan; none parses the SQL again. Access
checks and, later, federation read its tables.

A statement DuckDB's own reading decided alone (``server/query/sql/duckdb_alone.py``) comes without a tree: the
plan reads it on first use of ``tree`` or ``query`` (sqlglot's parse, with the whole validator's verdict), so
queries that nothing after routing inspects never pay for it.

``plan_sql`` makes a plan of SQL that no validator has judged, for tools and tests that drive a backend directly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Token, TokenType

from nexus_flight.core.dialects import sql_dialect
from nexus_flight.core.identifiers import identifier_rules
from nexus_flight.core.references import ColumnRef, References, TableRef, references

__all__ = ["ColumnRef", "QueryPlan", "TableRef", "placeholder_offsets", "plan_sql", "replace_placeholders"]

_MARK = "__nexus_parameter_{}__"


@dataclass(frozen=True, eq=False)
class QueryPlan:
    """A statement bound to its source, with what the gateway learned reading it.

    Plans are immutable and shared (the router caches them): never change ``tree`` or ``query``; copy them.

    Attributes:
        source: The source (catalog) the statement runs on.
        sql: The exact text the source's engine receives.
        parameter_count: Number of parameters to bind (``?`` placeholders, or the highest ``$n``).
        dialect: The sqlglot dialect ``sql`` is written in (the source's).
        parsed_tree: sqlglot's tree of ``sql``, read through ``tree``: None when sqlglot cannot parse it (only with
            the validator off) or when ``read_later`` reads it on first use.
        parsed_query: The query inside the statement, read through ``query``: ``parsed_tree`` itself, or the
            statement an ``EXPLAIN`` explains.
        keyword: The statement's first word, lower case ("select", "with", "explain" ...; "" if unknown).
        placeholders: Where each ``?`` of ``sql`` starts, in text order (strings and comments excluded).
        statement_end: The length of ``sql`` without its trailing semicolons (what a wrapper may enclose).
        validated: Whether the read-only validator judged the statement.
        file_part: Which group of its table's files the plan reads, as (index, count), when a splittable scan is
            served as several endpoints (``backends/file_groups.py``); None reads them all.
        upstream_partitions: The upstream's own endpoints (ADBC partition descriptors) the plan reads, when an
            upstream Flight SQL server's result is served as several endpoints; None runs the query.
        upstream_whole: The ``upstream_partitions`` are the query's whole result (the upstream answered one
            endpoint): where the upstream refuses them when they are read, the query is run again instead.
        read_later: For a plan made without a tree: returns (tree, query) on first use of either, or raises the
            validator's refusal.

    """

    source: str
    sql: str
    parameter_count: int
    dialect: str
    parsed_tree: exp.Expression | None = None
    parsed_query: exp.Expression | None = None
    keyword: str = ""
    placeholders: tuple[int, ...] = ()
    statement_end: int | None = None
    validated: bool = False
    file_part: tuple[int, int] | None = None
    upstream_partitions: tuple[bytes, ...] | None = None
    upstream_whole: bool = False
    read_later: Callable[[], tuple[exp.Expression, exp.Expression]] | None = None

    def __post_init__(self) -> None:
        if self.parsed_query is None and self.parsed_tree is not None:
            object.__setattr__(self, "parsed_query", self.parsed_tree)
        if self.statement_end is None:
            object.__setattr__(self, "statement_end", len(self.sql.rstrip()))

    @property
    def tree(self) -> exp.Expression | None:
        """The sqlglot tree of ``sql`` (read now if the plan was made without it); None if sqlglot cannot read it."""
        if self.parsed_tree is None and self.read_later is not None:
            self._read_now(self.read_later)
        return self.parsed_tree

    @property
    def query(self) -> exp.Expression | None:
        """The query inside the statement: ``tree`` itself, or the statement an ``EXPLAIN`` explains."""
        if self.parsed_query is None and self.read_later is not None:
            self._read_now(self.read_later)
        return self.parsed_query

    def _read_now(self, read: Callable[[], tuple[exp.Expression, exp.Expression]]) -> None:
        # Two threads may both read: the trees are equal, and whichever is kept serves every later call.
        tree, query = read()
        object.__setattr__(self, "parsed_query", query)
        object.__setattr__(self, "parsed_tree", tree)

    @property
    def sources(self) -> tuple[str, ...]:
        """Every source the statement reads (one today; several once queries may span sources)."""
        return (self.source,)

    @property
    def statement(self) -> str:
        """``sql`` without trailing semicolons and blanks: the text to wrap (``SELECT * FROM (…) LIMIT 0``)."""
        return self.sql[: self.statement_end].rstrip()

    @functools.cached_property
    def references(self) -> References:
        """Tables, table functions and columns the statement reads (worked out on first use, then kept)."""
        return references(self.query, identifier_rules(self.dialect))

    @property
    def tables(self) -> tuple[TableRef, ...]:
        """Every table the statement reads, each once (CTEs, derived tables and table functions excluded)."""
        return self.references.tables

    @property
    def columns(self) -> tuple[ColumnRef, ...]:
        """Every column the statement reads, attributed to its table where the query says which."""
        return self.references.columns

    @functools.cached_property
    def placeholder_nodes(self) -> tuple[exp.Placeholder, ...]:
        """The ``?`` nodes of ``query`` in the order their ``?`` appears in the text (the order values bind in).

        The tree's own order differs (LIMIT comes before WHERE); the text order is read back from the tree
        written out with each placeholder marked.
        """
        if self.query is None:
            return ()
        found = [node for node in self.query.find_all(exp.Placeholder) if not node.args.get("this")]
        if len(found) < 2:
            return tuple(found)
        marked = self.query.copy()
        for i, node in enumerate(n for n in marked.find_all(exp.Placeholder) if not n.args.get("this")):
            node.replace(exp.Literal.string(_MARK.format(i)))
        try:
            text = marked.sql(dialect=self.dialect)
        except (SqlglotError, RecursionError):
            return tuple(found)
        order = sorted(range(len(found)), key=lambda i: text.find(_MARK.format(i)))
        return tuple(found[i] for i in order)

    def with_placeholders(self, replacement: Callable[[int], str], sql: str | None = None) -> str:
        """``sql`` (default: the plan's own, or a prefix of it) with the n-th ``?`` replaced by ``replacement(n)``."""
        return replace_placeholders(self.sql if sql is None else sql, self.placeholders, replacement)


def replace_placeholders(text: str, offsets: Sequence[int], replacement: Callable[[int], str]) -> str:
    """``text`` with the ``?`` at each of ``offsets`` (1-based ``n``) replaced by ``replacement(n)``."""
    if not offsets:
        return text
    out, last = [], 0
    for n, start in enumerate(offsets, 1):
        if start >= len(text):
            break
        out.append(text[last:start])
        out.append(replacement(n))
        last = start + 1
    out.append(text[last:])
    return "".join(out)


def placeholder_offsets(tokens: list[Token], text: str) -> tuple[int, ...]:
    """Where each ``?`` placeholder of ``text`` starts, from its tokens.

    ``?`` inside strings and comments is no token, and operators that contain it (jsonb ``?|``) are other
    tokens; ``?::int`` tokenizes as one token in some dialects, and its ``?`` is still a placeholder.
    """
    if "?" not in text:
        return ()
    return tuple(
        token.start
        for token in tokens
        if (token.token_type == TokenType.PLACEHOLDER and token.text == "?") or token.token_type == TokenType.QDCOLON
    )


def statement_end(tokens: list[Token], text: str) -> int:
    """The end of ``text`` without its trailing semicolon tokens (comments after them are cut too)."""
    end = len(tokens)
    while end and tokens[end - 1].token_type == TokenType.SEMICOLON:
        end -= 1
    if end == len(tokens):
        return len(text.rstrip())
    return tokens[end - 1].end + 1 if end else 0


def plan_sql(sql: str, dialect: str, source: str = "") -> QueryPlan:
    """A plan of ``sql`` that no validator judged: for tools and tests that drive a backend directly.

    The text is parsed with sqlglot when it can be (else the plan has no tree and counts ``?`` as parameters).
    """
    try:
        tokens = sql_dialect(dialect).tokenize(sql)
    except (SqlglotError, ValueError):
        return QueryPlan(source, sql, sql.count("?"), dialect)
    words = [t.text.lower() for t in tokens if t.token_type != TokenType.L_PAREN][:1]
    try:
        trees = [t for t in sql_dialect(dialect).parser().parse(tokens, sql) if t is not None]
    except (SqlglotError, RecursionError):
        trees = []
    tree = cast(exp.Expression, trees[0]) if len(trees) == 1 else None
    offsets = placeholder_offsets(tokens, sql)
    numbered = [int(node.this.this) for node in tree.find_all(exp.Parameter)
                if isinstance(node.this, exp.Literal) and str(node.this.this).isdigit()] if tree else []
    return QueryPlan(
        source, sql, len(offsets) + max(numbered, default=0), dialect, tree,
        keyword=words[0].split()[0] if words and words[0].strip() else "",
        placeholders=offsets, statement_end=statement_end(tokens, sql),
    )
