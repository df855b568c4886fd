"""DuckDB: the embedded demo and DuckDB database files (the file and lake families build on it, ``lake.py``).

One DuckDB database per source, opened read-only with external access disabled and its configuration locked, so
that even SQL that slipped past the validator cannot write to the database, read the gateway's file system or
load code. Each query runs on its own cursor (a connection to the same database), so queries run in parallel and
``interrupt`` stops exactly one of them.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nexus_flight.backends.base import (
    Backend,
    Capabilities,
    Execution,
    KeyColumn,
    TableInfo,
    catalog_column,
    parameter_schema,
)
from nexus_flight.backends.limits import planning_limits, timeout_error
from nexus_flight.backends.watchdog import WATCHDOG
from nexus_flight.core.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    GatewayError,
    InvalidQueryError,
    LimitExceededError,
    NotFoundError,
    QueryCancelledError,
    ReadOnlyViolationError,
)
from nexus_flight.core.plan import QueryPlan, TableRef
from nexus_flight.core.source import QueryLimits, SourceSpec

_WRITE_TO_VIEW = re.compile(r"Can only (insert into|delete from|update) base table")

_INTERNAL_SCHEMAS = ("information_schema", "pg_catalog")


@contextlib.contextmanager
def _map_errors(source: str, memory_limit: str | None = None) -> Iterator[None]:
    """Translate DuckDB exceptions into the gateway's error tree, once, for every call."""
    try:
        yield
    except GatewayError:
        raise
    except duckdb.InterruptException as exc:
        raise QueryCancelledError("[duckdb] query interrupted", source=source) from exc
    except duckdb.OutOfMemoryException as exc:
        text = _first_line(exc)
        if "bad allocation" in text:  # the process's own ceiling, not DuckDB's buffer pool
            limit = "the server's process_memory_limit; a single value this large cannot be built"
        else:
            limit = f"memory_limit={memory_limit}); add a filter or raise the source's memory_limit"
            limit = f"the memory limit ({limit}"
        raise LimitExceededError(f"[duckdb] {text}: the query needs more than {limit}", source=source) from exc
    except duckdb.PermissionException as exc:
        raise ReadOnlyViolationError(f"[duckdb] {_first_line(exc)}", source=source) from exc
    except duckdb.InvalidInputException as exc:
        text = _first_line(exc)
        if "read-only" in text or "read only" in text:
            raise ReadOnlyViolationError(f"[duckdb] {text}", source=source) from exc
        if "get_next failed(): IOError" in text:  # an Arrow dataset's store failed under DuckDB's scan
            raise BackendUnavailableError(f"[duckdb] {text}", source=source) from exc
        raise InvalidQueryError(f"[duckdb] {text}", source=source) from exc
    except duckdb.CatalogException as exc:
        text = _first_line(exc)
        if "read-only" in text or "read only" in text or text.endswith("is not an table"):
            raise ReadOnlyViolationError(f"[duckdb] {text}", source=source) from exc
        if "does not exist" in text:
            raise NotFoundError(f"[duckdb] {text}", source=source) from exc
        raise InvalidQueryError(f"[duckdb] {text}", source=source) from exc
    except (duckdb.ParserException, duckdb.BinderException, duckdb.ConversionException) as exc:
        text = _first_line(exc)
        if _WRITE_TO_VIEW.search(text):  # DML aimed at a view (or a registered Arrow object)
            raise ReadOnlyViolationError(f"[duckdb] {text}", source=source) from exc
        raise InvalidQueryError(f"[duckdb] {text}", source=source) from exc
    except (duckdb.IOException, duckdb.HTTPException) as exc:
        raise BackendUnavailableError(f"[duckdb] {_first_line(exc)}", source=source) from exc
    except duckdb.Error as exc:
        text = _first_line(exc)
        if "read-only" in text or "read only" in text:
            raise ReadOnlyViolationError(f"[duckdb] {text}", source=source) from exc
        raise BackendError(f"[duckdb] {text}", source=source) from exc


