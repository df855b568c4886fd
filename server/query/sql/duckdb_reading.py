"""DuckDB's own reading of a statement, judged: the validator's check for SQL that DuckDB runs.

The demo, DuckDB files, the file and lake families and the ``system`` catalog all run SQL on DuckDB. sqlglot
reads the text first; here DuckDB's own parser and lexer read it again, and their reading decides:

- DuckDB's parser (``extract_statements``) must see exactly one statement, a query (SELECT, with DESCRIBE,
  SHOW, SUMMARIZE and FROM-first, which DuckDB parses as SELECT) or an EXPLAIN without ANALYZE. A PIVOT
  without an IN list is the one exception: DuckDB expands it into a temporary ENUM type and the query.
- DuckDB's lexer (``tokenize``) gives every token's kind and start; every name directly followed by ``(``
  is a call (or a definition: a CTE or an alias with a column list, a type, a sampling method). Each call
  must be an allowed function (``server/query/sql/allowlists/duckdb.txt``, or the source's ``allowed_functions``); a
  denied one keeps its own rule; a file reader needs literal paths under the source's ``allowed_paths``;
  ``current_setting`` a literal name that is not a path. Anything else is QV-011. A keyword before ``(`` is
  grammar (``IN (``, ``CAST (``) only where DuckDB reserves it or keeps it for types and column-name syntax, or
  where its grammar takes an unreserved one's parenthesis (``OVER (`` after a call, ``GROUPING SETS (``, ``*
  EXCLUDE (``: ``_GRAMMAR_UNRESERVED``); DuckDB lets functions take its other keywords' names (``object``,
  ``checkpoint``) and reads an unreserved keyword elsewhere as a call, so those are judged as calls.

Comments, quoting, escapes and dollar strings are therefore judged as DuckDB reads them, not as sqlglot does.
Replacement scans (``FROM '/etc/passwd'``) are sqlglot's to refuse (they are refused there), or, where sqlglot
does not read the statement, ``duckdb_alone.py``'s; behind both, DuckDB runs with external access disabled.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
from sqlglot import exp

from nexus_flight.server.query.sql.refusal import Refusal, line_col, refuse
from nexus_flight.server.query.sql.rules import (
    DENIED_RELATIONS,
    PATH_FUNCTIONS,
    PATH_SETTINGS,
    SETTING_FUNCTIONS,
    allowed_functions,
    denied_function_rule,
)

_DIALECT = "duckdb"
# Token kinds as DuckDB's integer codes: comparing DuckDB's own kind objects costs a microsecond each.
IDENTIFIER = duckdb.token_type.identifier.value
KEYWORD = duckdb.token_type.keyword.value
STRING = duckdb.token_type.string_const.value
NUMERIC = duckdb.token_type.numeric_const.value
OPERATOR = duckdb.token_type.operator.value
_UNQUOTED = re.compile(r"[^\W\d][\w$]*")
_READS = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)
_NAME_KINDS = (IDENTIFIER, KEYWORD)
#: One of DuckDB's tokens: where it starts, and its kind's code.
_Token = tuple[int, int]
#: First characters of tokens that are neither names nor keywords (operators, strings, numbers).
_NOT_NAMES = frozenset("()[]{},;.:+-*/%<>=!~^&|#@?'$0123456789")
#: Type names written with parentheses that DuckDB's lexer may call identifiers.
_TYPE_NAMES = frozenset({"struct", "map", "union", "enum", "decimal", "numeric", "varchar", "char", "bit"})
#: Sampling methods: ``USING SAMPLE reservoir(10 ROWS)``.
_SAMPLING = frozenset({"reservoir", "bernoulli", "system"})
#: Keywords that start a clause: scanning back for a GROUP BY stops at them.
_CLAUSES = frozenset({"select", "from", "where", "having", "order", "qualify", "window", "limit", "on"})
_LEADING = frozenset({"select", "with", "from", "values", "table", "pivot", "unpivot", "describe", "desc", "show",
                      "summarize", "explain"})

_root: duckdb.DuckDBPyConnection | None = None
_root_lock = threading.Lock()
_idle: queue.SimpleQueue[duckdb.DuckDBPyConnection] = queue.SimpleQueue()


@contextlib.contextmanager
def _parser() -> Iterator[duckdb.DuckDBPyConnection]:
    """Lend a connection for DuckDB's parser, used by one thread at a time and returned for the next call.

    Opening an in-memory database costs about 12 ms; a cursor of one costs microseconds. gRPC runs calls on
    threads it starts and ends as it pleases, so connections are pooled, not kept per thread.
    """
    global _root
    try:
        connection = _idle.get_nowait()
    except queue.Empty:
        with _root_lock:
            if _root is None:
                _root = duckdb.connect(":memory:", config={"enable_external_access": False,
                                                           "autoload_known_extensions": False,
                                                           "autoinstall_known_extensions": False})
            connection = _root.cursor()
    try:
        yield connection
    finally:
        _idle.put(connection)


@functools.cache
def _keyword_categories() -> dict[str, str]:
    """DuckDB's keywords and their categories (reserved, unreserved, type_function, column_name)."""
    with _parser() as parser:
        rows = parser.execute("SELECT keyword_name, keyword_category FROM duckdb_keywords()").fetchall()
    return {name.lower(): category for name, category in rows}


