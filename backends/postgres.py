"""PostgreSQL and every PG-wire engine, over adbc-driver-postgresql.

Each source keeps a pool of ADBC connections opened with ``default_transaction_read_only=on`` and the source's
``statement_timeout`` as startup options, outside autocommit: every query runs in a read-only transaction that
the gateway rolls back when the connection returns to the pool. That is the second line of defence behind the
validator, and it holds alone: what a statement changes inside the database (a large object ``lo_create``
makes, a ``pg_notify``, a ``set_config``, even ``default_transaction_read_only`` switched off) is undone, and
the next parameter row or borrower starts clean. A superuser login, or one that reaches the server's files,
is refused (``postgres_privileges.py``). Results stream from PostgreSQL's binary COPY straight into Arrow.

ADBC runs every statement that returns rows inside ``COPY (...) TO STDOUT``, where only SELECT, VALUES, TABLE
and WITH work: ``SHOW x`` is rewritten to ``SELECT current_setting('x')`` and ``SHOW ALL`` to a
``pg_settings`` query; others (EXPLAIN ...) fail with UnsupportedError saying why. Statements without rows
run directly, so writes reach PostgreSQL and meet its read-only transaction.

Type mapping (PostgreSQL → Arrow as clients see it; the full table, checked against psycopg, is
``tests/differential/types/postgres.md``):

========================  ================================================================================
PostgreSQL                Arrow
========================  ================================================================================
smallint/int/bigint       int16 / int32 / int64
real / double precision   float32 / float64 (NaN and ±Infinity kept)
numeric(p, s)             decimal128(p, s) (decimal256 when p > 38), exact
numeric, computed         decimal128(38, s) where PostgreSQL's rules fix the scale (sum, +, -, *, round);
                          else decimal256(76, 38); a value that does not fit fails, it is never rounded
money                     decimal128(19, 2)
text/varchar/char/name    utf8 (char(n) blank-padded, as PostgreSQL returns it)
bytea                     binary
boolean                   bool
date / time               date32 / time64[us]
timestamp                 timestamp[us]
timestamptz               timestamp[us, tz=UTC]
interval                  month_day_nano_interval
uuid                      utf8 (canonical 36-character text)
json / jsonb              utf8 (the JSON text)
arrays (int[], text[])    list<element type>
timetz, inet, cidr,       utf8: PostgreSQL's own text form
macaddr, bit, xml,
ranges, enums, composites
========================  ================================================================================

Placeholders: the gateway speaks ``?``; they are renumbered to ``$1, $2 ...`` with the SQL tokenizer, so ``?``
inside strings, comments and the jsonb operators ``?|``/``?&`` are untouched, and each is cast to the type its
value (or PostgreSQL, for strings and NULLs) gives it (``postgres_parameters``).
"""

from __future__ import annotations

import logging
import re
import urllib.parse
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as pg_dbapi
import pyarrow as pa

from nexus_flight.backends import postgres_snapshot, postgres_types
from nexus_flight.backends.adbc_backend import AdbcBackend, sqlstate_of
from nexus_flight.backends.base import (
    Capabilities,
    Execution,
    ForeignKeyColumn,
    KeyColumn,
    TableInfo,
    TableLineage,
    catalog_column,
    parameter_schema,
)
from nexus_flight.backends.engine_messages import scrub
from nexus_flight.backends.options.postgres import PostgresConfig
from nexus_flight.backends.parameter_types import infer_parameter_types, quiet_probe
from nexus_flight.backends.postgres_numeric import PgColumnType, result_scales
from nexus_flight.backends.postgres_parameters import (
    as_text_row,
    quoted_type,
    undetermined_parameter,
    value_types,
    with_casts,
)
from nexus_flight.backends.postgres_privileges import refuse_privileged_login
from nexus_flight.backends.result_types import FieldRule, plain_schema
from nexus_flight.core.errors import (
    AuthenticationError,
    BackendError,
    BackendUnavailableError,
    ForbiddenError,
    GatewayError,
    InvalidQueryError,
    NotFoundError,
    QueryCancelledError,
    QueryTimeoutError,
    ReadOnlyViolationError,
    UnsupportedError,
)
from nexus_flight.core.plan import QueryPlan, plan_sql, replace_placeholders
from nexus_flight.core.source import QueryLimits, SourceSpec