def _first_line(exc: BaseException) -> str:
    """DuckDB messages can span lines with a caret diagram; the first line is the message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class DuckDBExecution(Execution):
    """A query on its own DuckDB cursor; it starts when the reader is first asked for.

    Starting lazily lets the caller register the execution (so cancel can reach it) before DuckDB blocks
    computing the first batch, which for an aggregation is the whole query. Whether a failure after a cancel
    was the cancel or the server's time limit is the query service's to say (``server/query/results.py``).
    """

    def __init__(self, cursor: duckdb.DuckDBPyConnection, start) -> None:
        self._cursor = cursor
        self._start = start
        self._reader: pa.RecordBatchReader | None = None
        self._lock = threading.Lock()
        self._cancelled = False
        self._closed = False

    @property
    def reader(self) -> pa.RecordBatchReader:
        """DuckDB's result stream (started on first access); failures after the first batch are mapped too."""
        if self._reader is None:
            if self._cancelled:
                raise QueryCancelledError("[duckdb] query cancelled before it started")
            engine = self._start(self._cursor)
            self._reader = pa.RecordBatchReader.from_batches(engine.schema, self._mapped(engine))
        return self._reader

    @staticmethod
    def _mapped(engine: pa.RecordBatchReader):
        """DuckDB's batches, unchanged; an error mid-stream as the gateway's error."""
        try:
            yield from engine
        except pa.ArrowException as exc:
            text = _first_line(exc).split(". Detail:")[0]
            if "Out of Memory" in text:
                raise LimitExceededError(
                    f"[duckdb] {text}: the query needs more than the source's memory limit"
                ) from None
            if "INTERRUPT" in text:
                raise QueryCancelledError("[duckdb] query interrupted") from None
            raise InvalidQueryError(f"[duckdb] {text}") from None

    def cancel(self) -> None:
        """Interrupt the query in DuckDB."""
        with self._lock:
            self._cancelled = True
            if not self._closed:
                self._cursor.interrupt()

    def close(self) -> None:
        """Release the cursor."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(duckdb.Error):
            self._cursor.close()


class DuckDBConfig(BaseModel):
    """Options of a DuckDB source (there are no secrets: the file is local)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The database file; absent or ``:memory:`` for an in-memory database prepared by ``setup_sql``.
    path: str | None = None
    #: Statements run once, before the configuration is locked (views over the source's own files).
    setup_sql: tuple[str, ...] = ()
    #: DuckDB's memory limit for this source, e.g. ``"2GB"``.
    memory_limit: str = "2GB"
    #: DuckDB worker threads (default: one per core).
    threads: int | None = Field(None, ge=1, le=1024)
    #: Where DuckDB spills when memory runs short.
    temp_directory: str | None = None
    #: Paths and URL prefixes the source's own data lives under (the validator lets file readers touch only these).
    allowed_paths: tuple[str, ...] = ()