#: Unreserved keywords DuckDB's grammar follows with a parenthesis, and what stands before them there: elsewhere
#: DuckDB reads the same name and parenthesis as a function call (``CASE … END * EXCLUDE (x)`` calls exclude()).
#: "*" is a star that starts an expression, "," in ROLLUP/CUBE one of a GROUP BY list.
_GRAMMAR_UNRESERVED: dict[str, frozenset[str]] = {
    "over": frozenset({")"}),
    "sets": frozenset({"grouping"}),
    "rollup": frozenset({"by", ","}),
    "cube": frozenset({"by", ","}),
    "materialized": frozenset({"as", "not"}),
    "exclude": frozenset({"*"}),
    "rename": frozenset({"*"}),
    "replace": frozenset({"*"}),
    "sample": frozenset({"using"}),
}
#: What may stand before a star that starts an expression (``SELECT *``, ``, *``, ``(*``, ``t.*``).
_BEFORE_STAR = frozenset({"select", "distinct", "all", ",", "(", "."})


@functools.cache
def _grammar_keywords() -> frozenset[str]:
    """Keywords whose ``(`` is always grammar: those DuckDB reserves or keeps for types and column-name syntax."""
    return frozenset(n for n, c in _keyword_categories().items() if c != "unreserved")


@functools.cache
def reserved_keywords() -> frozenset[str]:
    """DuckDB's reserved keywords: words that are grammar wherever they stand, never a name or a type."""
    return frozenset(n for n, c in _keyword_categories().items() if c == "reserved")


@dataclass(frozen=True)
class DuckDBReading:
    """DuckDB's reading of one text: its lexer's tokens (start, kind), their first characters, its statements."""

    text: str
    tokens: list[_Token]
    marks: list[str]
    statements: list[Any]


def read_duckdb(text: str) -> DuckDBReading:
    """DuckDB's lexer and parser read ``text``.

    Raises:
        Refusal: QV-001 when DuckDB cannot parse it.

    """
    try:
        tokens = [(pos, kind.value) for pos, kind in duckdb.tokenize(text)]
        with _parser() as parser:
            statements = parser.extract_statements(text)
        if not text.isascii():  # DuckDB counts UTF-8 bytes; the checks below count characters
            tokens = _in_characters(text, tokens)
    except duckdb.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Refusal("QV-001", f"DuckDB cannot parse the statement: {message}") from None
    # Each token's first character: "(", ";", "," and "[" start operator tokens only (no name, literal or number
    # starts so), so these marks tell them apart without comparing token kinds.
    return DuckDBReading(text, tokens, [text[pos] for pos, _ in tokens], statements)