_SYSTEM_SCHEMAS = ("information_schema", "pg_catalog", "pg_toast")

log = logging.getLogger(__name__)
#: What PgBouncer answers a connection that carries startup options it does not know.
_STARTUP_REFUSED = "unsupported startup parameter"


def _settings(config: PostgresConfig) -> dict[str, str]:
    """What every connection runs with.

    Read-only transactions, the source's timeout, strings as the validator's PostgreSQL parser reads them
    (backslashes in '...' are text), the source's search path.
    """
    return {
        "default_transaction_read_only": "on",
        "statement_timeout": str(int(config.statement_timeout_seconds * 1000)),
        "standard_conforming_strings": "on",
        "search_path": config.search_path,
    }


def _per_transaction(config: PostgresConfig) -> str:
    """The settings for the transaction under way: where a pooler (PgBouncer) refused or dropped startup options.

    ``transaction_read_only`` rather than its default: the transaction is already open. A statement cannot switch
    it back (PostgreSQL refuses read-write once a query ran), and the rollback on return undoes the rest.
    """
    values = {**_settings(config), "transaction_read_only": "on"}
    del values["default_transaction_read_only"]
    pairs = ", ".join(f"set_config('{name}', {_literal(value)}, true)" for name, value in values.items())
    return f"SELECT {pairs}"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _uri(config: PostgresConfig, startup_options: bool = True) -> str:
    """Build the libpq URI; the settings ride along as startup options (unless a pooler refuses them)."""
    user = urllib.parse.quote(config.username, safe="")
    password = config.password.get_secret_value() if config.password else ""
    auth = f"{user}:{urllib.parse.quote(password, safe='')}@" if password else f"{user}@"
    host = f"[{config.host}]" if ":" in config.host else config.host
    query = {
        "sslmode": config.sslmode,
        "application_name": config.application_name,
        "connect_timeout": str(config.connect_timeout_seconds),
    }
    if startup_options:
        query["options"] = " ".join(f"-c {name}={value}" for name, value in _settings(config).items())
    if config.sslrootcert:
        query["sslrootcert"] = config.sslrootcert
    return f"postgresql://{auth}{host}:{config.port}/{urllib.parse.quote(config.database, safe='')}?" + (
        urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    )


# -- errors --------------------------------------------------------------------------------------------------

_ENGINE_TEXT = re.compile(r"(?:ERROR|FATAL):\s+(.*)")


def _engine_text(exc: BaseException) -> str:
    """Libpq's own message, without the driver's prefixes, the echoed COPY query or the SQLSTATE suffix."""
    text = str(exc)
    match = _ENGINE_TEXT.search(text)
    if match:
        return match.group(1).strip().rstrip(".")
    text = re.sub(r"^[A-Z_]+: \[libpq\] ", "", text).split("\n")[0]
    return text.replace("Failed to connect: ", "").strip()


def _classify(exc: BaseException, source: str, secrets: Sequence[str]) -> GatewayError:
    state = sqlstate_of(exc) or ""
    text = scrub(_engine_text(exc), secrets)
    message = f"[postgres] {text}"
    lowered = text.lower()
    if state == "42601" and "could not begin COPY" in str(exc):
        return UnsupportedError(
            f"{message}: statements that return rows run inside COPY (...) TO STDOUT, which takes only "
            "SELECT, VALUES, TABLE, WITH and SHOW",
            source=source,
            sqlstate=state or None,
        )
    if state == "25006" or "read-only transaction" in lowered or "read-write mode" in lowered:
        return ReadOnlyViolationError(message, source=source, sqlstate=state or None)
    if state == "42501" or lowered.startswith(("permission denied", "must be superuser", "must be owner")):
        # insufficient_privilege (mid-stream errors come without their SQLSTATE): the login's grants held
        return ForbiddenError(message, source=source, sqlstate=state or None)
    if (
        state.startswith("28")
        or "password authentication failed" in lowered
        or ("role" in lowered and "does not exist" in lowered)
    ):
        return AuthenticationError(message, source=source, sqlstate=state or None)
    # 3D000 database, 3F000 schema, 42P01 table or view: the object asked for does not exist.
    if state in ("3D000", "3F000", "42P01") or ("database" in lowered and "does not exist" in lowered):
        return NotFoundError(message, source=source, sqlstate=state or None)
    if state == "57014" or "canceling statement" in lowered:
        if "statement timeout" in lowered:  # PostgreSQL's own limit: the source's statement_timeout_seconds
            message += " (the source's statement_timeout_seconds)"
            return QueryTimeoutError(message, source=source, sqlstate=state or None)
        return QueryCancelledError(message, source=source, sqlstate=state or None)
    if state.startswith(("08", "57P")) or any(
        s in lowered
        for s in (
            "connection refused",
            "could not translate host",
            "timeout expired",
            "no route to host",
            "server closed the connection",
            "connection to server",
            "terminating connection",
        )
    ):
        return BackendUnavailableError(message, source=source, sqlstate=state or None)
    if state.startswith(("42", "22", "0A", "21", "23", "2B", "P0", "54")):
        return InvalidQueryError(message, source=source, sqlstate=state or None)
    if isinstance(exc, adbc_driver_manager.ProgrammingError):
        return InvalidQueryError(message, source=source, sqlstate=state or None)
    if not state and "ERROR:" in str(exc):
        # The server refused the statement while its rows streamed (division by zero, a bad cast): the driver
        # reports that without its SQLSTATE, and the connection was not the cause (checked above).
        return InvalidQueryError(message, source=source)
    return BackendError(message, source=source, sqlstate=state or None)


