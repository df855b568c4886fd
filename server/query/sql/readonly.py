"""The read-only SQL validator: one statement, a query, nothing that writes, waits, locks or reaches out.

This is the gateway's first line of defence. The second is each backend's connection (DuckDB opened read-only
with external access disabled and its configuration locked, PostgreSQL read-only transactions, ...), which
holds even when this validator is switched off or wrong.

How a statement is judged, cheapest check first:

1. Size and characters, before anything is parsed: length (QV-009), encoding and invisible characters
   (QV-010).
2. Tokens (sqlglot's tokenizer, iterative): parenthesis/CASE nesting (QV-008), exactly one statement
   (QV-001), and the statement's leading keyword, refused from a table whatever sqlglot makes of the rest
   (QV-002..QV-007; several such statements parse only as an opaque ``Command`` or as a column alias).
3. sqlglot parses the tokens in the dialect of the target source. SQL that does not parse, or parses only
   as an opaque ``Command``, is refused (QV-001), never passed through. The statement must be a query
   (SELECT, WITH, set operations, VALUES, DuckDB's FROM-first and PIVOT) or a metadata statement allowed
   for that dialect.
4. Every node of the tree is walked (iteratively): writes in CTEs, ``SELECT ... INTO``,
   ``FOR UPDATE/SHARE``, variable assignments, ClickHouse ``SETTINGS``, denied functions, calls sqlglot
   cannot map to a function it knows unless the dialect's allow-list has them (QV-011), file readers and
   path-like table names outside the source's ``allowed_paths``, settings and views that show server paths,
   the number of joins, subquery nesting.
5. The engine reads the statement again where the gateway has its parser (``engine``), and that reading is
   judged too: PostgreSQL through libpg_query (``server/query/sql/postgres_reading.py``), DuckDB through its own
   parser and lexer (``server/query/sql/duckdb_reading.py``). There every function called must be on the engine's
   allow-list (``server/query/sql/allowlists/``) or among the source's ``allowed_functions``.

Rules (the table, the deny lists and the allow-list loader are in ``server/query/sql/rules.py``):

======  ============================================  ==========================================
QV-001  does not parse / not exactly one statement /  InvalidQueryError (INVALID_ARGUMENT)
        opaque or unknown statement
QV-002  write: INSERT, UPDATE, DELETE, MERGE, UPSERT,  ReadOnlyViolationError (PERMISSION_DENIED)
        REPLACE, SELECT INTO, data-modifying CTE,
        LOAD DATA
QV-003  DDL, privileges, maintenance: CREATE, ALTER,   ReadOnlyViolationError
        DROP, TRUNCATE, RENAME, COMMENT, GRANT,
        REVOKE, VACUUM, ANALYZE, CHECKPOINT, REINDEX,
        OPTIMIZE ...
QV-004  side effects, procedural code, dynamic SQL:    ReadOnlyViolationError
        CALL, EXECUTE, PREPARE, DO, nextval,
        pg_sleep, sleep, benchmark, query(),
        EXPLAIN ANALYZE ...
QV-005  files, network, other databases: COPY,        ReadOnlyViolationError
        EXPORT/IMPORT, file readers and replacement
        scans outside ``allowed_paths``, URLs, getenv,
        dblink, ClickHouse file/url/s3/remote ...
QV-006  session or configuration: SET, RESET,          ReadOnlyViolationError
        PRAGMA, ATTACH, DETACH, USE, INSTALL, LOAD,
        set_config, ``@x :=``, ClickHouse SETTINGS
QV-007  transactions and locks: BEGIN, COMMIT,         ReadOnlyViolationError
        ROLLBACK, SAVEPOINT, LOCK, FOR UPDATE/SHARE,
        advisory locks, get_lock
QV-008  nesting depth or joins over the limit          LimitExceededError (INVALID_ARGUMENT)
QV-009  query length over the limit                    LimitExceededError
QV-010  invalid UTF-8, NUL, control, invisible,        QueryRejectedError (INVALID_ARGUMENT)
        bidirectional or non-ASCII space characters
QV-011  a function not on the source's allow-list      ReadOnlyViolationError
        (its dialect's, plus its allowed_functions)
======  ============================================  ==========================================

Metadata statements per dialect (``METADATA_STATEMENTS``): DuckDB DESCRIBE/SHOW/SUMMARIZE/EXPLAIN;
PostgreSQL SHOW/EXPLAIN; MySQL and ClickHouse DESCRIBE/SHOW/EXPLAIN; Snowflake DESCRIBE/SHOW. EXPLAIN is
allowed only without ANALYZE and only of a query the validator accepts. An opaque SHOW (one sqlglot does not
parse) is allowed only when its argument is plain words (``SHOW search_path``, not ``SHOW 'file.csv'``).

Results are cached (bounded LRU, by entries and by total SQL length) by dialect, SQL text, limits and allowed
paths; a cache hit costs a dict lookup.

KNOWN LIMITATIONS (the connection-level defence is what covers them):

- Allow-lists name functions. A view in the source, or a user-defined function allowed by name, that has side
  effects is unknown to the validator (configure least-privilege database users; README "Read-only, twice").
- Names are matched as the engine reads them (case-folded, escapes decoded); a function of the system schema
  overloaded in another schema the search path reaches would be called by its allowed name.
- Paths are checked as text: ``..`` is normalised away and relative paths are refused, but symbolic links
  under an allowed path are followed by the engine.
- QV-010 characters are refused everywhere, also inside string literals; write them with escapes.
- For engines whose parser does not run here (MySQL, Snowflake, ClickHouse, Flight SQL upstreams), the
  statement is judged on sqlglot's reading, failing closed where sqlglot cannot map a call; where the engine's
  grammar differs (MySQL's ``--`` needs a following space to start a comment; MySQL executable comments
  ``/*! */`` are refused for that reason), the engine may read the text differently. PostgreSQL sources get
  ``standard_conforming_strings=on`` on every connection, as libpg_query reads strings.
- DuckDB runs a PIVOT without an explicit IN list as two statements, a temporary ENUM type of the pivot
  values and the query; the type lives in the query's own connection only.
- Dialects without their own deny list (Oracle, T-SQL, Trino, ...) get every list and no metadata
  statements; Oracle-style package calls (``DBMS_LOCK.SLEEP``, ``UTL_HTTP.REQUEST``) are not modelled yet.
"""