def check_duckdb_reading(
    text: str,
    tree: exp.Expression | None,
    extras: Iterable[str] = (),
    path_allowed: Callable[[str], bool] = lambda path: False,
) -> None:
    """Refuse ``text`` unless DuckDB reads it as one query calling only allowed functions.

    Args:
        text: The statement exactly as it will be sent.
        tree: sqlglot's tree of it, for the names the query defines (CTEs, aliases with column lists).
        extras: The source's declared ``allowed_functions`` (lower case).
        path_allowed: Whether a file reader may read a path (the source's ``allowed_paths``).

    Raises:
        Refusal: the first rule DuckDB's reading breaks.

    """
    judge_duckdb_reading(read_duckdb(text), tree, extras, path_allowed)


def judge_duckdb_reading(
    reading: DuckDBReading,
    tree: exp.Expression | None,
    extras: Iterable[str] = (),
    path_allowed: Callable[[str], bool] = lambda path: False,
) -> None:
    """Refuse what ``reading`` shows unless it is one query calling only allowed functions.

    Without ``tree``, a name the query defines with a parenthesised list after it (a CTE or an alias with
    columns) reads as a call, and is refused as one.

    Raises:
        Refusal: the first rule DuckDB's reading breaks.

    """
    text, tokens, marks = reading.text, reading.tokens, reading.marks
    _check_statements(text, tokens, marks, reading.statements)
    _check_relations(text, tokens, marks)
    _Calls(text, tokens, marks, tree, frozenset(extras), path_allowed).check()


def _check_relations(text: str, tokens: list[_Token], marks: list[str]) -> None:
    """DuckDB's views of its settings, attached files and logs, under any name DuckDB reads as theirs."""
    lowered = text.lower()
    denied = DENIED_RELATIONS[_DIALECT]
    if not any(name in lowered for name in denied):
        return
    for (pos, _), mark in zip(tokens, marks, strict=True):
        if mark not in _NOT_NAMES:
            name = _name(text, pos)
            if name in denied:
                raise refuse(denied[name], f"reading {name}", line_col(text, pos),
                             reason="it shows the gateway's settings, files or other sessions")


def _check_statements(text: str, tokens: list[_Token], marks: list[str], statements: list[Any]) -> None:
    if ";" in marks:
        last = max(i for i, mark in enumerate(marks) if mark != ";") if any(m != ";" for m in marks) else -1
        if ";" in marks[:last]:
            raise Refusal("QV-001", "DuckDB reads more than one statement; send exactly one")
    types = [s.type for s in statements]
    if not (len(types) == 1 and types[0] in _READS):
        pivot = any(kind == KEYWORD and _word(text, pos) == "pivot" for pos, kind in tokens)
        if not (pivot and types == [duckdb.StatementType.CREATE, duckdb.StatementType.SELECT]):
            names = ", ".join(t.name for t in types) or "nothing"
            raise Refusal("QV-001", f"DuckDB reads this as {names}; only one query is accepted")
    words = [_word(text, pos) for pos, _ in tokens[:2]]
    if words[:1] == ["explain"] and words[1:] and words[1] in ("analyze", "analyse"):
        raise refuse("QV-004", "EXPLAIN ANALYZE", reason="it executes its statement")
    if words and not (marks[0] == "(" or words[0] in _LEADING):
        raise refuse("QV-001", f"a statement starting with {words[0]!r}", reason="only queries are accepted")