# -- SQL -----------------------------------------------------------------------------------------------------


def numbered_placeholders(sql: str, placeholders: Sequence[int]) -> str:
    """Rewrite the ``?`` placeholders at ``placeholders`` to ``$1, $2 ...`` (the plan found them, in text order)."""
    return replace_placeholders(sql, placeholders, lambda n: f"${n}")


_SHOW = re.compile(r"^\s*SHOW\s+(ALL|[A-Za-z_][\w.]*|\"[^\"]+\")\s*;?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class _Copyable:
    """The statement ADBC can run for a plan: its text, where its placeholders stand, and its plan if unchanged."""

    sql: str
    placeholders: tuple[int, ...]
    plan: QueryPlan | None

    @property
    def tree(self) -> Any:
        """The plan's query tree, read only when asked (a plan decided on PostgreSQL's reading reads it then)."""
        return self.plan.query if self.plan is not None else None


def copyable(plan: QueryPlan) -> _Copyable:
    """Rewrite ``SHOW`` (which cannot run inside ADBC's ``COPY (...) TO STDOUT``) into an equivalent SELECT.

    Other statements pass unchanged (without trailing semicolons): ADBC runs statements without a result
    directly, so writes reach PostgreSQL and meet its read-only transaction.
    """
    show = _SHOW.match(plan.sql)
    if not show:
        return _Copyable(plan.statement, plan.placeholders, plan)
    name = show.group(1)
    if name.upper() == "ALL":
        return _Copyable(
            "SELECT name, setting, short_desc AS description FROM pg_catalog.pg_settings ORDER BY name", (), None
        )
    name = name.strip('"')
    text = f"SELECT pg_catalog.current_setting('{name.replace(chr(39), chr(39) * 2)}') AS {_quote(name)}"
    return _Copyable(text, (), None)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# -- Arrow types ---------------------------------------------------------------------------------------------


_PG_TO_ARROW_PARAMETER = {
    b"int2": pa.int16(),
    b"int4": pa.int32(),
    b"int8": pa.int64(),
    b"float4": pa.float32(),
    b"float8": pa.float64(),
    b"bool": pa.bool_(),
    b"date": pa.date32(),
    b"timestamp": pa.timestamp("us"),
    b"timestamptz": pa.timestamp("us", tz="UTC"),
    b"bytea": pa.binary(),
}


def _parameter_type(f: pa.Field) -> pa.DataType:
    """Pick a concrete type JDBC can bind into; what the driver cannot type precisely goes as text."""
    pg_type = (f.metadata or {}).get(b"POSTGRESQL:type")
    if pg_type in _PG_TO_ARROW_PARAMETER:
        return _PG_TO_ARROW_PARAMETER[pg_type]
    return pa.utf8()


# -- the backend ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shaped:
    """A query as PostgreSQL runs it, its driver schema and its own column rules."""

    statement: str
    described: pa.Schema
    columns: list[FieldRule | None]


class PostgresBackend(AdbcBackend):
    """A PostgreSQL (or PG-wire) database over adbc-driver-postgresql, read-only, pooled and streamed."""

    kind = "postgres"
    dialect = "postgres"
    engine_parser = "postgres"
    capabilities = Capabilities(parameters=True, cancel=True, keys=True, schema_without_execution=True)
    read_only_guard = (
        "every pooled connection starts with default_transaction_read_only=on, so PostgreSQL rejects writes "
        "(SQLSTATE 25006), and is reset before reuse; a superuser login, or one that reaches the server's files, "
        "is refused unless allow_privileged_login = true"
    )
    config_model = PostgresConfig
    config: PostgresConfig
    field_rule = staticmethod(postgres_types.field_rule)
    xdbc_type_names = postgres_types.XDBC_TYPE_NAMES
    view_names_schema = "pg_catalog"

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self._uri = _uri(self.config)
        self._transaction_settings = _per_transaction(self.config)
        #: Connections whose startup options did not take (a pooler between): their transactions set them.
        self._per_transaction: weakref.WeakSet = weakref.WeakSet()
        self.default_schema = self.config.search_path
        #: Whether each type oid the driver knew no name for is an array (``_unnamed_array``).
        self._array_oids: dict[int, bool] = {}

    @classmethod
    def default_schema_for(cls, options: Mapping[str, Any]) -> str | None:
        """The source's ``search_path`` (``public`` unless its options say otherwise)."""
        return str(options.get("search_path") or "public")

    def _pool_options(self) -> Mapping[str, Any]:
        return {
            **super()._pool_options(),
            "pre_ping": self.config.pool_pre_ping,
            "acquire_timeout_seconds": self.config.pool_timeout_seconds,
            "reset": self._reset_session,
        }

    def _classify(self, exc: BaseException) -> GatewayError:
        return _classify(exc, self.name, self._secrets)

    def _open(self):
        # Not autocommit: each borrower's statements share one transaction, rolled back on return (_reset_session).
        try:
            connection = pg_dbapi.connect(self._uri, autocommit=False)
        except Exception as exc:
            if _STARTUP_REFUSED not in str(exc):
                raise
            # PgBouncer refuses startup options: connect without them; every transaction sets them itself.
            connection = pg_dbapi.connect(_uri(self.config, startup_options=False), autocommit=False)
        try:
            refuse_privileged_login(connection, self.name, self.config.allow_privileged_login)
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_setting('default_transaction_read_only')")
                took = cursor.fetchall() == [("on",)]
            connection.rollback()
            if not took:  # dropped on the way (PgBouncer's ignore_startup_parameters): set per transaction
                self._per_transaction.add(connection)
                self._set_transaction(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _reset_session(self, connection) -> None:
        """Undo what the last borrower did before anyone else gets the connection: roll its transaction back.

        The rollback undoes settings (``set_config(..., false)``, even of ``default_transaction_read_only``),
        large objects, notifications and anything else transactional. Session-level advisory locks survive a
        rollback: release them, and roll back the transaction that did it. Behind a pooler that dropped the
        startup options, the next transaction (already open: the driver begins one after each rollback) gets the
        settings first.
        """
        connection.rollback()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock_all()")
            cursor.fetchall()
        connection.rollback()
        if connection in self._per_transaction:
            self._set_transaction(connection)

    def _set_transaction(self, connection) -> None:
        with connection.cursor() as cursor:
            cursor.execute(self._transaction_settings)
            cursor.fetchall()

    # -- queries ---------------------------------------------------------------------------------------------

    def get_schema(self, plan: QueryPlan) -> pa.Schema:
        """Ask PostgreSQL to describe the prepared statement; nothing runs."""
        shaped = self._shaped(plan, None, plan.parameter_count)
        return plain_schema(shaped.described, self.field_rule, shaped.columns)

    def get_bound_schema(self, plan: QueryPlan, parameters: Sequence[Sequence[Any]]) -> pa.Schema:
        """Describe the statement with each placeholder cast to its bound value's type (``SELECT ?`` follows it)."""
        shaped = self._shaped(plan, parameters, len(parameters[0]) if parameters else 0)
        return plain_schema(shaped.described, self.field_rule, shaped.columns)

    def _shaped(self, plan: QueryPlan, parameters: Sequence[Sequence[Any]] | None, count: int) -> _Shaped:
        """The statement PostgreSQL runs for a plan: placeholders cast, opaque columns as text, decimal rules."""
        base = copyable(plan)
        statement = with_casts(base.sql, base.placeholders, self._parameter_casts(base, count, parameters))
        described = self._describe(statement)
        wrapped = postgres_types.text_columns(statement, described, self._unnamed_array)
        if wrapped is not None:
            statement, described = wrapped, self._describe(wrapped)
        columns: list[FieldRule | None] = []
        if postgres_types.unconstrained_numeric_columns(described):
            columns = postgres_types.column_rules(described, result_scales(base.tree, self._column_types))
        return _Shaped(statement, described, columns)

    def _unnamed_array(self, f: pa.Field) -> bool:
        """Whether a column whose type the driver knew no name for is, by PostgreSQL's catalog, an array."""
        oid = postgres_types.unnamed_oid(f)
        if oid is None:
            return False
        if oid not in self._array_oids:
            rows = self._rows("SELECT typcategory = 'A' FROM pg_catalog.pg_type WHERE oid = $1::oid", (oid,))
            self._array_oids[oid] = bool(rows and rows[0][0])
        return self._array_oids[oid]

    def _parameter_casts(
        self, base: _Copyable, count: int, rows: Sequence[Sequence[Any]] | None
    ) -> list[str | None]:
        """The cast of each placeholder: its values' type, else the type PostgreSQL infers for it."""
        casts = [None if t is None else quoted_type(t) for t in value_types(rows, count)]
        while None in casts:
            try:
                described = self._prepare(with_casts(base.sql, base.placeholders, casts))
            except InvalidQueryError as exc:
                # ``SELECT ? IS NULL`` gives PostgreSQL nothing to infer from: such a placeholder is text.
                undetermined = undetermined_parameter(exc.message)
                if undetermined is None or casts[undetermined - 1] is not None:
                    raise
                casts[undetermined - 1] = quoted_type("text")
                continue
            inferred = list(described) if described is not None else []
            casts = [cast or self._cast_of(inferred[i] if i < len(inferred) else None) for i, cast in enumerate(casts)]
        return casts

    def _cast_of(self, field: pa.Field | None) -> str:
        """A placeholder's inferred type as a cast target (user types by schema-qualified name)."""
        typname = ((field.metadata or {}).get(b"POSTGRESQL:type", b"text") if field is not None else b"text").decode()
        oid = re.fullmatch(r"\w+<oid:(\d+)>", typname)
        if oid is None:
            return quoted_type(typname)
        rows = self._rows(
            "SELECT n.nspname::text, t.typname::text FROM pg_catalog.pg_type t "
            f"JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = {int(oid.group(1))}"
        )
        return f"{quoted_type(rows[0][0])}.{quoted_type(rows[0][1])}" if rows else quoted_type("text")

    def _column_types(self, tables: Sequence[str]) -> dict[str, dict[str, PgColumnType]]:
        """Type name and typmod of each column of the tables a query reads (``to_regclass`` resolves the names)."""
        rows = self._rows(
            "SELECT r.ref, a.attname::text, t.typname::text, a.atttypmod "
            "FROM unnest(string_to_array($1::text, chr(31))) AS r(ref) "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid = to_regclass(r.ref) "
            "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
            "WHERE a.attnum > 0 AND NOT a.attisdropped ORDER BY r.ref, a.attnum",
            (chr(31).join(tables),),
        )
        found: dict[str, dict[str, PgColumnType]] = {}
        for ref, column, typname, typmod in rows:
            found.setdefault(ref, {})[column] = (typname, typmod)
        return found

    def get_parameter_schema(self, plan: QueryPlan) -> pa.Schema:
        """Return the parameter types PostgreSQL inferred when preparing the statement."""
        if plan.parameter_count == 0:
            return pa.schema([])
        base = copyable(plan)
        described = self._prepare(numbered_placeholders(base.sql, base.placeholders))
        types = [_parameter_type(f) for f in described] if described is not None else []
        types += [pa.utf8()] * (plan.parameter_count - len(types))
        # PostgreSQL types ``price > $1`` as numeric without a scale, and JDBC binds a BigDecimal only into a
        # decimal of its very scale: a numeric placeholder takes the type of a numeric(p, s) it is compared with
        # (text otherwise, as before).
        numeric = {i for i, f in enumerate(described or ()) if (f.metadata or {}).get(b"POSTGRESQL:type") == b"numeric"}
        if numeric:
            probe = quiet_probe(lambda sql: self.get_schema(plan_sql(sql, "postgres", self.name)))
            inferred = infer_parameter_types(plan, probe, wanted=numeric)
            types = [found if pa.types.is_decimal(found) and found != postgres_types.UNCONSTRAINED_NUMERIC else t
                     for t, found in zip(types, inferred, strict=True)]
        return parameter_schema(types)

    def execute(
        self,
        plan: QueryPlan,
        parameters: Sequence[Sequence[Any]] | None,
        limits: QueryLimits,
    ) -> Execution:
        """Stream the query from a pooled read-only connection; a cancel stops it in PostgreSQL."""
        # Describing first costs one round trip but lets execute() return at once: the statement starts on the
        # first read, and a cancel can reach it while PostgreSQL computes the first row.
        shaped = self._shaped(plan, parameters, len(parameters[0]) if parameters else 0)
        rows = [as_text_row(row) for row in parameters] if parameters else None
        return self._stream(shaped.statement, rows, limits, described=shaped.described, columns=shaped.columns)

    # -- metadata --------------------------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return super()._rows(sql, params)  # the gateway's own catalog queries number their parameters ($1)

    def list_schemas(self) -> list[str]:
        """Schemas the connected role can see, system schemas hidden."""
        rows = self._rows(
            "SELECT nspname FROM pg_catalog.pg_namespace "
            "WHERE nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast%' "
            "AND has_schema_privilege(oid, 'USAGE') ORDER BY nspname"
        )
        return [r[0] for r in rows if r[0] not in _SYSTEM_SCHEMAS]

    def list_tables(self, db_schema: str | None = None) -> list[TableInfo]:
        """Tables, views, materialized views and foreign tables."""
        rows = self._rows(
            "SELECT n.nspname, c.relname, c.relkind::text FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "AND n.nspname NOT IN ('information_schema', 'pg_catalog', 'pg_toast') "
            "AND ($1::text IS NULL OR n.nspname = $1::text) ORDER BY 1, 2",
            (db_schema,),
        )
        return [TableInfo(s, t, "VIEW" if kind in ("v", "m") else "TABLE") for s, t, kind in rows]

    def view_definition(self, db_schema: str, view: str) -> str | None:
        """The query of a view or materialized view, as ``pg_get_viewdef`` prints it from the stored rule.

        It is printed with an empty ``search_path``, so every relation outside ``pg_catalog`` is schema-qualified
        (``view_names_schema``: what is left unqualified is ``pg_catalog``'s); the connection's transaction, and
        the setting with it, is rolled back when the connection returns to the pool.
        """
        with self._cursor() as cursor:
            cursor.execute("SELECT pg_catalog.set_config('search_path', '', true)")
            cursor.fetchall()
            cursor.execute(
                "SELECT pg_catalog.pg_get_viewdef(c.oid) FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = $1::text AND c.relname = $2::text AND c.relkind IN ('v', 'm')",
                (db_schema, view),
            )
            rows = cursor.fetchall()
        return rows[0][0] if len(rows) == 1 and rows[0][0] else None

    def table_lineage(self) -> TableLineage:
        """Partitions and inheritance children (``pg_inherits``, at any depth) and foreign tables, in one query.

        Partitioned indexes share ``pg_inherits``; only relations a query can read (tables, partitioned tables,
        foreign tables) are kept. Every name is read through ``pg_catalog``-qualified relations.
        """
        rows = self._rows(
            "SELECT cn.nspname::text, c.relname::text, pn.nspname::text, p.relname::text "
            "FROM pg_catalog.pg_inherits i "
            "JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace "
            "JOIN pg_catalog.pg_class p ON p.oid = i.inhparent "
            "JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'f') "
            "UNION ALL SELECT n.nspname::text, c.relname::text, NULL, NULL FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'f' ORDER BY 1, 2, 3, 4"
        )
        return TableLineage(
            parents=tuple((s, t, ps, p) for s, t, ps, p in rows if p is not None),
            foreign=tuple((s, t) for s, t, _, p in rows if p is None),
        )

    def table_schema(self, db_schema: str, table: str) -> pa.Schema:
        """The types ``SELECT *`` returns (described, nothing is read), with pg_attribute's names and NOT NULLs."""
        columns = self._rows(
            f"SELECT {postgres_snapshot.CATALOG_COLUMNS} "
            "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1::text AND c.relname = $2::text AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum",
            (db_schema, table),
        )
        if not columns:
            raise NotFoundError(f"table {db_schema}.{table} not found", source=self.name)
        # The gateway's own statement: its plan is read here (the numeric scales come from its tree).
        own = f"SELECT * FROM {_quote(db_schema)}.{_quote(table)}"
        described = self.get_schema(plan_sql(own, "postgres", self.name))
        return pa.schema(
            [
                catalog_column(f, type_name, not not_null, digits)
                for f, (_, type_name, not_null, digits) in zip(described, columns, strict=True)
            ]
        )

    def table_schemas(self, db_schema: str) -> dict[str, pa.Schema]:
        """``table_schema`` of the tables of ``db_schema`` whose column types pg_attribute alone settles, in one read.

        The types are the ones a query streams (``postgres_snapshot``); a table with any other column is left out.
        """
        return postgres_snapshot.table_schemas(self._rows, db_schema)

    def primary_keys(self, db_schema: str | None, table: str) -> list[KeyColumn]:
        """Primary-key columns from pg_constraint, in key order."""
        rows = self._rows(
            "SELECT n.nspname, c.relname, a.attname, k.ord::int, con.conname "
            "FROM pg_catalog.pg_constraint con "
            "JOIN pg_catalog.pg_class c ON c.oid = con.conrelid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
            "WHERE con.contype = 'p' AND c.relname = $1::text AND ($2::text IS NULL OR n.nspname = $2::text) "
            "ORDER BY 1, 2, 4",
            (table, db_schema),
        )
        return [KeyColumn(s, t, col, seq, name) for s, t, col, seq, name in rows]

    def foreign_keys(self, db_schema: str | None = None, table: str | None = None) -> list[ForeignKeyColumn]:
        """Foreign-key column pairs where ``table`` is the referencing or the referenced side."""
        rows = self._rows(
            "SELECT pn.nspname, pc.relname, pa.attname, fn.nspname, fc.relname, fa.attname, k.ord::int, "
            "con.conname, pk.conname, con.confupdtype::text, con.confdeltype::text "
            "FROM pg_catalog.pg_constraint con "
            "CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(fk_att, pk_att, ord) "
            "JOIN pg_catalog.pg_class fc ON fc.oid = con.conrelid "
            "JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace "
            "JOIN pg_catalog.pg_attribute fa ON fa.attrelid = fc.oid AND fa.attnum = k.fk_att "
            "JOIN pg_catalog.pg_class pc ON pc.oid = con.confrelid "
            "JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace "
            "JOIN pg_catalog.pg_attribute pa ON pa.attrelid = pc.oid AND pa.attnum = k.pk_att "
            "LEFT JOIN pg_catalog.pg_constraint pk ON pk.conrelid = con.confrelid "
            "AND pk.contype IN ('p', 'u') "
            "AND pk.conkey = con.confkey "
            "WHERE con.contype = 'f' "
            "AND ($1::text IS NULL OR fc.relname = $1::text OR pc.relname = $1::text) "
            "AND ($2::text IS NULL OR fn.nspname = $2::text OR pn.nspname = $2::text) "
            "ORDER BY 4, 5, 8, 7",
            (table, db_schema),
        )
        result = []
        for ps, pt, pcol, fs, ft, fcol, seq, fk_name, pk_name, upd, dele in rows:
            result.append(
                ForeignKeyColumn(
                    pk=KeyColumn(ps, pt, pcol, seq, pk_name),
                    fk=KeyColumn(fs, ft, fcol, seq, fk_name),
                    update_rule=_FK_RULES.get(upd, 3),
                    delete_rule=_FK_RULES.get(dele, 3),
                )
            )
        return result


#: pg_constraint.confupdtype/confdeltype → Flight SQL rule codes (0 CASCADE, 1 RESTRICT, 2 SET NULL,
#: 3 NO ACTION, 4 SET DEFAULT).
_FK_RULES = {"c": 0, "r": 1, "n": 2, "a": 3, "d": 4}