from __future__ import annotations

import enum
import functools
import logging
import posixpath
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.parser import Parser
from sqlglot.tokens import Token, Tokenizer, TokenType

from nexus_flight.core.errors import GatewayError
from nexus_flight.core.plan import placeholder_offsets, statement_end
from nexus_flight.core.source import DEFAULT_LIMITS, ValidationLimits
from nexus_flight.server.query.sql.cache import LRU
from nexus_flight.server.query.sql.duckdb_reading import check_duckdb_reading
from nexus_flight.server.query.sql.refusal import Refusal, line_col, refuse
from nexus_flight.server.query.sql.rules import (
    DENIED_RELATIONS,
    EXECUTABLE_COMMENT_DIALECTS,
    METADATA_STATEMENTS,
    PATH_FUNCTIONS,
    PATH_SETTINGS,
    PATH_TABLE_DIALECTS,
    PATH_TABLE_MARKERS,
    RULES,
    SETTING_FUNCTIONS,
    STATEMENT_KEYWORD_PAIRS,
    STATEMENT_KEYWORDS,
    SYSTEM_SCHEMAS,
    TOKEN_SEQUENCES,
    allowed_functions,
    denied_function_rule,
    rules_dialect,
)

__all__ = ["DEFAULT_LIMITS", "Analysis", "ValidationLimits", "analyze", "clear_cache", "plain", "validate"]