class _Calls:
    """Every ``name (`` in DuckDB's tokens, judged."""

    def __init__(
        self,
        text: str,
        tokens: list[_Token],
        marks: list[str],
        tree: exp.Expression | None,
        extras: frozenset[str],
        path_allowed: Callable[[str], bool],
    ) -> None:
        self.text = text
        self.tokens = tokens
        self.marks = marks
        self.extras = extras
        self.path_allowed = path_allowed
        self.tree = tree
        self._defined: frozenset[str] | None = None

    @property
    def defined(self) -> frozenset[str]:
        """Names the query defines with a parenthesised list after them: CTEs, aliases with columns."""
        if self._defined is None:
            names: set[str] = set()
            if self.tree is not None:
                for node in self.tree.find_all(exp.CTE, exp.TableAlias):
                    alias = node.args.get("alias") if isinstance(node, exp.CTE) else node
                    if alias is not None and alias.name:
                        names.add(alias.name.lower())
            self._defined = frozenset(names)
        return self._defined

    def check(self) -> None:
        tokens, text, marks = self.tokens, self.text, self.marks
        allowed = allowed_functions(_DIALECT)
        paths = PATH_FUNCTIONS[_DIALECT]
        calls = (i for i, mark in enumerate(marks) if mark == "(" and i > 0)
        for i in (k - 1 for k in calls):
            pos, kind = tokens[i]
            if marks[i] in _NOT_NAMES or kind not in _NAME_KINDS:
                continue
            name = _name(text, pos)
            if name is None:
                raise refuse("QV-001", "a name DuckDB reads but the gateway cannot decode", line_col(text, pos),
                             reason="the gateway cannot analyse it, so it refuses it")
            rule = denied_function_rule(_DIALECT, name)
            if rule:
                raise refuse(rule, f"{name}()", line_col(text, pos))
            if name in paths:
                self.paths(i + 2, name, line_col(text, pos))
            elif name in SETTING_FUNCTIONS:
                self.setting(i + 2, name, line_col(text, pos))
            elif name in allowed or name in self.extras:
                continue
            elif name == "operator" and kind == KEYWORD:
                self.operator(i + 2)
            elif kind == KEYWORD and (name in _grammar_keywords() or self.grammar(i, name)):
                continue  # grammar: IN (, EXISTS (, AS (, CAST (, DECIMAL (, … OVER (, GROUPING SETS (
            elif name in _TYPE_NAMES or name in self.defined:
                continue
            elif name in _SAMPLING and i > 0 and _word(text, tokens[i - 1][0]) in ("sample", "tablesample"):
                continue
            else:
                raise refuse("QV-011", f"{name}()", line_col(text, pos))

    def grammar(self, i: int, name: str) -> bool:
        """Whether the unreserved keyword at ``i`` stands where DuckDB's grammar, not a call, takes its ``(``."""
        before = _GRAMMAR_UNRESERVED.get(name)
        if before is None or i == 0:
            return False
        previous = self._word_at(i - 1)
        if previous == "*":
            return "*" in before and i >= 2 and self._word_at(i - 2) in _BEFORE_STAR
        if previous == ",":
            return "," in before and self._in_group_by(i - 1)
        return previous in before

    def _word_at(self, i: int) -> str:
        mark = self.marks[i]
        return mark if mark in _NOT_NAMES else _word(self.text, self.tokens[i][0])

    def _in_group_by(self, comma: int) -> bool:
        """Whether the comma at ``comma`` separates a GROUP BY list (scanning back at its own depth)."""
        depth = 0
        for k in range(comma - 1, 0, -1):
            mark = self.marks[k]
            if mark == ")":
                depth += 1
            elif mark == "(":
                if depth == 0:
                    return False
                depth -= 1
            elif depth == 0 and self.tokens[k][1] == KEYWORD:
                word = _word(self.text, self.tokens[k][0])
                if word == "by":
                    return self._word_at(k - 1) == "group"
                if word in _CLAUSES:
                    return False
        return False

    def operator(self, k: int) -> None:
        """``a OPERATOR(x.+) b``: DuckDB reads it as a call of the function ``x`` with both operands."""
        tokens, text = self.tokens, self.text
        if k + 1 < len(tokens) and self.marks[k + 1] == "." and self.marks[k] not in _NOT_NAMES:
            name = _name(text, tokens[k][0])
            rule = denied_function_rule(_DIALECT, name) if name else "QV-001"
            allowed = name is not None and (name in allowed_functions(_DIALECT) or name in self.extras)
            if rule or not allowed:
                raise refuse(rule or "QV-011", f"OPERATOR({name}.) (a call of {name}())", line_col(text, tokens[k][0]))

    def paths(self, k: int, name: str, where: tuple[int, int] | None) -> None:
        """A file reader's first argument: one literal path or a list of them, each under allowed_paths."""
        tokens, text = self.tokens, self.text
        found: list[str | None] = []
        if k < len(tokens) and _is(text, tokens[k], "["):
            k += 1
            while k < len(tokens) and tokens[k][1] == STRING:
                found.append(_string(text, tokens[k][0]))
                k += 1
                if k < len(tokens) and _is(text, tokens[k], ","):
                    k += 1
            if not (k < len(tokens) and _is(text, tokens[k], "]")):
                found.append(None)
            k += 1
        elif k < len(tokens) and tokens[k][1] == STRING:
            found.append(_string(text, tokens[k][0]))
            k += 1
        closed = k < len(tokens) and (_is(text, tokens[k], ",") or _is(text, tokens[k], ")"))
        if not found or None in found or not closed:
            raise refuse("QV-005", f"{name}() with a computed path", where,
                         reason="file readers take literal paths under the source's own locations only")
        for path in found:
            if path is None or not self.path_allowed(path):
                raise refuse("QV-005", f"{name}({path!r})", where, reason="it reads outside the source's own files")

    def setting(self, k: int, name: str, where: tuple[int, int] | None) -> None:
        tokens, text = self.tokens, self.text
        value = _string(text, tokens[k][0]) if k < len(tokens) and tokens[k][1] == STRING else None
        closed = k + 1 < len(tokens) and _is(text, tokens[k + 1], ")")
        if value is None or not closed:
            raise refuse(
                "QV-005", f"{name}() of a computed name", where, reason="settings are read by literal name only"
            )
        if value.lower() in PATH_SETTINGS[_DIALECT]:
            raise refuse("QV-005", f"{name}({value!r})", where, reason="it holds a path on the gateway's machine")


