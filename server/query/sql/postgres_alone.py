"""Deciding a plain PostgreSQL query on PostgreSQL's reading alone: the validator's cold path without sqlglot.

For SQL that a PostgreSQL source receives unchanged (its dialect is PostgreSQL's, the client writes it, no
three-part name to route by), PostgreSQL's own parse tree (libpg_query through pglast) is what the validator
judges anyway (``postgres_reading.py``): one SELECT, no ``INTO``, no ``FOR UPDATE``, no DML in a CTE, only
allowed functions and operators, no denied relation, no function called as a field. What is left of sqlglot's
walk, the limits, is checked here by counts that can only over-estimate: every opening parenthesis of the text and
every "case" for nesting, every comma and "join" for joins, every word and other character for operators and
expression depth.

Like ``duckdb_alone.py``, this path only accepts. Anything it is not certain of (parameters, dollar quotes,
backslashes, semicolons, a leading comment, EXPLAIN and SHOW, a catalog-qualified name, a setting read, counts
near a limit) goes
to the whole validator, which gives the verdict and its message; sqlglot's tree is read only when something
needs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pglast import parser as pg_parser

from nexus_flight.core.source import ValidationLimits
from nexus_flight.server.query.sql.postgres_reading import judge_postgres_reading
from nexus_flight.server.query.sql.refusal import Refusal
from nexus_flight.server.query.sql.rules import SETTING_FUNCTIONS, within_characters

#: Characters that send a statement to the whole validator: parameters (? $), dollar quotes ($), semicolons,
#: backslashes (escape strings); so do the characters it refuses (QV-010), which it names.
_NOT_ALONE = re.compile(r"[?$;\\]")
_FIRST_WORD = re.compile(r"[\s(]*([A-Za-z_]+)")
_LEADING = frozenset({"select", "with", "values", "table"})
_WORD = re.compile(r"\w+")
#: sqlglot's tree is at most this many levels deep per token (names sit under Column and Identifier).
_LEVELS_PER_TOKEN = 4


def decided_alone(text: str, limits: ValidationLimits, extras: Iterable[str]) -> str | None:
    """The statement's first word if PostgreSQL's reading alone accepts ``text``; None where the validator decides.

    Args:
        text: The statement exactly as the source will receive it.
        limits: The source's validation limits.
        extras: The source's declared ``allowed_functions`` (lower case).

    """
    if not within_characters(text, limits.max_length) or _NOT_ALONE.search(text):
        return None
    first = _FIRST_WORD.match(text)
    keyword = first.group(1).lower() if first else None
    lowered = text.lower()
    if keyword not in _LEADING or not _within_limits(text, lowered, limits):
        return None
    if any(name in lowered for name in SETTING_FUNCTIONS):
        return None  # sqlglot reads some literal names (E'...') as computed: the whole validator decides
    try:
        tree = pg_parser.parse_sql_json(text)
    except pg_parser.ParseError:
        return None
    if '"catalogname":' in tree or '"ExplainStmt":' in tree or '"VariableShowStmt":' in tree:
        return None  # a source to route to; metadata statements the whole validator judges by the dialect
    try:
        judge_postgres_reading(text, tree, extras)
    except Refusal:
        return None
    return keyword


def _within_limits(text: str, lowered: str, limits: ValidationLimits) -> bool:
    """Upper bounds, all over-counting (the words and characters of strings and comments count too)."""
    if text.count("(") + lowered.count("case") > limits.max_nesting:  # nesting, subqueries included
        return False
    if text.count(",") + lowered.count("join") > limits.max_joins:
        return False
    rest, words = _WORD.subn("", text)
    tokens = words + len("".join(rest.split()))  # every word, and every other character on its own
    return tokens * _LEVELS_PER_TOKEN + 8 <= limits.max_expression_depth and tokens <= limits.max_operator_depth
