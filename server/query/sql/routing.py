"""Which source a query runs on, and the SQL that source receives.

A query names its source with the first part of a three-part name (``source.schema.table``); otherwise it
runs on the session's current catalog, otherwise on the default source. A first part that is not a source's
name (unknown, or a disabled source) is refused as NOT_FOUND naming the known catalogs: the catalogs a client
sees are the sources, so the name would otherwise reach the default source's engine and come back as its own
"catalog does not exist". Only the source's own database name (PostgreSQL accepts it) is left to the engine.
The source's catalog qualifier is rewritten away (the backend knows only its own schemas), and SQL written in
the client's dialect is transpiled to the backend's. The SQL text is passed through unchanged
when neither is needed: regenerating SQL can change it subtly.

The statement is parsed once; validation (``server/query/sql/readonly.py``) then runs once on what the client wrote,
with the target source's rules, and once more on the rewritten SQL when it differs: the backend receives only
SQL that passed. The result is a ``QueryPlan`` (``core/plan.py``) carrying the analysed tree: nothing after
routing parses the statement again. The text a source receives is
also read by that source's engine parser when the gateway has one (``SourceProfile.engine``), and judged on that
reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from nexus_flight.core.errors import (
    GatewayError,
    InvalidQueryError,
    NotFoundError,
    QueryRejectedError,
)
from nexus_flight.core.plan import QueryPlan, plan_sql
from nexus_flight.core.source import SourceProfile, ValidationLimits, canonical_dialect
from nexus_flight.server.query.sql.cache import LRU
from nexus_flight.server.query.sql.duckdb_alone import decided_alone as decided_by_duckdb
from nexus_flight.server.query.sql.readonly import Analysis, analyze, plain
from nexus_flight.server.query.sql.walker import normalised_prefix, path_allowed


def route(
    sql: str,
    *,
    sources: Mapping[str, SourceProfile],
    session_catalog: str | None,
    default_source: str,
    client_dialect: str | None = None,
    validate_sql: bool = True,
    tree_wanted: bool = False,
) -> QueryPlan:
    """Validate ``sql`` and bind it to the source it names (else the session's catalog, else the default).

    The statement is parsed once in the dialect it is written in, its source is chosen from the names it uses,
    and the validator judges it once with that source's rules (and once more the SQL a rewrite produced). Plans
    are cached by everything they depend on: the text, the session's catalog and dialect, and the sources'
    profiles.

    Args:
        sql: One statement.
        sources: Every source by catalog name.
        session_catalog: The session's current catalog, if the client set one.
        default_source: The source for queries that name none.
        client_dialect: The dialect the client writes in, when it is not the target's.
        validate_sql: False skips the read-only rules (the backend's own read-only connection still holds);
            the statement is still routed and rewritten when sqlglot can parse it, else passed through.
        tree_wanted: The caller will read the plan's tree (grants apply): the statement is not first decided on
            its engine's reading alone, which would be done again when the tree is read.

    Raises:
        InvalidQueryError: the SQL does not parse, is not one statement, or cannot be transpiled (QV-001).
        ReadOnlyViolationError: the statement would write or have side effects (QV-002..QV-007).
        LimitExceededError: the statement exceeds the source's limits (QV-008, QV-009).
        NotFoundError: the session's catalog, or the first part of a three-part name, is not a source.
        QueryRejectedError: the query names more than one source (federation is not offered yet).

    """
    home = session_catalog or default_source
    if home not in sources:
        raise _unknown_catalog(home, sources)
    client = canonical_dialect(client_dialect) if client_dialect else None
    key = (sql, home, client, validate_sql, tree_wanted, tuple(sources.items()))
    alone = validate_sql and client is None and not tree_wanted
    return _PLANS.get_or_compute(key, len(sql), lambda: _route(sql, sources, home, client, validate_sql, alone))


def clear_plans() -> None:
    """Forget every cached plan (tests, configuration reloads)."""
    _PLANS.clear()


def _route(
    sql: str, sources: Mapping[str, SourceProfile], home: str, client: str | None, validate_sql: bool, alone: bool
) -> QueryPlan:
    home_target = sources[home]
    if alone:
        plan = _decided_alone(sql, home, home_target)  # it names no other source: the home source's
        if plan is not None:
            return plan
    if validate_sql and client is None and "." not in sql:
        # Without a dot there is no qualified name, so no other source: the statement is the home source's, in
        # its dialect, and one check both parses and judges it (what the path below would do, in fewer steps).
        checked = _check(sql, home_target.dialect, home_target, engine=home_target.engine)
        return _plan(home, sql, home_target.dialect, checked, True)
    read_dialect = client or home_target.dialect
    try:
        parsed = analyze(sql, read_dialect, home_target.limits, check=False)  # the parse, shared with the check
    except GatewayError:
        found = None if client else _parse_as_named_source(sql, sources, read_dialect)
        if found is None:
            if not validate_sql:
                return plan_sql(sql, home_target.dialect, home)  # the backend judges what sqlglot cannot read
            # The rules read the leading keyword even of SQL that does not parse: their verdict says more.
            _check(sql, read_dialect, home_target, engine=None)
            raise
        read_dialect, parsed = found
    named = _named_sources(parsed, sources)
    own = sources[named[0] if len(named) == 1 else home].own_catalogs
    unknown = [c for c in parsed.catalogs if _source_named(c, sources) is None and c not in own]
    if unknown:
        raise _unknown_catalog(unknown[0], sources)
    if len(named) > 1:
        # INVALID_ARGUMENT, not UNIMPLEMENTED: ADBC answers an UNIMPLEMENTED prepare by running the statement
        # unprepared, which would refuse (and record) the same query twice.
        raise QueryRejectedError(
            f"the query names {len(named)} sources ({', '.join(named)}); a query runs on one source "
            "(queries across sources are not supported yet)"
        )
    source = named[0] if named else home
    target = sources[source]
    if client is None and target.dialect != read_dialect:
        read_dialect = target.dialect
        parsed = analyze(sql, read_dialect, target.limits, check=False)
    transpile = canonical_dialect(read_dialect) != canonical_dialect(target.dialect)
    verbatim = not named and not transpile  # the source receives the client's text itself
    if validate_sql:
        parsed = _check(sql, read_dialect, target, engine=target.engine if verbatim else None)
    if verbatim:
        return _plan(source, sql, target.dialect, parsed, validate_sql)
    out = _rewrite(parsed, source, read_dialect, target.dialect)
    if validate_sql:
        rewritten = _check(out, target.dialect, target, engine=target.engine)
    else:
        rewritten = analyze(out, target.dialect, target.limits, check=False)
    return _plan(source, out, target.dialect, rewritten, validate_sql)


def judged(sql: str, target: SourceProfile) -> Analysis:
    """The validator's verdict on ``sql`` as the source of ``target`` would receive it, written in its dialect.

    The same rules as a client's statement sent to that source unchanged: its dialect's and its engine's lists,
    its paths, limits and allowed functions, and its engine's own reading.

    Raises:
        GatewayError: the validator refuses it (as ``route``).

    """
    return _check(sql, target.dialect, target, engine=target.engine)


def _check(sql: str, read_dialect: str, target: SourceProfile, engine: str | None) -> Analysis:
    """The validator's verdict on ``sql`` read in ``read_dialect``, with the target source's rules."""
    return analyze(
        sql,
        read_dialect,
        target.limits,
        target.allowed_paths,
        rule_dialects=target.rule_dialects(read_dialect),
        engine=engine,
        allowed_functions=target.allowed_functions,
    )


def _decided_alone(sql: str, source: str, target: SourceProfile) -> QueryPlan | None:
    """A plan of ``sql`` accepted on its engine's reading alone, its sqlglot tree read on first use; None if not.

    For sources whose dialect is their engine's own (DuckDB, PostgreSQL): ``duckdb_alone.py``, ``postgres_alone.py``;
    not for a source whose backend reads every plan's tree (files, lake formats), which would do the work twice.
    """
    if target.engine is None or target.dialect != target.engine or target.engine_dialects or target.reads_tree:
        return None
    extras = tuple(sorted(f.lower() for f in target.allowed_functions))
    if target.engine == "duckdb":
        prefixes = tuple(normalised_prefix(p) for p in target.allowed_paths)
        keyword = decided_by_duckdb(sql, target.limits, extras, lambda path: path_allowed(path, prefixes))
    elif target.engine == "postgres":
        # pglast comes with the postgres extra: imported where a PostgreSQL-family statement is judged.
        from nexus_flight.server.query.sql.postgres_alone import decided_alone as decided_by_postgres

        keyword = decided_by_postgres(sql, target.limits, extras)
    else:
        return None
    if keyword is None:
        return None

    def read_later() -> tuple[exp.Expression, exp.Expression]:
        # The whole validator, sqlglot's reading included: what is read later is judged as if read first.
        analysis = judged(sql, target)
        return analysis.tree, analysis.query

    return QueryPlan(source, sql, 0, target.dialect, keyword=keyword, validated=True, read_later=read_later)


def _plan(source: str, sql: str, dialect: str, analysis: Analysis, validated: bool) -> QueryPlan:
    return QueryPlan(
        source,
        sql,
        analysis.parameter_count,
        dialect,
        analysis.tree,
        analysis.query,
        keyword=analysis.keyword,
        placeholders=analysis.placeholders,
        statement_end=analysis.statement_end,
        validated=validated,
    )


def _parse_as_named_source(
    sql: str, sources: Mapping[str, SourceProfile], failed_dialect: str
) -> tuple[str, Analysis] | None:
    """Find the source a query names when it does not parse in the home source's dialect, if any."""
    for dialect in dict.fromkeys(t.dialect for t in sources.values() if t.dialect != failed_dialect):
        try:
            candidate = analyze(sql, dialect, ValidationLimits(), check=False)
            named = _named_sources(candidate, sources)
        except GatewayError:
            continue
        if named and all(sources[name].dialect == dialect for name in named):
            return dialect, candidate
    return None


def _named_sources(parsed: Analysis, sources: Mapping[str, Any]) -> list[str]:
    """Return the sources named by the catalog part of three-part names."""
    named: list[str] = []
    for catalog in parsed.catalogs:
        source = _source_named(catalog, sources)
        if source is not None and source not in named:
            named.append(source)
    return named


def _source_named(catalog: str, sources: Mapping[str, Any]) -> str | None:
    if catalog in sources:
        return catalog
    folded = catalog.lower()
    matches = [name for name in sources if name.lower() == folded]
    return matches[0] if len(matches) == 1 else None


def _unknown_catalog(name: str, sources: Mapping[str, Any]) -> NotFoundError:
    return NotFoundError(f"unknown catalog {name!r}; known catalogs: {', '.join(sorted(sources))}")


_PARAMETER_MARK = "__nexus_parameter__"


def _rewrite(parsed: Analysis, source: str, read_dialect: str, write_dialect: str) -> str:
    """Generate the query without its catalog qualifiers, in the backend's dialect."""
    query = parsed.query.copy()
    for table in query.find_all(exp.Table):
        if table.catalog and _source_named(table.catalog, {source: None}):
            table.set("catalog", None)
    for column in query.find_all(exp.Column):
        if column.args.get("catalog") and _source_named(column.text("catalog"), {source: None}):
            column.set("catalog", None)
    # A client's ``?`` stays ``?`` in every dialect (sqlglot writes an unnamed ClickHouse one as ``{?: }``).
    for placeholder in list(query.find_all(exp.Placeholder)):
        if not placeholder.args.get("this"):
            placeholder.replace(exp.var(_PARAMETER_MARK))
    try:
        generated = query.sql(dialect=write_dialect, unsupported_level=ErrorLevel.RAISE).replace(_PARAMETER_MARK, "?")
    except SqlglotError as exc:
        raise InvalidQueryError(
            f"QV-001: cannot translate the query from {read_dialect} to {write_dialect}: {plain(exc)}; "
            f"write it in {write_dialect} instead",
            rule="QV-001",
        ) from None
    except RecursionError:
        raise InvalidQueryError(
            f"QV-001: cannot translate the query from {read_dialect} to {write_dialect}: it nests too deeply",
            rule="QV-001",
        ) from None
    return parsed.prefix + generated


# A plan holds its tree (about 110 bytes per character of SQL, shared with the validator's cache).
_PLANS: LRU[QueryPlan] = LRU(4096, 512_000)