class DuckDBBackend(Backend):
    """A DuckDB database (in memory or a file), opened read-only; its options are ``DuckDBConfig``."""

    kind = "duckdb"
    dialect = "duckdb"
    engine_parser = "duckdb"
    default_schema = "main"
    capabilities = Capabilities(parameters=True, cancel=True, keys=True, schema_without_execution=True)
    read_only_guard = (
        "database opened read_only, enable_external_access=false, extensions never loaded, configuration locked"
    )
    config_model = DuckDBConfig

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        try:
            options = DuckDBConfig(**spec.options)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            message = f"invalid options for DuckDB source: {where}: {problem['msg']}"
            raise ConfigError(message, source=spec.name) from None
        path = options.path or ":memory:"
        self._memory_limit = options.memory_limit
        config: dict[str, Any] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": self._memory_limit,
        }
        if options.threads:
            config["threads"] = options.threads
        if options.temp_directory:
            config["temp_directory"] = options.temp_directory
        in_memory = path == ":memory:"
        with _map_errors(spec.name):
            if not in_memory and not Path(path).exists():
                raise BackendUnavailableError(f"[duckdb] database file not found: {Path(path).name}", source=spec.name)
            self._db = duckdb.connect(path, read_only=not in_memory, config=config)
            if self._db.execute("SELECT current_setting('lock_configuration')").fetchone()[0]:
                return  # the same file is already open in this process (DuckDB shares one instance), set up
            self._db.execute("SET TimeZone = 'UTC'")  # timestamptz results do not depend on the host
            for statement in options.setup_sql:
                self._db.execute(statement)
            # Once set up, nothing a query says can reach outside the database or change its settings.
            self._db.execute("SET enable_external_access = false")
            self._db.execute("SET lock_configuration = true")

    # -- queries -------------------------------------------------------------------------------------------

    def _cursor(self, tables: Sequence[TableRef] | None = None) -> duckdb.DuckDBPyConnection:
        """A fresh cursor for one query; subclasses bind the ``tables`` it reads to it (None: all they have)."""
        return self._db.cursor()

    def get_schema(self, plan: QueryPlan) -> pa.Schema:
        """Return the result schema from DuckDB's binder, without running the query (see ``_schema``)."""
        return self._schema(plan.sql, plan.parameter_count, _tables(plan))

    def _schema(self, sql: str, parameter_count: int = 0, tables: Sequence[TableRef] | None = None) -> pa.Schema:
        """Return the result schema of ``sql`` from DuckDB's binder, without running the query.

        A query is bound as a relation, not executed; its DuckDB types become Arrow types through a per-source
        cache (each distinct type is asked once, as ``CAST(NULL AS type)``). A query with parameters is bound
        with NULL parameters under ``LIMIT 0``. Whatever DuckDB does while binding (folding constants,
        expanding a PIVOT) runs under the server's time limit; a statement that is not a query is not run (its
        schema is empty, and DuckDB judges it when it is executed).
        """
        limits = planning_limits()
        cursor = self._cursor(tables)
        deadline = WATCHDOG.schedule(limits.timeout_seconds, cursor.interrupt)
        try:
            with _planning_errors(self.name, deadline, limits), _map_errors(self.name, self._memory_limit):
                kind = _statement_kind(cursor, sql)
                if kind == "query" and parameter_count == 0:
                    schema = self._bound_schema(cursor, sql)
                    if schema is not None:
                        return schema
                if kind == "query":
                    reader = cursor.execute(limit_zero(sql), [None] * parameter_count).to_arrow_reader()
                elif kind == "explain":
                    reader = cursor.execute(sql, [None] * parameter_count).to_arrow_reader()  # plans only
                else:
                    # Not a query (only with the validator off): nothing runs while planning; executing it
                    # later meets DuckDB's own refusal (read-only database, external access off).
                    return pa.schema([])
                return _plain_schema(reader.schema)
        finally:
            deadline.cancel()
            cursor.close()

    def _bound_schema(self, cursor: duckdb.DuckDBPyConnection, sql: str) -> pa.Schema | None:
        relation = cursor.sql(sql)  # a query only: sql() would run anything else right away
        names, types = relation.columns, [str(t) for t in relation.types]
        if len(set(names)) != len(names):
            return None  # let DuckDB's own export decide how duplicate names come out
        return pa.schema([pa.field(n, self._arrow_type(t)) for n, t in zip(names, types, strict=True)])

    @functools.cached_property
    def _arrow_types(self) -> dict[str, pa.DataType]:
        """DuckDB type name → the Arrow type DuckDB exports it as (subclasses with their own __init__ get it too)."""
        return {}

    def _arrow_type(self, duckdb_type: str) -> pa.DataType:
        arrow = self._arrow_types.get(duckdb_type)
        if arrow is None:
            cursor = self._db.cursor()
            try:
                probe = cursor.execute(f"SELECT CAST(NULL AS {duckdb_type}) AS t").to_arrow_reader().schema
            finally:
                cursor.close()
            arrow = _plain_type(probe.field(0).type)
            self._arrow_types[duckdb_type] = arrow
        return arrow

    def get_parameter_schema(self, plan: QueryPlan) -> pa.Schema:
        """Infer each parameter's type from what it is compared with; fall back to utf8 (DuckDB casts it)."""
        from nexus_flight.backends.parameter_types import infer_parameter_types

        types = infer_parameter_types(plan, lambda probe: self._type_of_expressions(probe, _tables(plan)))
        return parameter_schema(types)

    def _type_of_expressions(self, sql: str, tables: Sequence[TableRef] | None) -> pa.Schema | None:
        limits = planning_limits()
        cursor = self._cursor(tables)
        deadline = WATCHDOG.schedule(limits.timeout_seconds, cursor.interrupt)
        try:
            return cursor.execute(limit_zero(sql)).to_arrow_reader().schema
        except duckdb.Error:
            if deadline.fired:
                raise timeout_error(limits.timeout_seconds, self.name, "planning") from None
            return None
        finally:
            deadline.cancel()
            cursor.close()

    def execute(
        self,
        plan: QueryPlan,
        parameters: Sequence[Sequence[Any]] | None,
        limits: QueryLimits,
    ) -> Execution:
        """Prepare a fresh cursor; the query runs when the execution's reader is first read."""
        with _map_errors(self.name, self._memory_limit):
            cursor = self._cursor(_tables(plan))
        sql = plan.sql
        rows = list(parameters or [])

        def start(cur) -> pa.RecordBatchReader:
            with _map_errors(self.name, self._memory_limit):
                if len(rows) <= 1:
                    reader = cur.execute(sql, list(rows[0]) if rows else None).to_arrow_reader(limits.batch_rows)
                else:
                    reader = self._execute_many(cur, sql, rows, limits)
                return _without_dictionaries(reader)

        return DuckDBExecution(cursor, start)

    @staticmethod
    def _execute_many(cursor, sql: str, rows: list, limits: QueryLimits) -> pa.RecordBatchReader:
        """Several parameter rows: one execution each, results concatenated in order."""
        first = cursor.execute(sql, list(rows[0])).to_arrow_reader(limits.batch_rows)
        schema = first.schema

        def batches():
            yield from first
            for row in rows[1:]:
                yield from cursor.execute(sql, list(row)).to_arrow_reader(limits.batch_rows)

        return pa.RecordBatchReader.from_batches(schema, batches())

    # -- metadata ------------------------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        cursor = self._db.cursor()
        try:
            with _map_errors(self.name):
                return cursor.execute(sql, params).fetchall()
        finally:
            cursor.close()

    def list_schemas(self) -> list[str]:
        """Schemas of the source's own database (the system ones are hidden)."""
        rows = self._query(
            "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = current_database() "
            "ORDER BY schema_name"
        )
        return [r[0] for r in rows if r[0] not in _INTERNAL_SCHEMAS]

    def list_tables(self, db_schema: str | None = None) -> list[TableInfo]:
        """Tables and views of the source's own database."""
        rows = self._query(
            "SELECT table_schema, table_name, table_type FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND (? IS NULL OR table_schema = ?) "
            "ORDER BY table_schema, table_name",
            [db_schema, db_schema],
        )
        return [
            TableInfo(s, t, "VIEW" if kind == "VIEW" else "TABLE")
            for s, t, kind in rows
            if s not in _INTERNAL_SCHEMAS
        ]

    def table_schema(self, db_schema: str, table: str) -> pa.Schema:
        """The table's Arrow schema as a query of it returns, with DuckDB's type names and NOT NULLs."""
        columns = self._query(
            "SELECT data_type, is_nullable = 'YES' FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [db_schema, table],
        )
        if not columns:
            raise NotFoundError(f"table {db_schema}.{table} not found", source=self.name)
        described = self._schema(f"SELECT * FROM {_quote(db_schema)}.{_quote(table)}")
        pairs = zip(described, columns, strict=True)
        return pa.schema([catalog_column(f, type_name, nullable) for f, (type_name, nullable) in pairs])

    def primary_keys(self, db_schema: str | None, table: str) -> list[KeyColumn]:
        """Primary keys from DuckDB's constraint catalog."""
        rows = self._query(
            "SELECT schema_name, table_name, constraint_column_names, constraint_name "
            "FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' AND database_name = current_database() "
            "AND table_name = ? AND (? IS NULL OR schema_name = ?)",
            [table, db_schema, db_schema],
        )
        return [
            KeyColumn(s, t, column, i + 1, name)
            for s, t, columns, name in rows
            for i, column in enumerate(columns)
        ]

    def close(self) -> None:
        """Close the database."""
        with contextlib.suppress(duckdb.Error):
            self._db.close()