@dataclass(frozen=True)
class Analysis:
    """What the validator learned of one statement. Shared through the cache: never mutate ``tree``.

    Attributes:
        tree: The parsed statement (copy it before changing it).
        query: The query inside the statement: ``tree`` itself, or the statement EXPLAIN wraps.
        prefix: The text before ``query`` when the statement wraps it opaquely (``"EXPLAIN "``), else "".
        parameter_count: Number of ``?`` placeholders (or the highest ``$n``).
        catalogs: First parts of three-part table names, as written.
        keyword: The statement's first word, lower case.
        placeholders: Where each ``?`` placeholder starts in the text, in text order.
        statement_end: The length of the text without its trailing semicolons.

    """

    tree: exp.Expression
    query: exp.Expression
    prefix: str
    parameter_count: int
    catalogs: tuple[str, ...]
    keyword: str = ""
    placeholders: tuple[int, ...] = ()
    statement_end: int | None = None


# -- public API ---------------------------------------------------------------------------------------------


def validate(
    sql: str | bytes,
    dialect: str,
    limits: ValidationLimits = DEFAULT_LIMITS,
    allowed_paths: Sequence[str] = (),
    *,
    engine: str | None = None,
    allowed_functions: Sequence[str] = (),
) -> exp.Expression:
    """Check that ``sql`` is one read-only statement for ``dialect``; return its parsed tree.

    The tree is shared with the cache: copy it (``tree.copy()``) before changing it.

    Args:
        sql: The statement (a trailing semicolon is fine). Bytes must be UTF-8.
        dialect: The sqlglot dialect of the source the statement will run on.
        limits: Length, nesting and join limits.
        allowed_paths: Directories and URL prefixes under which the source's own files live; file readers and
            replacement scans may touch only these.
        engine: The engine whose own parser reads the statement too (``"postgres"``, ``"duckdb"``), or None.
        allowed_functions: Functions the source declares callable besides its dialect's allow-list.

    Raises:
        InvalidQueryError: the SQL does not parse, or is not one statement (QV-001).
        ReadOnlyViolationError: a write, DDL, side effect, file access, session change or lock
            (QV-002..QV-007).
        LimitExceededError: too long, too deep or too many joins (QV-008, QV-009).
        QueryRejectedError: characters the gateway refuses (QV-010).

    """
    return analyze(sql, dialect, limits, allowed_paths, engine=engine, allowed_functions=allowed_functions).tree


def analyze(
    sql: str | bytes,
    dialect: str,
    limits: ValidationLimits = DEFAULT_LIMITS,
    allowed_paths: Sequence[str] = (),
    *,
    check: bool = True,
    rule_dialects: Sequence[str] = (),
    engine: str | None = None,
    allowed_functions: Sequence[str] = (),
) -> Analysis:
    """Parse ``sql`` in ``dialect`` and, with ``check``, apply every read-only rule; cached.

    Args:
        sql: The statement.
        dialect: The dialect to parse it in.
        limits: Length, nesting and join limits (applied also without ``check``: they protect the parser).
        allowed_paths: See ``validate``.
        check: False parses only (routing of unvalidated SQL); the statement-shape rules are skipped.
        rule_dialects: Further dialects whose deny lists apply (the target's, when the client writes another).
        engine: With ``check``, the engine whose own parser must read the statement the same way (see
            ``ENGINE_READINGS``); None where no engine parser runs here.
        allowed_functions: The source's declared extra functions.

    Raises:
        GatewayError: as ``validate``.

    """
    extras = tuple(sorted(f.lower() for f in allowed_functions))
    key = (dialect, sql, limits, tuple(allowed_paths), check, tuple(rule_dialects), engine, extras)
    return _CACHE.get_or_compute(
        key,
        len(sql),
        lambda: _analyze(
            sql, dialect, limits, tuple(allowed_paths), check, (dialect, *rule_dialects), engine, extras
        ),
    )


