"""The validator's walk over sqlglot's tree: every node checked against the source's rules, in one pass.

What the walk refuses: writes, DDL and side effects as nodes (``NODE_RULES``), denied and unknown functions,
file readers and path-like table names outside the source's ``allowed_paths``, settings and relations that show
the server's paths or other sessions, ClickHouse ``SETTINGS``, variable assignments, ``FOR UPDATE/SHARE``; and the
limits on joins and on depth (expression, operators, subqueries). ``server/query/sql/readonly.py`` runs it after
the statement has parsed.
"""

from __future__ import annotations

import enum
import functools
import posixpath
import re
from dataclasses import dataclass
from typing import cast

from sqlglot import exp
from sqlglot.tokens import Token, TokenType

from nexus_flight.core.source import ValidationLimits
from nexus_flight.server.query.sql.refusal import Refusal, line_col, refuse
from nexus_flight.server.query.sql.rules import (
    DENIED_RELATIONS,
    PATH_FUNCTIONS,
    PATH_SETTINGS,
    PATH_TABLE_DIALECTS,
    PATH_TABLE_MARKERS,
    RULES,
    SETTING_FUNCTIONS,
    SYSTEM_SCHEMAS,
    allowed_functions,
    denied_function_rule,
    rules_dialect,
)

#: Statements and clauses refused wherever they appear in the tree: (rule, how the refusal names them).
_DML = {exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE", exp.Merge: "MERGE"}
NODE_RULES: dict[type, tuple[str, str]] = {
    **{cls: ("QV-002", name) for cls, name in _DML.items()},
    exp.LoadData: ("QV-002", "LOAD DATA"),
    exp.Copy: ("QV-005", "COPY"),
    exp.Export: ("QV-005", "EXPORT"),
    exp.Create: ("QV-003", "CREATE"),
    exp.Drop: ("QV-003", "DROP"),
    exp.Alter: ("QV-003", "ALTER"),
    exp.TruncateTable: ("QV-003", "TRUNCATE"),
    exp.Comment: ("QV-003", "COMMENT"),
    exp.Grant: ("QV-003", "GRANT"),
    exp.Revoke: ("QV-003", "REVOKE"),
    exp.Analyze: ("QV-003", "ANALYZE"),
    exp.Refresh: ("QV-003", "REFRESH"),
    exp.Cache: ("QV-003", "CACHE"),
    exp.SwapTable: ("QV-003", "SWAP"),
    exp.Execute: ("QV-004", "EXECUTE"),
    exp.ExecuteSql: ("QV-004", "EXECUTE"),
    exp.Declare: ("QV-004", "DECLARE"),
    exp.Kill: ("QV-004", "KILL"),
    exp.Set: ("QV-006", "SET"),
    exp.Pragma: ("QV-006", "PRAGMA"),
    exp.Use: ("QV-006", "USE"),
    exp.Attach: ("QV-006", "ATTACH"),
    exp.Detach: ("QV-006", "DETACH"),
    exp.Install: ("QV-006", "INSTALL"),
    exp.Transaction: ("QV-007", "BEGIN"),
    exp.Commit: ("QV-007", "COMMIT"),
    exp.Rollback: ("QV-007", "ROLLBACK"),
    exp.Into: ("QV-002", "SELECT ... INTO"),
}


class _Kind(enum.Enum):
    PLAIN = 0
    FUNCTION = 1
    TABLE = 2
    SELECT = 3
    JOIN = 4
    PLACEHOLDER = 5
    PARAMETER = 6
    SPECIAL = 7


#: class -> (its kind, whether it is an operator that nests: a binary one other than AND/OR).
_KINDS: dict[type, tuple[_Kind, bool]] = {}
_SPECIAL = (exp.Summarize, exp.PropertyEQ, exp.Lock, exp.Command, exp.Column, exp.Operator)


def _kind_of(cls: type) -> tuple[_Kind, bool]:
    """Classify nodes of a class for the walker (computed once per class)."""
    if cls in NODE_RULES or cls in _SPECIAL:
        kind = _Kind.SPECIAL
    elif issubclass(cls, exp.Func):
        kind = _Kind.FUNCTION
    else:
        kinds: dict[type, _Kind] = {
            exp.Table: _Kind.TABLE,
            exp.Select: _Kind.SELECT,
            exp.Join: _Kind.JOIN,
            exp.Placeholder: _Kind.PLACEHOLDER,
            exp.Parameter: _Kind.PARAMETER,
        }
        kind = kinds.get(cls, _Kind.PLAIN)
    entry = _KINDS[cls] = (kind, issubclass(cls, exp.Binary) and not issubclass(cls, exp.Connector))
    return entry


@dataclass(frozen=True)
class _WalkerRules:
    """What the walker checks against for one source's settings (the same for every query of the source)."""

    allowed_paths: tuple[str, ...]
    path_functions: frozenset[str]
    path_tables: bool
    clickhouse: bool
    postgres: bool
    duckdb: bool
    #: Calls sqlglot does not model must be on the allow-list of the dialect the statement is read in.
    read_family: str
    allowed: frozenset[str]
    allowed_duckdb: frozenset[str]
    denied_relations: dict[str, dict[str, str]]


@functools.lru_cache(maxsize=256)
def _walker_rules(
    allowed_paths: tuple[str, ...], rule_dialects: tuple[str, ...], extras: tuple[str, ...]
) -> _WalkerRules:
    """Made once per source's settings: the allow-list unions copy thousands of names."""
    families = {rules_dialect(d) for d in rule_dialects}
    read_family = rules_dialect(rule_dialects[0]) if rule_dialects else ""
    duckdb = "duckdb" in families
    return _WalkerRules(
        allowed_paths=tuple(normalised_prefix(p) for p in allowed_paths),
        path_functions=frozenset().union(*(PATH_FUNCTIONS.get(f, frozenset()) for f in families)),
        path_tables=bool(families & PATH_TABLE_DIALECTS),
        clickhouse="clickhouse" in families,
        postgres="postgres" in families,
        duckdb=duckdb,
        read_family=read_family,
        allowed=allowed_functions(read_family) | frozenset(extras),
        allowed_duckdb=allowed_functions("duckdb") | frozenset(extras) if duckdb else frozenset(),
        denied_relations={f: DENIED_RELATIONS[f] for f in families if f in DENIED_RELATIONS},
    )


class Walker:
    """One pass over every node, iterative (a deep tree cannot exhaust the stack here)."""

    def __init__(
        self,
        text: str,
        tokens: list[Token],
        limits: ValidationLimits,
        allowed_paths: tuple[str, ...],
        rule_dialects: tuple[str, ...],
        extras: tuple[str, ...] = (),
    ) -> None:
        self.text = text
        self.tokens = tokens
        self.limits = limits
        self.rule_dialects = rule_dialects
        rules = _walker_rules(allowed_paths, rule_dialects, extras)
        self.allowed_paths, self.path_functions = rules.allowed_paths, rules.path_functions
        self.path_tables, self.denied_relations = rules.path_tables, rules.denied_relations
        self.clickhouse, self.postgres, self.duckdb = rules.clickhouse, rules.postgres, rules.duckdb
        self.read_family, self.allowed, self.allowed_duckdb = rules.read_family, rules.allowed, rules.allowed_duckdb

    def walk(self, tree: exp.Expression) -> tuple[int, tuple[str, ...]]:
        """Check every node; return the parameter count and the catalogs of three-part table names.

        Most trees are too small to break a depth limit: a tree of n nodes is at most n deep, and holds at most
        as many nested operators and queries as it has operators and queries. So one pass with sqlglot's own
        (compiled) iteration counts them and checks each node, and only a tree whose counts exceed a limit is
        walked again for its depths.
        """
        limits = self.limits
        nodes = operators = queries = joins = placeholders = numbered = 0
        catalogs: dict[str, None] = {}
        for node in tree.walk():
            nodes += 1
            cls = type(node)
            kind, operator = _KINDS.get(cls) or _kind_of(cls)
            if operator:
                operators += 1
            if kind is _Kind.PLAIN:
                continue
            if kind is _Kind.FUNCTION:
                self._check_function(cast(exp.Func, node))
            elif kind is _Kind.TABLE:
                self._check_table(cast(exp.Table, node))
                if node.args.get("catalog"):
                    catalogs[cast(exp.Table, node).catalog] = None
            elif kind is _Kind.SELECT:
                queries += 1
                self._check_select(cast(exp.Select, node))
            elif kind is _Kind.JOIN:
                joins += 1
                if joins > limits.max_joins:
                    raise Refusal(
                        "QV-008",
                        f"more than max_joins={limits.max_joins} joins: {RULES['QV-008'].reason}",
                        self._find(("join",)),
                    )
            elif kind is _Kind.PLACEHOLDER:
                placeholders += 1
            elif kind is _Kind.PARAMETER:
                numbered = max(numbered, _parameter_number(cast(exp.Parameter, node)))
            else:
                self._check_special(cast(exp.Expression, node), cls)
        if (
            nodes > limits.max_expression_depth
            or operators > limits.max_operator_depth
            or queries > limits.max_nesting
        ):
            self._check_depths(tree)
        return placeholders + numbered, tuple(catalogs)

    def _check_depths(self, tree: exp.Expression) -> None:
        """The depth limits, on the way down (a stack: a deep tree cannot exhaust Python's)."""
        limits = self.limits
        stack: list[tuple[exp.Expression, int, int, int]] = [(tree, 0, 0, 0)]
        pop, push = stack.pop, stack.append
        while stack:
            node, depth, query_depth, operator_depth = pop()
            if depth > limits.max_expression_depth:
                raise Refusal(
                    "QV-008",
                    f"expression deeper than max_expression_depth={limits.max_expression_depth}: "
                    f"{RULES['QV-008'].reason}",
                )
            kind, operator = _KINDS.get(type(node)) or _kind_of(type(node))
            if operator:
                operator_depth += 1
                if operator_depth > limits.max_operator_depth:
                    raise Refusal(
                        "QV-008",
                        f"more than max_operator_depth={limits.max_operator_depth} operators nested in one "
                        f"expression (write long sums as sum() over rows): {RULES['QV-008'].reason}",
                    )
            elif kind is _Kind.SELECT:
                query_depth += 1
                if query_depth > limits.max_nesting:
                    raise Refusal(
                        "QV-008",
                        f"subqueries nest deeper than max_nesting={limits.max_nesting}: {RULES['QV-008'].reason}",
                    )
            depth += 1
            for child in node.iter_expressions():
                push((child, depth, query_depth, operator_depth))

    def _check_special(self, node: exp.Expression, cls: type) -> None:
        """Nodes that are refused outright, or refused depending on their arguments."""
        if cls is exp.Column:
            if self.postgres and node.args.get("table"):
                self._check_field_call(cast(exp.Column, node))
        elif cls is exp.Operator:
            operator = str(node.args.get("operator") or "")
            qualifier = operator.rsplit(".", 1)[0].lower() if "." in operator else ""
            if self.postgres and qualifier and qualifier != "pg_catalog":
                raise refuse("QV-011", f"the operator {operator}", self._find(("operator",)),
                             reason="operators outside pg_catalog may run any function")
            if self.duckdb and qualifier and qualifier not in self.allowed_duckdb:
                # DuckDB reads OPERATOR(x.+) as a call of the function x.
                rule = denied_function_rule("duckdb", qualifier) or "QV-011"
                raise refuse(rule, f"OPERATOR({qualifier}.) (a call of {qualifier}())", self._find(("operator",)))
        elif cls is exp.Summarize:
            if isinstance(node.this, exp.Literal):
                self._check_table(exp.Table(this=node.this))
        elif cls is exp.PropertyEQ:
            if isinstance(node.this, (exp.Parameter, exp.SessionParameter)):
                raise refuse("QV-006", "assigning a variable (:=)", self._find((":=",)))
        elif cls is exp.Lock:
            construct = "FOR UPDATE" if node.args.get("update") else "FOR SHARE"
            raise refuse("QV-007", construct, self._find(("for",)) or self._find(("lock",)))
        elif cls is exp.Command:
            raise refuse(
                "QV-001",
                f"{str(node.this).upper()} inside the query",
                self._find((str(node.this),)),
                reason="the gateway cannot analyse it, so it refuses it",
            )
        else:
            rule, construct = NODE_RULES[cls]
            words = ("into",) if cls is exp.Into else (construct.split()[0].lower(),)
            raise refuse(rule, construct, self._find(words))

    def _check_select(self, node: exp.Select) -> None:
        if self.clickhouse and node.args.get("settings"):
            raise refuse("QV-006", "SETTINGS", self._find(("settings",)))

    def _check_function(self, node: exp.Func) -> None:
        names = _function_names(node)
        for name in names:
            if name in self.path_functions:
                self._check_path_arguments(node, name)
                return
            for dialect in self.rule_dialects:
                rule = denied_function_rule(dialect, name)
                if rule:
                    raise refuse(rule, f"{name}()", self._find((name,), call=True))
        if isinstance(node, (exp.Anonymous, exp.AnonymousAggFunc)) and names[0] not in self.allowed:
            # sqlglot cannot map the call to a function it knows: allowed only when the dialect's list says so.
            raise refuse("QV-011", f"{names[0]}()", self._find((str(node.name),), call=True))
        if names[0] in SETTING_FUNCTIONS:
            self._check_setting(node, names[0])

    def _check_field_call(self, node: exp.Column) -> None:
        """PostgreSQL calls a one-argument function written as a field of a row (``t.pg_read_file``)."""
        name = node.name.lower()
        rule = denied_function_rule("postgres", name)
        if rule:
            raise refuse(rule, f"{name} (a function called as a field)", self._find((node.name,)))

    def _check_setting(self, node: exp.Func, name: str) -> None:
        first = node.this if isinstance(node.this, exp.Expression) else (node.expressions or [None])[0]
        position = self._find((name,), call=True)
        if not (isinstance(first, exp.Literal) and first.is_string):
            raise refuse("QV-005", f"{name}() of a computed name", position,
                         reason="settings are read by literal name only")
        for dialect in self.rule_dialects:
            if first.name.lower() in PATH_SETTINGS.get(rules_dialect(dialect), ()):
                raise refuse("QV-005", f"{name}({first.name!r})", position, reason="it holds a path on the server")

    def _check_path_arguments(self, node: exp.Func, name: str) -> None:
        arguments = [node.this] if isinstance(node.this, exp.Expression) else []
        first = (arguments + list(node.expressions) or [None])[0]
        if isinstance(first, exp.Array):
            paths = first.expressions
        elif first is None:
            paths = []
        else:
            paths = [first]
        position = self._find((name,), call=True)
        if not paths or not all(isinstance(p, exp.Literal) and p.is_string for p in paths):
            raise refuse(
                "QV-005",
                f"{name}() with a computed path",
                position,
                reason="file readers take literal paths under the source's own locations only",
            )
        for path in paths:
            if not self._path_allowed(path.this):
                raise refuse(
                    "QV-005",
                    f"{name}({path.this!r})",
                    position,
                    reason="it reads outside the source's own files",
                )

    def _check_table(self, node: exp.Table) -> None:
        if self.denied_relations and isinstance(node.this, exp.Identifier):
            self._check_relation(node)
        if not self.path_tables:
            return
        name = node.this
        if (
            isinstance(name, exp.Literal)
            and name.is_string
            or (
                isinstance(name, exp.Identifier)
                and name.quoted
                and any(m in name.this for m in PATH_TABLE_MARKERS)
            )
        ):
            path = name.this
            if not self._path_allowed(path):
                start = name.meta.get("start") if isinstance(name, exp.Identifier) else None
                position = line_col(self.text, start) if start is not None else self._find((path,))
                raise refuse(
                    "QV-005",
                    f"reading the file {path!r}",
                    position,
                    reason="it is outside the source's own files",
                )

    def _check_relation(self, node: exp.Table) -> None:
        name, schema = node.name.lower(), node.db.lower()
        for family, denied in self.denied_relations.items():
            if name in denied and (not schema or schema in SYSTEM_SCHEMAS.get(family, ())):
                raise refuse(denied[name], f"reading {name}", self._find((node.name,)),
                             reason="it shows the server's configuration, credentials, paths or other sessions")

    def _path_allowed(self, path: str) -> bool:
        return path_allowed(path, self.allowed_paths)

    def _find(self, words: tuple[str, ...], call: bool = False) -> tuple[int, int] | None:
        """Position of the first tokens spelling ``words`` (and an opening parenthesis, for a call)."""
        wanted = [w.lower() for w in words]
        tokens = self.tokens
        for k in range(len(tokens) - len(wanted) + 1):
            if all(tokens[k + n].text.lower() == w for n, w in enumerate(wanted)):
                after = k + len(wanted)
                if call and (after >= len(tokens) or tokens[after].token_type != TokenType.L_PAREN):
                    continue
                return line_col(self.text, tokens[k].start)
        return None


def path_allowed(path: str, allowed_paths: tuple[str, ...]) -> bool:
    """Tell whether ``path`` lies under one of the (normalised) allowed locations.

    Checked as text: no ``..`` segment at all (a symbolic link before it would make text and file system
    disagree), absolute local paths only, and a prefix ends at a path separator (``/data/sales`` does not
    allow ``/data/salesmen``).
    """
    candidate = path.strip()
    if not candidate or not allowed_paths or "\\" in candidate or ".." in candidate.split("/"):
        return False
    is_url = "://" in candidate or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", candidate)
    if not is_url and not candidate.startswith("/"):
        return False
    if not is_url:
        candidate = posixpath.normpath(candidate)
    return any(_under(candidate, prefix) for prefix in allowed_paths if ("://" in prefix) == bool(is_url))


def _under(candidate: str, prefix: str) -> bool:
    base = prefix.rstrip("/")
    return candidate == base or candidate.startswith(base + "/")


def normalised_prefix(path: str) -> str:
    """An allowed location as ``path_allowed`` compares paths with it (local paths normalised, URLs as written)."""
    if "://" in path:
        return path
    return posixpath.normpath(path) if path.startswith("/") else path


_NAMES_BY_CLASS: dict[type, tuple[str, ...]] = {}


def _function_names(node: exp.Func) -> tuple[str, ...]:
    """Lower-case names a call goes by: as written for unknown functions, every alias for known ones."""
    if isinstance(node, (exp.Anonymous, exp.AnonymousAggFunc)):
        return (str(node.name).lower(),)
    cls = type(node)
    names = _NAMES_BY_CLASS.get(cls)
    if names is None:
        names = tuple(dict.fromkeys(n.lower() for n in cls.sql_names()))
        _NAMES_BY_CLASS[cls] = names
    return names


#: Characters without which a statement holds no placeholder (``?``, ``$1``, ``:name``, ``{p:T}``, ``@x``) and no
#: three-part name (its dots, also inside one quoted identifier).
_PARAMETER_OR_NAME_MARKS = ("?", "$", ":", "{", "@", ".")


def parameters_and_catalogs(tree: exp.Expression, text: str) -> tuple[int, tuple[str, ...]]:
    """Parameter count and catalogs of three-part table names, for trees the walker did not check."""
    placeholders = numbered = 0
    catalogs: dict[str, None] = {}
    if not any(mark in text for mark in _PARAMETER_OR_NAME_MARKS):
        return 0, ()  # no placeholder and no dotted name: nothing to count (a whole walk saved)
    for node in tree.find_all(exp.Placeholder, exp.Parameter, exp.Table):
        if isinstance(node, exp.Placeholder):
            placeholders += 1
        elif isinstance(node, exp.Parameter):
            numbered = max(numbered, _parameter_number(node))
        elif isinstance(node, exp.Table) and node.args.get("catalog"):
            catalogs[node.catalog] = None
    return placeholders + numbered, tuple(catalogs)


def _parameter_number(node: exp.Parameter) -> int:
    """N of a ``$N`` parameter; 0 for named ones (``@x``)."""
    value = node.this
    if isinstance(value, exp.Literal) and not value.is_string and str(value.this).isdigit():
        return int(value.this)
    return 0
