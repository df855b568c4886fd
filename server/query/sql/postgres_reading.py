r"""PostgreSQL's own reading of a statement, judged: the validator's check for PostgreSQL-family sources.

sqlglot and PostgreSQL do not always read the same text the same way: ``U&"\0070g_read_file"('/x')`` is a call
of ``pg_read_file`` for PostgreSQL and a bitwise AND of a column ``U`` and an unknown function for sqlglot. So
for a source whose engine is PostgreSQL the statement is parsed again with PostgreSQL's own parser (libpg_query,
through ``pglast``), which decodes identifiers, escapes, comments and operators exactly as the server will, and
that tree decides:

- exactly one statement, a query: SELECT (with VALUES, TABLE, set operations, WITH), SHOW, or EXPLAIN of a
  query without ANALYZE; no ``SELECT ... INTO``, no ``FOR UPDATE/SHARE``, no INSERT/UPDATE/DELETE/MERGE in a CTE;
- every function called is on PostgreSQL's allow-list (``server/query/sql/allowlists/postgres.txt``: immutable
  and stable functions of ``pg_catalog``, plus reviewed ones) or among the source's declared ``allowed_functions``; a
  denied function keeps its own rule (pg_sleep QV-004, pg_read_file QV-005, ...), anything else is QV-011;
- a function on a deny list is refused also when written as a field (``t.pg_read_file``, PostgreSQL's
  functional notation), and operators qualified with a schema other than ``pg_catalog`` are refused;
- the configuration-file views, password catalogs and other sessions' queries (``DENIED_RELATIONS``) and
  ``current_setting`` of a path setting, or of a computed name, are refused.

sqlglot still routes and transpiles; this check adds refusals to its verdict, or, for a plain query that needs
neither, decides alone (``postgres_alone.py``). The server's own read-only transaction and a least-privilege login
(``backends/postgres.py``) are the second line behind it.

Speed: libpg_query hands the tree over as JSON, and the nodes judged here are found in that text with regular
expressions rather than by decoding and walking every node in Python (five times faster). That is exact, not
a heuristic: inside a JSON string every ``"`` is escaped, so ``"FuncCall":{"funcname":[`` can only be the
node itself, never the content of a literal or an identifier; and it fails closed: when a node type occurs more
often than its pattern matched (a format the patterns do not know), the statement is refused. Positions are
looked up in the decoded tree only for a refusal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pglast import parser as pg_parser

from nexus_flight.core.plan import replace_placeholders
from nexus_flight.server.query.sql.refusal import Refusal, line_col, refuse
from nexus_flight.server.query.sql.rules import (
    DENIED_RELATIONS,
    PATH_SETTINGS,
    SETTING_FUNCTIONS,
    allowed_functions,
    denied_function_rule,
)

_DIALECT = "postgres"
_SYSTEM_SCHEMA = "pg_catalog"

#: Statements other than queries, by PostgreSQL's node name, with the rule that refuses them.
_STATEMENT_RULES = {
    "InsertStmt": ("QV-002", "INSERT"),
    "UpdateStmt": ("QV-002", "UPDATE"),
    "DeleteStmt": ("QV-002", "DELETE"),
    "MergeStmt": ("QV-002", "MERGE"),
    "CopyStmt": ("QV-005", "COPY"),
    "CallStmt": ("QV-004", "CALL"),
    "DoStmt": ("QV-004", "DO"),
    "ExecuteStmt": ("QV-004", "EXECUTE"),
    "PrepareStmt": ("QV-004", "PREPARE"),
    "DeclareCursorStmt": ("QV-004", "DECLARE"),
    "NotifyStmt": ("QV-004", "NOTIFY"),
    "ListenStmt": ("QV-004", "LISTEN"),
    "VariableSetStmt": ("QV-006", "SET"),
    "DiscardStmt": ("QV-006", "DISCARD"),
    "TransactionStmt": ("QV-007", "a transaction statement"),
    "LockStmt": ("QV-007", "LOCK"),
}


def check_postgres_reading(text: str, extras: Iterable[str] = (), placeholders: Sequence[int] = ()) -> None:
    """Refuse ``text`` unless PostgreSQL reads it as one query calling only allowed functions.

    Args:
        text: The statement exactly as it will be sent.
        extras: The source's declared ``allowed_functions`` (``name`` or ``schema.name``, lower case).
        placeholders: Where the gateway's ``?`` placeholders stand in ``text`` (from its tokens).

    Raises:
        Refusal: the first rule PostgreSQL's reading breaks.

    """
    # The backend numbers the gateway's ? placeholders before PostgreSQL sees them.
    text = replace_placeholders(text, placeholders, lambda n: f"${n}")
    try:
        tree = pg_parser.parse_sql_json(text)
    except pg_parser.ParseError as exc:
        raise Refusal("QV-001", f"PostgreSQL cannot parse the statement: {exc.args[0]}") from None
    judge_postgres_reading(text, tree, extras)


def judge_postgres_reading(text: str, tree: str, extras: Iterable[str] = ()) -> None:
    """Refuse what ``tree`` (libpg_query's JSON of ``text``) shows unless it is one query of allowed calls.

    Raises:
        Refusal: the first rule PostgreSQL's reading breaks.

    """
    _Reading(text, tree, frozenset(extras)).judge()


_STRING = r'"(?:[^"\\]|\\.)*"'
_NAMES = rf'\[((?:\{{"String":\{{"sval":{_STRING}\}}\}},?)+)\]'
_STATEMENT = re.compile(r'\{"stmt":\{"(\w+)":')
_EXPLAINED = re.compile(r'"ExplainStmt":\{"query":\{"(\w+)"')
_DML = re.compile(r'"(InsertStmt|UpdateStmt|DeleteStmt|MergeStmt)":')
#: A call: its name list, and the value of a literal first argument (``current_setting('x')``).
_FUNCTION = re.compile(
    rf'"FuncCall":\{{"funcname":{_NAMES}(?:,"args":\[(?:\{{"A_Const":\{{"sval":\{{"sval":({_STRING})\}})?)?'
)
_RELATION = re.compile(
    rf'"RangeVar":\{{(?:"catalogname":{_STRING},)?(?:"schemaname":({_STRING}),)?"relname":({_STRING})'
)
_OPERATOR = re.compile(rf'"A_Expr":\{{"kind":"\w+","name":{_NAMES}')
_IDENTIFIER = re.compile(rf'\{{"String":\{{"sval":({_STRING})\}}\}}')
_SVAL = re.compile(rf'"sval":({_STRING})')


def _value(token: str) -> str:
    """A JSON string token's value (decoded only when it holds an escape)."""
    return json.loads(token) if "\\" in token else token[1:-1]


def _names(group: str) -> list[str]:
    return [_value(t) for t in _SVAL.findall(group)]


class _Reading:
    """PostgreSQL's reading of one statement (libpg_query's JSON), judged rule by rule."""

    def __init__(self, text: str, tree: str, extras: frozenset[str]) -> None:
        self.text = text
        self.tree = tree
        self.extras = extras
        self.allowed = allowed_functions(_DIALECT)
        self._decoded: dict[str, Any] | None = None

    def judge(self) -> None:
        self.statement()
        self.functions()
        self.relations()
        self.operators()
        self.fields()

    def _complete(self, key: str, matched: int) -> None:
        """Fail closed: every node of this type must have been matched by its pattern."""
        if self.tree.count(f'"{key}":') != matched:
            raise refuse("QV-001", f"a {key} node in a form the gateway does not know",
                         reason="the gateway cannot analyse it, so it refuses it")

    def statement(self) -> None:
        tree = self.tree
        kinds = _STATEMENT.findall(tree)
        if len(kinds) != 1 or tree.count('"stmt":') != 1:
            raise Refusal("QV-001", f"PostgreSQL reads {tree.count(chr(34) + 'stmt' + chr(34))} statements; "
                                    "send exactly one")
        kind = kinds[0]
        if kind == "ExplainStmt":
            if '"defname":"analyze"' in tree or '"defname":"analyse"' in tree:
                raise refuse("QV-004", "EXPLAIN ANALYZE", reason="it executes its statement")
            if _EXPLAINED.findall(tree) != ["SelectStmt"]:
                raise refuse("QV-001", "EXPLAIN of a non-query", reason="EXPLAIN explains queries only")
        elif kind not in ("SelectStmt", "VariableShowStmt"):
            rule, construct = _STATEMENT_RULES.get(kind, ("QV-001", f"a {kind} statement"))
            raise refuse(rule, f"{construct} (as PostgreSQL reads it)")
        dml = _DML.search(tree)
        if dml:
            rule, construct = _STATEMENT_RULES[dml.group(1)]
            raise refuse(rule, f"{construct} inside the query", self.position(dml.group(1)))
        if '"intoClause":' in tree:
            raise refuse("QV-002", "SELECT ... INTO", reason="it creates a table")
        if '"lockingClause":' in tree:
            raise refuse("QV-007", "FOR UPDATE/SHARE")

    def functions(self) -> None:
        matches = _FUNCTION.findall(self.tree)
        self._complete("FuncCall", len(matches))
        for names_group, literal in matches:
            names = _names(names_group)
            name = names[-1]  # exactly as PostgreSQL looks it up: unquoted names are already folded
            schema = names[-2] if len(names) > 1 else None
            rule = denied_function_rule(_DIALECT, name)
            if rule:
                raise refuse(rule, f"{name}()", self.position("FuncCall", name))
            qualified = f"{schema}.{name}" if schema else name
            system = schema in (None, _SYSTEM_SCHEMA)
            if not ((system and name in self.allowed) or qualified in self.allowed or qualified in self.extras
                    or (system and name in self.extras)):
                raise refuse("QV-011", f"{qualified}()", self.position("FuncCall", name))
            if name in SETTING_FUNCTIONS:
                self.setting(name, _value(literal) if literal else None)

    def setting(self, name: str, setting: str | None) -> None:
        position = self.position("FuncCall", name)
        if setting is None:
            raise refuse("QV-005", f"{name}() of a computed name", position,
                         reason="settings are read by literal name only")
        if setting.lower() in PATH_SETTINGS[_DIALECT]:
            raise refuse("QV-005", f"{name}({setting!r})", position, reason="it holds a path on the server")

    def relations(self) -> None:
        matches = _RELATION.findall(self.tree)
        self._complete("RangeVar", len(matches))
        denied = DENIED_RELATIONS[_DIALECT]
        for schema, relation in matches:
            name = _value(relation)
            if name in denied and (not schema or _value(schema) == _SYSTEM_SCHEMA):
                raise refuse(denied[name], f"reading {name}", self.position("RangeVar", name),
                             reason="it shows the server's configuration, credentials or other sessions")

    def operators(self) -> None:
        matches = _OPERATOR.findall(self.tree)
        self._complete("A_Expr", len(matches))
        for group in matches:
            names = _names(group)
            if len(names) > 1 and names[-2] != _SYSTEM_SCHEMA:
                raise refuse("QV-011", f"the operator {'.'.join(names)}", self.position("A_Expr"),
                             reason="operators outside pg_catalog may run any function")

    def fields(self) -> None:
        """``t.pg_read_file``: PostgreSQL calls a one-argument function written as a field of a row.

        Every identifier of the tree is looked at (function names were judged above): one spelled like a denied
        function, or starting with a denied prefix, is refused, wherever it stands.
        """
        for token in dict.fromkeys(_IDENTIFIER.findall(self.tree)):  # each name once, in order: most repeat
            name = _value(token)
            rule = denied_function_rule(_DIALECT, name)  # names and prefixes (lo_…), as for calls
            if rule:
                raise refuse(rule, f"{name} (a function called as a field)", self.position("ColumnRef", name))

    # -- positions, for refusals only --------------------------------------------------------------------------

    def position(self, kind: str, name: str | None = None) -> tuple[int, int] | None:
        """Line and column of the first ``kind`` node (naming ``name``): libpg_query counts UTF-8 bytes."""
        if self._decoded is None:
            self._decoded = json.loads(self.tree)
        stack: list[Any] = [self._decoded]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(reversed(node))
            elif isinstance(node, dict):
                found = node.get(kind)
                if isinstance(found, dict) and (name is None or name in json.dumps(found)):
                    return self._line_col(found.get("location"))
                stack.extend(reversed(list(node.values())))
        return None

    def _line_col(self, location: object) -> tuple[int, int] | None:
        if not isinstance(location, int) or location < 0:
            return None
        if self.text.isascii():
            return line_col(self.text, location)
        return line_col(self.text, len(self.text.encode("utf-8")[:location].decode("utf-8", errors="ignore")))