def clear_cache() -> None:
    """Forget every cached result (tests, configuration reloads)."""
    _CACHE.clear()
    _PARSE_CACHE.clear()


def plain(exc: BaseException) -> str:
    """Return the first line of a sqlglot message without the ANSI codes it underlines with."""
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- the caches ---------------------------------------------------------------------------------------------


class _NoCommandFallbackWarnings(logging.Filter):
    """Drop sqlglot's "falling back to parsing as a Command" warning.

    The validator refuses such statements anyway, and the warning would copy the client's SQL (which may carry
    credentials, e.g. in an ATTACH string) into the server's log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


logging.getLogger("sqlglot").addFilter(_NoCommandFallbackWarnings())

# Trees and tokens take about 110 bytes per character of SQL: each cache stays under about 60 MB.
_CACHE: LRU[Analysis] = LRU(4096, 512_000)
_PARSE_CACHE: LRU[_Parsed] = LRU(4096, 512_000)

# -- the checks ---------------------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: NUL and other control characters (tab, newline, carriage return are fine), C1 controls, non-ASCII spaces,
#: zero-width and bidirectional formatting characters, BOM, lone surrogates (text that was not valid UTF-8).
_BAD_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00a0\u00ad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f"
    "\u3000\ufeff\ufff9-\ufffb\ud800-\udfff]"
)
_NESTING_OPEN = {TokenType.L_PAREN, TokenType.CASE}
_NESTING_CLOSE = {TokenType.R_PAREN, TokenType.END}
_QUERY_TYPES = (exp.Query, exp.Values)
_PLAIN_WORDS = re.compile(r"^\s*[A-Za-z_][\w.]*(\s+[A-Za-z_][\w.]*)*\s*$")
#: Words that may stand between EXPLAIN and its statement (PostgreSQL, MySQL, ClickHouse options); anything
#: else starts the statement, which must then be a query.
_EXPLAIN_OPTIONS = {
    "analyze",
    "analyse",
    "verbose",
    "format",
    "=",
    "json",
    "tree",
    "traditional",
    "text",
    "extended",
    "partitions",
    "plan",
    "pipeline",
    "syntax",
    "ast",
    "estimate",
    "logical",
    "physical",
}
_EXPLAIN_QUERY_START = {"select", "with", "values", "from", "table", "(", "pivot", "unpivot"}
_DML = {exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE", exp.Merge: "MERGE"}
_NODE_RULES: dict[type, tuple[str, str]] = {
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


@dataclass(frozen=True)
class _Parsed:
    """The parse stage's result, shared by checked and unchecked analyses of the same text."""

    text: str
    tokens: list[Token]
    tree: exp.Expression | None
    failure: Refusal | None
    statement_end: int | None = None


def _parse_stage(sql: str | bytes, dialect: str, limits: ValidationLimits) -> _Parsed:
    """Run the checks that protect the parser (size, characters, nesting, statements), then parse."""
    return _PARSE_CACHE.get_or_compute((dialect, sql, limits), len(sql), lambda: _parse(sql, dialect, limits))


def _parse(sql: str | bytes, dialect: str, limits: ValidationLimits) -> _Parsed:
    text = _decoded(sql)
    _check_size_and_characters(text, limits)
    tokenizer, parser = _readers(dialect)
    try:
        tokens = tokenizer.tokenize(text)
    except SqlglotError as exc:
        raise Refusal("QV-001", f"SQL does not parse: {plain(exc)}") from None
    _check_nesting(tokens, text, limits)
    end = statement_end(tokens, text)
    tokens = _one_statement(tokens, text)
    try:
        trees = [t for t in parser.parse(tokens, text) if t is not None]
    except ParseError as exc:
        return _Parsed(text, tokens, None, _parse_refusal(exc, text), end)
    except SqlglotError as exc:
        return _Parsed(text, tokens, None, Refusal("QV-001", f"SQL does not parse: {plain(exc)}"), end)
    except RecursionError:
        return _Parsed(text, tokens, None, _too_deep(), end)
    except Exception as exc:  # noqa: BLE001 - a parser bug on odd input must refuse, never pass through
        failure = Refusal("QV-001", f"SQL cannot be analysed: {type(exc).__name__}")
        return _Parsed(text, tokens, None, failure, end)
    if len(trees) != 1:
        failure = Refusal("QV-001", f"only one statement is allowed, got {len(trees)}")
        return _Parsed(text, tokens, None, failure, end)
    return _Parsed(text, tokens, cast(exp.Expression, trees[0]), None, end)


