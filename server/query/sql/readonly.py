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
4. Every node of the tree is walked (iteratively, ``server/query/sql/walker.py``): writes in CTEs, ``SELECT ... INTO``,
   ``FOR UPDATE/SHARE``, variable assignments, ClickHouse ``SETTINGS``, denied functions, calls sqlglot
   cannot map to a function it knows unless the dialect's allow-list has them (QV-011), file readers and
   path-like table names outside the source's ``allowed_paths``, settings and views that show server paths,
   the number of joins, subquery nesting.
5. The engine reads the statement again where the gateway has its parser (``engine``), and that reading is
   judged too: PostgreSQL through libpg_query (``server/query/sql/postgres_reading.py``), DuckDB through its own
   parser and lexer (``server/query/sql/duckdb_reading.py``). There every function called must be on the engine's
   allow-list (``server/query/sql/allowlists/``) or among the source's ``allowed_functions``.

Routing leaves steps 2-4 out for a plain DuckDB or PostgreSQL query (the engine runs the client's text as written,
nothing to route or rewrite): the engine's reading alone accepts it or sends it here
(``server/query/sql/duckdb_alone.py``, ``postgres_alone.py``), and this validator runs only when something needs
sqlglot's tree of it.

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

import logging
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.parser import Parser
from sqlglot.tokens import Token, Tokenizer, TokenType

from nexus_flight.core.dialects import sql_dialect
from nexus_flight.core.errors import GatewayError
from nexus_flight.core.plan import placeholder_offsets, statement_end
from nexus_flight.core.source import DEFAULT_LIMITS, ValidationLimits
from nexus_flight.server.query.sql.cache import LRU
from nexus_flight.server.query.sql.duckdb_reading import check_duckdb_reading
from nexus_flight.server.query.sql.refusal import Refusal, line_col, refuse
from nexus_flight.server.query.sql.rules import (
    EXECUTABLE_COMMENT_DIALECTS,
    METADATA_STATEMENTS,
    REFUSED_CHARACTERS,
    RULES,
    STATEMENT_KEYWORD_PAIRS,
    STATEMENT_KEYWORDS,
    TOKEN_SEQUENCES,
    denied_function_rule,
    rules_dialect,
)
from nexus_flight.server.query.sql.walker import (
    NODE_RULES,
    Walker,
    normalised_prefix,
    parameters_and_catalogs,
    path_allowed,
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
            engine = sql_dialect(dialect)
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
        raise parsed.failure.detached()  # the cached one, raised, would keep each raise's stack
    elif tree is None:  # a parse without a failure has its tree
        raise Refusal("QV-001", "SQL cannot be analysed")
    elif not check:
        parameters, catalogs = parameters_and_catalogs(tree, text)
        return Analysis(tree, tree, "", parameters, catalogs, first, placeholders, end)
    else:
        _check_statement_shape(tree, tokens, text, dialect, first)
        if isinstance(tree, exp.Command):  # an allowed SHOW: nothing inside to walk
            analysis = Analysis(tree, tree, "", 0, (), first, placeholders, end)
        else:
            walker = Walker(text, tokens, limits, allowed_paths, rule_dialects, extras)
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
        prefixes = tuple(normalised_prefix(p) for p in allowed_paths)
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
    bad = REFUSED_CHARACTERS.search(text)
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
    for cls, (rule, name) in NODE_RULES.items():
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
        rest = sql_dialect(dialect).tokenize(text[base:])
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
