"""Deciding a plain DuckDB query on DuckDB's reading alone: the validator's cold path without sqlglot.

For SQL that DuckDB runs unchanged (the source's engine is DuckDB, the client writes its dialect, no qualified
name to route by), DuckDB's own reading is what the validator judges anyway (``duckdb_reading.py``): one
statement, of type SELECT, calling only allowed functions, reading no denied relation. DuckDB's parser also
refuses what sqlglot's walker looks for in a query's tree: a data-modifying CTE ("A CTE needs a SELECT"),
``SELECT ... INTO``, ``FOR UPDATE``. What is left of sqlglot's walk is checked here on DuckDB's tokens, failing
closed: the limits (nesting, joins, operators, expression depth) by counts that can only over-estimate, and file
paths as table names (a string or a quoted path-like name in a FROM clause).

This path only ever accepts. Whatever it does not accept with certainty, refused or merely unusual (parameters,
dollar quotes, a trailing semicolon, a qualified name, PIVOT, EXPLAIN and metadata statements, refused characters,
prefix, postfix and rare operators, a literal of a named type, a CTE or alias with a column list, many tokens, a
count near a limit), goes to the whole validator, which gives the verdict and its message.
The plan it makes reads sqlglot's tree only when something later needs it (grants, policies, file groups).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from nexus_flight.core.source import ValidationLimits
from nexus_flight.server.query.sql.duckdb_reading import (
    IDENTIFIER,
    KEYWORD,
    NUMERIC,
    OPERATOR,
    STRING,
    DuckDBReading,
    judge_duckdb_reading,
    read_duckdb,
    reserved_keywords,
)
from nexus_flight.server.query.sql.refusal import Refusal
from nexus_flight.server.query.sql.rules import PATH_TABLE_MARKERS, within_characters

#: Characters that send a statement to the whole validator: parameters (? $), dollar quotes ($), more statements or
#: a trailing semicolon (;), escapes (\\); so do the characters it refuses (QV-010), which it names. Qualified
#: names are found among DuckDB's tokens: a "." operator.
_NOT_ALONE = re.compile(r"[?$;\\]")
_LEADING = frozenset({"select", "with", "from", "values", "table"})
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
#: The keywords that shape a statement for these checks: FROM and JOIN start a list of tables, ON and USING
#: conditions, the others end the list (at their depth); CASE and END nest.
_SHAPING_KEYWORD = re.compile(
    r"(?i:from|join|on|using|where|group|having|order|limit|offset|qualify|window|union|except|intersect|select"
    r"|case|end)(?![A-Za-z0-9_$])"
)
#: Operators read the same by DuckDB and sqlglot (others, and any with a comment inside, go to the validator).
_PLAIN_OPERATORS = frozenset({"+", "-", "*", "/", "%", "=", "<", ">", "<=", ">=", "<>", "!=", "||", "::", "[", "]",
                              "{", "}", ":"})
#: Words other than reserved keywords that may stand before a string: typed literals sqlglot reads, operators.
_BEFORE_STRINGS = frozenset({"date", "time", "timestamp", "timestamptz", "interval", "like", "ilike", "glob",
                             "similar", "escape", "between", "is"})
#: Keywords that may start the operand after ``||`` (DuckDB also reads ``||`` as a postfix operator).
_OPERAND_KEYWORDS = frozenset({"case", "cast", "not", "null", "true", "false", "date", "interval", "timestamp",
                               "time", "exists", "array"})
#: sqlglot's tree is at most this many levels deep per DuckDB token (names sit under Column and Identifier).
_LEVELS_PER_TOKEN = 4


def decided_alone(
    text: str, limits: ValidationLimits, extras: tuple[str, ...], path_allowed: Callable[[str], bool]
) -> str | None:
    """The statement's first word if DuckDB's reading alone accepts ``text``; None where the validator decides.

    Args:
        text: The statement exactly as the source will receive it.
        limits: The source's validation limits.
        extras: The source's declared ``allowed_functions`` (lower case).
        path_allowed: Whether a file reader may read a path (the source's ``allowed_paths``).

    """
    if not within_characters(text, limits.max_length) or _NOT_ALONE.search(text):
        return None
    lowered = text.lower()
    if "pivot" in lowered:  # DuckDB runs a PIVOT without an IN list as two statements
        return None
    try:
        reading = read_duckdb(text)
    except Refusal:
        return None
    keyword = _first_word(reading)
    if keyword not in _LEADING or not _within_shape(reading, limits):
        return None
    try:
        judge_duckdb_reading(reading, None, extras, path_allowed)
    except Refusal:
        return None
    return keyword


def _first_word(reading: DuckDBReading) -> str | None:
    for (pos, _), mark in zip(reading.tokens, reading.marks, strict=True):
        if mark != "(":
            match = _WORD.match(reading.text, pos)
            return match.group().lower() if match else None
    return None


def _within_shape(reading: DuckDBReading, limits: ValidationLimits) -> bool:
    """Limits and file paths, over-estimated from DuckDB's tokens: False sends the statement to the validator.

    One pass over the tokens keeps, per open parenthesis or CASE (``openers``), whether a table may stand there
    (``table_here``: after FROM, JOIN or a comma of a FROM list, not in ON/USING conditions) and whether commas
    join tables (``joining``: from FROM to the clause that ends the FROM list).
    """
    text, tokens, marks = reading.text, reading.tokens, reading.marks
    if len(tokens) * _LEVELS_PER_TOKEN + 8 > limits.max_expression_depth:
        return False
    openers, table_here, joining = [""], [False], [False]
    deepest = joins = operators = 0
    after_table_start = False  # the token before was FROM, JOIN or a comma of a FROM list
    for i, (pos, kind) in enumerate(tokens):
        if kind == IDENTIFIER:  # the most frequent: a name
            if text[pos] == '"' and any(marker in _quoted_name(text, pos) for marker in PATH_TABLE_MARKERS):
                return False
            after_table_start = False
            continue
        mark = marks[i]
        starts_tables = False
        if mark == "(":
            openers.append("(")
            table_here.append(after_table_start)  # FROM (VALUES ...), FROM ('file')
            joining.append(after_table_start)
            deepest = max(deepest, len(openers) - 1)
            starts_tables = after_table_start  # FROM (('file'))
        elif mark == ")":
            if openers.pop() != "(" or not openers:
                return False
            table_here.pop()
            joining.pop()
        elif mark == ",":
            if joining[-1]:
                joins += 1
                table_here[-1] = starts_tables = True
        elif kind == OPERATOR:
            operator = text[pos : tokens[i + 1][0] if i + 1 < len(tokens) else len(text)].strip()
            if operator not in _PLAIN_OPERATORS or operator == "||" and not _operand_at(reading, i + 1):
                return False  # prefix, postfix and rare operators (DuckDB's PostgreSQL grammar reads them)
            operators += 1
        elif kind == STRING:
            if table_here[-1] or i and not _plain_before_string(reading, i - 1):
                return False  # FROM 'file.csv' (a replacement scan), or name 'text' (a literal of a named type)
        elif kind == KEYWORD:
            word = _SHAPING_KEYWORD.match(text, pos)
            name = word.group().lower() if word else ""
            if name in ("from", "join"):
                table_here[-1] = joining[-1] = starts_tables = True
                joins += name == "join"
            elif name in ("on", "using"):
                table_here[-1] = False
            elif name == "case":
                openers.append("case")
                table_here.append(False)
                joining.append(False)
                deepest = max(deepest, len(openers) - 1)
            elif name == "end":
                if openers.pop() != "case" or not openers:
                    return False
                table_here.pop()
                joining.pop()
            elif name:
                table_here[-1] = joining[-1] = False  # WHERE, GROUP, ..., SELECT: the FROM list has ended
        after_table_start = starts_tables
    return (
        len(openers) == 1
        and deepest <= limits.max_nesting
        and joins <= limits.max_joins
        and operators <= limits.max_operator_depth
    )


def _plain_before_string(reading: DuckDBReading, i: int) -> bool:
    """Whether token ``i``, before a string, is grammar sqlglot reads as DuckDB does (not ``name 'text'``)."""
    pos, kind = reading.tokens[i]
    if kind not in (IDENTIFIER, KEYWORD):
        return True
    word = _WORD.match(reading.text, pos)
    name = word.group().lower() if word else ""
    return name in _BEFORE_STRINGS or kind == KEYWORD and name in reserved_keywords()


def _operand_at(reading: DuckDBReading, i: int) -> bool:
    """Whether token ``i`` starts an operand: a name, a literal, a parenthesis or an expression keyword."""
    if i >= len(reading.tokens):
        return False
    pos, kind = reading.tokens[i]
    if kind in (IDENTIFIER, STRING, NUMERIC) or reading.marks[i] == "(":
        return True
    word = _WORD.match(reading.text, pos)
    return kind == KEYWORD and word is not None and word.group().lower() in _OPERAND_KEYWORDS


def _quoted_name(text: str, pos: int) -> str:
    end = text.find('"', pos + 1)
    return text[pos + 1 : end] if end > 0 else text[pos:]