def _readers(dialect: str) -> tuple[Tokenizer, Parser]:
    """The tokenizer and parser of ``dialect`` for the calling thread, made once (a tenth of a parse's time).

    Both keep state while they work, so each thread has its own; ``parse`` starts by resetting it.
    """
    readers: dict[str, tuple[Tokenizer, Parser]] = _THREAD_READERS.__dict__.setdefault("by_dialect", {})
    pair = readers.get(dialect)
    if pair is None:
        try:
            engine = sqlglot.Dialect.get_or_raise(dialect)
        except ValueError as exc:
            raise Refusal("QV-001", f"unknown SQL dialect: {plain(exc)}") from None
        pair = readers[dialect] = (engine.tokenizer(), engine.parser())
    return pair


_THREAD_READERS = threading.local()


def _too_deep() -> Refusal:
    return Refusal("QV-008", f"the statement nests too deeply to analyse: {RULES['QV-008'].reason}")


def _analyze(
    sql: str | bytes,
    dialect: str,
    limits: ValidationLimits,
    allowed_paths: tuple[str, ...],
    check: bool,
    rule_dialects: tuple[str, ...],
    engine: str | None = None,
    extras: tuple[str, ...] = (),
) -> Analysis:
    parsed = _parse_stage(sql, dialect, limits)
    text, tokens, tree = parsed.text, parsed.tokens, parsed.tree
    if check:
        if tree is None or not isinstance(tree, _QUERY_TYPES):
            _check_token_sequences(tokens, text)
        _check_leading_keyword(tokens, text, dialect)
    _, first, _ = _leading(tokens)
    placeholders, end = placeholder_offsets(tokens, text), parsed.statement_end
    if first == "explain":
        analysis = _explain(tokens, text, dialect, limits, allowed_paths, check, rule_dialects, extras)
    elif parsed.failure is not None:
        raise parsed.failure
    elif tree is None:  # a parse without a failure has its tree
        raise Refusal("QV-001", "SQL cannot be analysed")
    elif not check:
        parameters, catalogs = _parameters_and_catalogs(tree, text)
        return Analysis(tree, tree, "", parameters, catalogs, first, placeholders, end)
    else:
        _check_statement_shape(tree, tokens, text, dialect, first)
        if isinstance(tree, exp.Command):  # an allowed SHOW: nothing inside to walk
            analysis = Analysis(tree, tree, "", 0, (), first, placeholders, end)
        else:
            walker = _Walker(text, tokens, limits, allowed_paths, rule_dialects, extras)
            if engine is None:  # the engine's reading below finds every call by the name the engine reads
                _check_called_names(tokens, text, rule_dialects, walker.path_functions)
            try:
                parameters, catalogs = walker.walk(tree)
            except RecursionError:
                raise _too_deep() from None
            analysis = Analysis(tree, tree, "", parameters, catalogs, first, placeholders, end)
    if check and engine is not None:
        _check_engine_reading(engine, text, analysis, allowed_paths, extras)
    return analysis


