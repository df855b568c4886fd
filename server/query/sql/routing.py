"""Which source a query runs on, and the SQL that source receives.

A query names its source with the first part of a three-part name (``source.schema.table``); otherwise it
runs on the session's current catalog, otherwise on the default source. A first part that is not a source's
name (unknown, or a disabled source) is refused as NOT_FOUND naming the known catalogs: the catalogs a client
sees are the sources, so the name would otherwise reach the default source's engine and come back as its own
"catalog does not exist". Only the source's own database name (PostgreSQL accepts it) is left to the engine.
The source's catalog qualifier is rewritten away (the backend knows only its own schemas), and SQL written in
the client's dialect is transpiled to the backend's. The SQL text is passed through unchanged
when neither is needed: regenerating SQL can change it subtly.

Validation (``server/query/sql/readonly.py``) runs on what the client wrote, with the target source's rules, and again
on the rewritten SQL when it differs: the backend receives only SQL that passed. The text a source receives is
also read by that source's engine parser when the gateway has one (``SourceProfile.engine``), and judged on that
reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from nexus_flight.core.errors import (
    GatewayError,
    InvalidQueryError,
    NotFoundError,
    QueryRejectedError,
)
from nexus_flight.core.source import SourceProfile, ValidationLimits, canonical_dialect
from nexus_flight.server.query.sql.readonly import Analysis, analyze, plain


@dataclass(frozen=True)
class RoutedQuery:
    """A validated query bound to one source."""

    source: str
    sql: str
    parameter_count: int


def route(
    sql: str,
    *,
    sources: Mapping[str, SourceProfile],
    session_catalog: str | None,
    default_source: str,
    client_dialect: str | None = None,
    validate_sql: bool = True,
) -> RoutedQuery:
    """Validate ``sql`` and bind it to the source it names (else the session's catalog, else the default).

    Args:
        sql: One statement.
        sources: Every source by catalog name.
        session_catalog: The session's current catalog, if the client set one.
        default_source: The source for queries that name none.
        client_dialect: The dialect the client writes in, when it is not the target's.
        validate_sql: False skips the read-only rules (the backend's own read-only connection still holds);
            the statement is still routed and rewritten when sqlglot can parse it, else passed through.

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
    home_target = sources[home]
    client_dialect = canonical_dialect(client_dialect) if client_dialect else None
    home_refusal: GatewayError | None = None
    if validate_sql and not client_dialect:
        # The common case in one cached pass: a query of the home source that names no catalog.
        try:
            checked = analyze(
                sql,
                home_target.dialect,
                home_target.limits,
                home_target.allowed_paths,
                rule_dialects=home_target.rule_dialects(home_target.dialect),
                engine=home_target.engine,
                allowed_functions=home_target.allowed_functions,
            )
        except GatewayError as refusal:
            checked, home_refusal = None, refusal  # unless it names another source: decided below
        if checked is not None and not checked.catalogs:
            return RoutedQuery(home, sql, checked.parameter_count)
    read_dialect = client_dialect or home_target.dialect
    try:
        parsed = analyze(sql, read_dialect, home_target.limits, check=False)
    except GatewayError:
        found = None if client_dialect else _parse_as_named_source(sql, sources, read_dialect)
        if found is None:
            if home_refusal is not None:
                raise home_refusal from None  # the rules' verdict says more than the parse error
            if validate_sql:
                # The rules read the leading keyword even of SQL that does not parse: their verdict says more.
                analyze(
                    sql,
                    read_dialect,
                    home_target.limits,
                    home_target.allowed_paths,
                    rule_dialects=home_target.rule_dialects(read_dialect),
                    allowed_functions=home_target.allowed_functions,
                )
                raise
            return RoutedQuery(home, sql, sql.count("?"))  # the backend judges what sqlglot cannot read
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
    if client_dialect is None and target.dialect != read_dialect:
        read_dialect = target.dialect
        parsed = analyze(sql, read_dialect, target.limits, check=False)
    transpile = canonical_dialect(read_dialect) != canonical_dialect(target.dialect)
    verbatim = not named and not transpile  # the source receives the client's text itself
    if validate_sql:
        parsed = analyze(
            sql,
            read_dialect,
            target.limits,
            target.allowed_paths,
            rule_dialects=target.rule_dialects(read_dialect),
            engine=target.engine if verbatim else None,
            allowed_functions=target.allowed_functions,
        )
    if verbatim:
        return RoutedQuery(source, sql, parsed.parameter_count)
    out = _rewrite(parsed, source, read_dialect, target.dialect)
    if validate_sql:
        parsed = analyze(
            out,
            target.dialect,
            target.limits,
            target.allowed_paths,
            rule_dialects=target.rule_dialects(target.dialect),
            engine=target.engine,
            allowed_functions=target.allowed_functions,
        )
    return RoutedQuery(source, out, parsed.parameter_count)


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