def _tables(plan: QueryPlan) -> Sequence[TableRef] | None:
    """The tables a query reads, for the cursor to bind; None when sqlglot could not read it (all of them)."""
    return plan.tables if plan.query is not None else None


def limit_zero(sql: str) -> str:
    """``sql`` as a subquery under ``LIMIT 0``: bound and planned, never run.

    The query goes on lines of its own, so that a trailing ``-- comment`` cannot swallow the closing
    parenthesis, and without its trailing semicolons (found with DuckDB's own lexer, comments after them too).
    """
    data = sql.encode("utf-8")  # DuckDB's token offsets count bytes
    tokens = duckdb.tokenize(sql)
    end = len(data)
    while tokens and data.startswith(b";", tokens[-1][0]):
        end = tokens.pop()[0]
    return f"SELECT * FROM (\n{data[:end].decode('utf-8')}\n) AS q LIMIT 0"


def _statement_kind(cursor: duckdb.DuckDBPyConnection, sql: str) -> str:
    """Say what DuckDB's parser reads ``sql`` as: ``query``, ``explain`` or ``other``.

    DESCRIBE, SHOW, SUMMARIZE and a PIVOT with its temporary ENUM type are queries.
    """
    types = [statement.type for statement in cursor.extract_statements(sql)]
    if types in ([duckdb.StatementType.SELECT], [duckdb.StatementType.CREATE, duckdb.StatementType.SELECT]):
        return "query"
    if types == [duckdb.StatementType.EXPLAIN]:
        return "explain"
    return "other"


@contextlib.contextmanager
def _planning_errors(source: str, deadline, limits: QueryLimits) -> Iterator[None]:
    """An interrupt from the planning deadline is the server's time limit, said so."""
    try:
        yield
    except (QueryCancelledError, duckdb.InterruptException):
        if deadline.fired:
            raise timeout_error(limits.timeout_seconds, source, "planning") from None
        raise


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _plain_type(t: pa.DataType) -> pa.DataType:
    """Dictionary (ENUM) columns become their value type: JDBC and ODBC cannot decode dictionaries."""
    if pa.types.is_dictionary(t):
        return t.value_type
    return t


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    if not any(pa.types.is_dictionary(f.type) for f in schema):
        return schema
    return pa.schema([f.with_type(_plain_type(f.type)) for f in schema], metadata=schema.metadata)


def _without_dictionaries(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """Decode dictionary columns; the common case (none) hands DuckDB's reader through untouched."""
    target = _plain_schema(reader.schema)
    if target is reader.schema:
        return reader
    return reader.cast(target)