def _check_engine_reading(
    engine: str, text: str, analysis: Analysis, allowed_paths: tuple[str, ...], extras: tuple[str, ...]
) -> None:
    """The engine's own parser reads the statement again; its reading must pass the rules too."""
    if engine == "postgres":
        # pglast comes with the postgres extra: imported where a PostgreSQL-family statement is judged.
        from nexus_flight.server.query.sql.postgres_reading import check_postgres_reading

        check_postgres_reading(text, extras, analysis.placeholders)
    elif engine == "duckdb":
        prefixes = tuple(_normalised_prefix(p) for p in allowed_paths)
        check_duckdb_reading(text, analysis.query, extras, lambda path: path_allowed(path, prefixes))
    else:
        raise Refusal("QV-001", f"no parser of the engine {engine!r} is known to the gateway")


def _decoded(sql: str | bytes) -> str:
    if isinstance(sql, str):
        return sql
    try:
        return bytes(sql).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal(
            "QV-010", f"the query is not valid UTF-8 (byte {exc.start}): {RULES['QV-010'].reason}"
        ) from None


def _check_size_and_characters(text: str, limits: ValidationLimits) -> None:
    # Characters first: a lone surrogate would make the byte count below fail.
    bad = _BAD_CHARS.search(text)
    if bad:
        char = bad.group()
        name = (
            unicodedata.name(char, "control character") if not 0xD800 <= ord(char) <= 0xDFFF else "surrogate"
        )
        raise refuse("QV-010", f"character U+{ord(char):04X} ({name})", line_col(text, bad.start()))
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    if size > limits.max_length:
        raise Refusal(
            "QV-009",
            f"the query is {size} bytes, over the limit max_length={limits.max_length}: "
            f"{RULES['QV-009'].reason}",
        )


def _check_nesting(tokens: list[Token], text: str, limits: ValidationLimits) -> None:
    """Cheap pre-scan: parentheses and CASE nest no deeper than the limit (the parser recurses on them)."""
    depth = 0
    for token in tokens:
        kind = token.token_type
        if kind in _NESTING_OPEN:
            depth += 1
            if depth > limits.max_nesting:
                raise Refusal(
                    "QV-008",
                    f"nesting deeper than the limit max_nesting={limits.max_nesting}: "
                    f"{RULES['QV-008'].reason}",
                    line_col(text, token.start),
                )
        elif kind in _NESTING_CLOSE:
            depth -= 1


def _one_statement(tokens: list[Token], text: str) -> list[Token]:
    """Return the tokens of the only statement (trailing semicolons dropped); QV-001 for more than one."""
    semicolon = TokenType.SEMICOLON
    if tokens and (";" not in text or all(t.token_type != semicolon for t in tokens)):
        return tokens
    statements: list[list[Token]] = [[]]
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            if statements[-1]:
                statements.append([])
        else:
            statements[-1].append(token)
    statements = [s for s in statements if s]
    if not statements:
        raise Refusal("QV-001", "the query is empty: send exactly one SQL statement")
    if len(statements) > 1:
        second = statements[1][0]
        raise Refusal(
            "QV-001",
            f"only one statement is allowed, got {len(statements)}; the second starts with "
            f"{second.text.upper()!r}",
            line_col(text, second.start),
        )
    return statements[0]


def _leading(tokens: list[Token]) -> tuple[int, str, str]:
    """Index of the first token that is not an opening parenthesis, its lower-case text, and the next word."""
    i = 0
    while i < len(tokens) - 1 and tokens[i].token_type == TokenType.L_PAREN:
        i += 1
    first = tokens[i].text.lower().split()[0] if tokens[i].text.strip() else ""
    second = tokens[i + 1].text.lower() if i + 1 < len(tokens) else ""
    return i, first, second


def _check_called_names(
    tokens: list[Token], text: str, rule_dialects: tuple[str, ...], path_functions: frozenset[str]
) -> None:
    """Refuse denied functions by the name written before ``(``, whatever class sqlglot maps the call to.

    The walker checks calls by sqlglot's names for them; this pass also catches a dialect's alias that
    sqlglot normalises to a function under another name.
    """
    for k in range(len(tokens) - 1):
        if tokens[k + 1].token_type != TokenType.L_PAREN:
            continue
        token = tokens[k]
        if token.token_type in (TokenType.STRING, TokenType.NUMBER):
            continue
        name = token.text.lower()
        if name in path_functions:
            continue  # the walker checks its paths
        for dialect in rule_dialects:
            rule = denied_function_rule(dialect, name)
            if rule:
                raise refuse(rule, f"{name}()", line_col(text, token.start))