def _in_characters(text: str, tokens: list[_Token]) -> list[_Token]:
    """Tokens with character offsets instead of DuckDB's byte offsets."""
    char_at: dict[int, int] = {}
    offset = 0
    for index, char in enumerate(text):
        char_at[offset] = index
        offset += len(char.encode("utf-8"))
    return [(char_at[pos], kind) for pos, kind in tokens]


def _is(text: str, token: _Token, char: str) -> bool:
    return token[1] == OPERATOR and text.startswith(char, token[0])


def _word(text: str, pos: int) -> str:
    match = _UNQUOTED.match(text, pos)
    return match.group().lower() if match else text[pos : pos + 1]


def _name(text: str, pos: int) -> str | None:
    """The name of an identifier or keyword token as DuckDB looks functions up (case-insensitive)."""
    if text.startswith('"', pos):
        quoted = _quoted(text, pos, '"')
        return quoted.lower() if quoted is not None else None
    match = _UNQUOTED.match(text, pos)
    return match.group().lower() if match else None


def _string(text: str, pos: int) -> str | None:
    """The value of a plain ``'...'`` literal; None for any other form (E'', $$, X'') the gateway won't decode."""
    return _quoted(text, pos, "'")


def _quoted(text: str, pos: int, quote: str) -> str | None:
    """The content of a token quoted with ``quote`` at ``pos`` (a doubled quote stands for one); None if unclosed."""
    if not text.startswith(quote, pos):
        return None
    end = pos + 1
    while True:
        end = text.find(quote, end)
        if end < 0:
            return None
        if text.startswith(quote * 2, end):
            end += 2
            continue
        return text[pos + 1 : end].replace(quote * 2, quote)
