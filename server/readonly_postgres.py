r"""PostgreSQL's own reading of a statement, judged: the validator's check for PostgreSQL-family sources.

sqlglot and PostgreSQL do not always read the same text the same way: ``U&"\0070g_read_file"('/x')`` is a call
of ``pg_read_file`` for PostgreSQL and a bitwise AND of a column ``U`` and an unknown function for sqlglot. So
for a source whose engine is PostgreSQL the statement is parsed again with PostgreSQL's own parser (libpg_query,
through ``pglast``), which decodes identifiers, escapes, comments and operators exactly as the server will, and
that tree decides:

- exactly one statement, a query: SELECT (with VALUES, TABLE, set operations, WITH), SHOW, or EXPLAIN of a
  query without ANALYZE; no ``SELECT ... INTO``, no ``FOR UPDATE/SHARE``, no INSERT/UPDATE/DELETE/MERGE in a CTE;
- every function called is on PostgreSQL's allow-list (``server/allowlists/postgres.txt``: immutable and stable
  functions of ``pg_catalog``, plus reviewed ones) or among the source's declared ``allowed_functions``; a
  denied function keeps its own rule (pg_sleep QV-004, pg_read_file QV-005, ...), anything else is QV-011;
- a function on a deny list is refused also when written as a field (``t.pg_read_file``, PostgreSQL's
  functional notation), and operators qualified with a schema other than ``pg_catalog`` are refused;
- the configuration-file views, password catalogs and other sessions' queries (``DENIED_RELATIONS``) and
  ``current_setting`` of a path setting, or of a computed name, are refused.

sqlglot still routes and transpiles; this check only adds refusals. The server's own read-only transaction
and a least-privilege login (``backends/postgres.py``) are the second line behind it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from pglast import parser as pg_parser

from backends.adbc_common import rewrite_placeholders
from server.readonly_refusal import Refusal, line_col, refuse
from server.readonly_rules import (
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


def check_postgres_reading(text: str, extras: Iterable[str] = ()) -> None:
    """Refuse ``text`` unless PostgreSQL reads it as one query calling only allowed functions.

    Args:
        text: The statement exactly as it will be sent.
        extras: The source's declared ``allowed_functions`` (``name`` or ``schema.name``, lower case).

    Raises:
        Refusal: the first rule PostgreSQL's reading breaks.

    """
    if "?" in text:  # the backend numbers the gateway's ? placeholders before PostgreSQL sees them
        text = rewrite_placeholders(text, "postgres", lambda n: f"${n}")
    try:
        root = json.loads(pg_parser.parse_sql_json(text))
    except pg_parser.ParseError as exc:
        raise Refusal("QV-001", f"PostgreSQL cannot parse the statement: {exc.args[0]}") from None
    statements = root.get("stmts") or []
    if len(statements) != 1:
        raise Refusal("QV-001", f"PostgreSQL reads {len(statements)} statements; send exactly one")
    _Judge(text, frozenset(extras)).statement(statements[0]["stmt"])


class _Judge:
    """One walk over PostgreSQL's parse tree (JSON objects whose single key is the node's type)."""

    def __init__(self, text: str, extras: frozenset[str]) -> None:
        self.text = text
        self.extras = extras
        self.allowed = allowed_functions(_DIALECT)
        self._encoded: bytes | None = None

    def position(self, node: dict) -> tuple[int, int] | None:
        """Line and column of a node: libpg_query counts bytes of the UTF-8 text."""
        location = node.get("location")
        if not isinstance(location, int) or location < 0:
            return None
        if self.text.isascii():
            return line_col(self.text, location)
        if self._encoded is None:
            self._encoded = self.text.encode("utf-8")
        return line_col(self.text, len(self._encoded[:location].decode("utf-8", errors="ignore")))

    def statement(self, stmt: dict) -> None:
        kind, body = next(iter(stmt.items()))
        if kind == "ExplainStmt":
            for option in body.get("options") or []:
                if option.get("DefElem", {}).get("defname") in ("analyze", "analyse"):
                    raise refuse("QV-004", "EXPLAIN ANALYZE", reason="it executes its statement")
            query = body.get("query") or {}
            if next(iter(query), None) != "SelectStmt":
                raise refuse("QV-001", "EXPLAIN of a non-query", reason="EXPLAIN explains queries only")
        elif kind not in ("SelectStmt", "VariableShowStmt"):
            rule, construct = _STATEMENT_RULES.get(kind, ("QV-001", f"a {kind} statement"))
            raise refuse(rule, f"{construct} (as PostgreSQL reads it)")
        self.walk(stmt)

    def walk(self, tree: dict) -> None:
        stack: list = [tree]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(node)
                continue
            if not isinstance(node, dict):
                continue
            for key, value in node.items():
                if isinstance(value, (dict, list)):
                    stack.append(value)
                if not isinstance(value, dict) or not key[:1].isupper():
                    continue
                check = _NODE_CHECKS.get(key)
                if check is not None:
                    check(self, value)
                elif key in _STATEMENT_RULES:  # a data-modifying CTE
                    rule, construct = _STATEMENT_RULES[key]
                    raise refuse(rule, f"{construct} inside the query", self.position(value))

    # -- nodes --------------------------------------------------------------------------------------------------

    def select(self, node: dict) -> None:
        if node.get("intoClause"):
            raise refuse("QV-002", "SELECT ... INTO", reason="it creates a table")
        if node.get("lockingClause"):
            raise refuse("QV-007", "FOR UPDATE/SHARE")

    def function(self, node: dict) -> None:
        names = _strings(node.get("funcname"))
        if not names:
            return
        name = names[-1]  # exactly as PostgreSQL looks it up: unquoted names are already folded
        schema = names[-2] if len(names) > 1 else None
        position = self.position(node)
        rule = denied_function_rule(_DIALECT, name)
        if rule:
            raise refuse(rule, f"{name}()", position)
        qualified = f"{schema}.{name}" if schema else name
        system = schema in (None, _SYSTEM_SCHEMA)
        if not ((system and name in self.allowed) or qualified in self.allowed or qualified in self.extras
                or (system and name in self.extras)):
            raise refuse("QV-011", f"{qualified}()", position)
        if name in SETTING_FUNCTIONS:
            self.setting(node, name, position)

    def setting(self, node: dict, name: str, position) -> None:
        arguments = node.get("args") or []
        first = arguments[0].get("A_Const", {}) if arguments else {}
        setting = first.get("sval", {}).get("sval") if isinstance(first.get("sval"), dict) else None
        if setting is None:
            raise refuse("QV-005", f"{name}() of a computed name", position,
                         reason="settings are read by literal name only")
        if setting.lower() in PATH_SETTINGS[_DIALECT]:
            raise refuse("QV-005", f"{name}({setting!r})", position, reason="it holds a path on the server")

    def field(self, node: dict, fields_key: str) -> None:
        """``t.pg_read_file``: PostgreSQL calls a one-argument function written as a field of a row."""
        names = _strings(node.get(fields_key))
        if len(names) >= 1 and (len(names) > 1 or fields_key == "indirection"):
            rule = denied_function_rule(_DIALECT, names[-1])
            if rule:
                raise refuse(rule, f"{names[-1]} (a function called as a field)", self.position(node))

    def relation(self, node: dict) -> None:
        name = str(node.get("relname", ""))
        schema = node.get("schemaname")
        rule = DENIED_RELATIONS[_DIALECT].get(name)
        if rule and schema in (None, _SYSTEM_SCHEMA):
            raise refuse(rule, f"reading {name}", self.position(node),
                         reason="it shows the server's configuration, credentials or other sessions")

    def operator(self, node: dict) -> None:
        names = _strings(node.get("name"))
        if len(names) > 1 and names[-2] != _SYSTEM_SCHEMA:
            raise refuse("QV-011", f"the operator {'.'.join(names)}", self.position(node),
                         reason="operators outside pg_catalog may run any function")


_NODE_CHECKS = {
    "SelectStmt": _Judge.select,
    "FuncCall": _Judge.function,
    "ColumnRef": lambda judge, node: judge.field(node, "fields"),
    "A_Indirection": lambda judge, node: judge.field(node, "indirection"),
    "RangeVar": _Judge.relation,
    "A_Expr": _Judge.operator,
}


def _strings(items) -> list[str]:
    """The ``String`` values of a name list (``A_Star`` and other nodes are skipped)."""
    out = []
    for item in items or []:
        value = item.get("String") if isinstance(item, dict) else None
        if value is not None:
            out.append(value.get("sval", ""))
    return out