def _check_token_sequences(tokens: list[Token], text: str) -> None:
    """Word pairs that say what a statement sqlglot cannot parse (or parses as a write) does."""
    for k in range(len(tokens) - 1):
        pair = (tokens[k].text.lower(), tokens[k + 1].text.lower())
        literal = TokenType.STRING in (tokens[k].token_type, tokens[k + 1].token_type)
        if pair in TOKEN_SEQUENCES and not literal:
            raise refuse(TOKEN_SEQUENCES[pair], " ".join(pair).upper(), line_col(text, tokens[k].start))


def _check_leading_keyword(tokens: list[Token], text: str, dialect: str) -> None:
    if rules_dialect(dialect) in EXECUTABLE_COMMENT_DIALECTS:
        found = re.search(r"/\*[!+]", text)
        if found:
            raise refuse(
                "QV-001",
                "an executable comment or optimizer hint (/*! or /*+)",
                line_col(text, found.start()),
                reason="the engine runs what it says, which the gateway cannot check",
            )
    i, first, second = _leading(tokens)
    if first in METADATA_STATEMENTS.get(rules_dialect(dialect), ()):
        return
    rule = STATEMENT_KEYWORD_PAIRS.get((first, second)) or STATEMENT_KEYWORDS.get(first)
    if rule and tokens[i].token_type not in (TokenType.STRING, TokenType.IDENTIFIER):
        construct = (
            f"{first} {second}".upper() if (first, second) in STATEMENT_KEYWORD_PAIRS else first.upper()
        )
        raise refuse(rule, construct, line_col(text, tokens[i].start))
    if first in ("describe", "desc", "show", "summarize", "explain"):
        raise refuse(
            "QV-001",
            first.upper(),
            line_col(text, tokens[i].start),
            reason=f"it is not offered for {dialect} sources; query the information schema instead",
        )


def _command_text(command: exp.Command) -> str:
    """Return the text after an opaque command's keyword."""
    argument = command.expression
    return argument.name if isinstance(argument, exp.Expression) else str(argument or "")


def _parse_refusal(exc: ParseError, text: str) -> Refusal:
    errors = exc.errors or [{}]
    first = errors[0]
    description = _ANSI.sub("", str(first.get("description") or plain(exc)))
    position = (first["line"], first["col"]) if first.get("line") else None
    return Refusal("QV-001", f"SQL does not parse: {description}", position)


def _check_statement_shape(
    tree: exp.Expression, tokens: list[Token], text: str, dialect: str, first: str
) -> None:
    """Refuse a statement that is neither a query nor a metadata statement allowed for the dialect."""
    if isinstance(tree, _QUERY_TYPES) or (isinstance(tree, exp.Pivot) and rules_dialect(dialect) == "duckdb"):
        return
    metadata = METADATA_STATEMENTS.get(rules_dialect(dialect), frozenset())
    if isinstance(tree, (exp.Describe, exp.Show, exp.Summarize)) and first in metadata:
        return
    if isinstance(tree, exp.Command):
        keyword = str(tree.this).lower()
        if keyword == "show" and "show" in metadata and _PLAIN_WORDS.match(_command_text(tree)):
            return  # SHOW <setting> / SHOW ALL / SHOW TABLES: plain words only (no paths, no calls)
        raise refuse(
            "QV-001",
            f"{str(tree.this).upper()} statement",
            line_col(text, tokens[0].start),
            reason="the gateway cannot analyse this statement, so it refuses it; send a query",
        )
    for cls, (rule, name) in _NODE_RULES.items():
        if isinstance(tree, cls):
            raise refuse(rule, name, line_col(text, tokens[0].start))
    raise refuse(
        "QV-001",
        f"statement starting with {first.upper()!r}",
        line_col(text, tokens[0].start),
        reason="only queries (SELECT, WITH, VALUES, set operations) are accepted",
    )


def _explain(
    tokens: list[Token],
    text: str,
    dialect: str,
    limits: ValidationLimits,
    allowed_paths: tuple[str, ...],
    check: bool,
    rule_dialects: tuple[str, ...],
    extras: tuple[str, ...] = (),
) -> Analysis:
    """EXPLAIN [options] <query>: options must not include ANALYZE, and the query must pass every rule."""
    i, _, _ = _leading(tokens)
    explain = tokens[i]
    # The tokenizer hands everything after EXPLAIN over as one string: tokenize it again.
    base = explain.end + 1
    try:
        rest = sqlglot.Dialect.get_or_raise(dialect).tokenize(text[base:])
    except SqlglotError as exc:
        raise Refusal("QV-001", f"SQL does not parse: {plain(exc)}") from None
    j = 0
    options_list = rest[0].token_type == TokenType.L_PAREN if rest else False
    if options_list and len(rest) > 1 and rest[1].text.lower() not in _EXPLAIN_QUERY_START:
        depth = 0  # PostgreSQL's option list: EXPLAIN (FORMAT JSON, ANALYZE) SELECT ...
        while j < len(rest):
            depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(rest[j].token_type, 0)
            j += 1
            if depth == 0:
                break
    while j < len(rest) and rest[j].text.lower() in _EXPLAIN_OPTIONS:
        j += 1
    position = line_col(text, explain.start)
    if check and any(option.text.lower() in ("analyze", "analyse") for option in rest[:j]):
        raise refuse(
            "QV-004",
            "EXPLAIN ANALYZE",
            position,
            reason="it executes its statement; use EXPLAIN without ANALYZE",
        )
    if j >= len(rest):
        raise refuse("QV-001", "EXPLAIN", position, reason="EXPLAIN needs the query to explain")
    start = base + rest[j].start
    inner_text = text[start:]
    try:
        inner = analyze(
            inner_text,
            dialect,
            limits,
            allowed_paths,
            check=check,
            rule_dialects=rule_dialects[1:],
            allowed_functions=extras,
        )
    except GatewayError as error:
        raise _shifted(error, line_col(text, start)) from None
    if check and not isinstance(inner.tree, _QUERY_TYPES):
        raise refuse("QV-001", "EXPLAIN of a non-query", position, reason="EXPLAIN explains queries only")
    tree = exp.Command(this="EXPLAIN", expression=exp.Literal.string(text[base:]))
    end = None if inner.statement_end is None else start + inner.statement_end
    return Analysis(tree, inner.tree, text[:start], inner.parameter_count, inner.catalogs, "explain",
                    tuple(start + offset for offset in inner.placeholders), end)


def _shifted(error: GatewayError, origin: tuple[int, int] | None) -> GatewayError:
    """Return the refusal with its position counted from the start of the whole statement."""
    line, column = error.details.get("line"), error.details.get("column")
    if origin is None or line is None or column is None:
        return error
    new_line = origin[0] + line - 1
    new_column = origin[1] + column - 1 if line == 1 else column
    message = re.sub(r"\(line \d+, column \d+\)$", f"(line {new_line}, column {new_column})", error.message)
    details = {**error.details, "line": new_line, "column": new_column}
    return type(error)(message, **details)


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
    if cls in _NODE_RULES or cls in _SPECIAL:
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
        allowed_paths=tuple(_normalised_prefix(p) for p in allowed_paths),
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


class _Walker:
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
            rule, construct = _NODE_RULES[cls]
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


def _normalised_prefix(path: str) -> str:
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


def _parameters_and_catalogs(tree: exp.Expression, text: str) -> tuple[int, tuple[str, ...]]:
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
