"""SQLite database files as read-only sources, over adbc-driver-sqlite.

The file is opened with the URI ``file:...?mode=ro``: SQLite refuses every write to it ("attempt to write a
readonly database"). Read-only mode does not stop statements that touch *other* files: ``ATTACH`` creates the
file it names and ``VACUUM INTO`` writes a copy, so this backend refuses ATTACH, DETACH, VACUUM and PRAGMA
assignments itself, before SQLite sees them.

SQLite types values, not columns: each result column's Arrow type is decided from the storage classes the whole
result holds (one aggregate pass of the query before it streams; rules and table in ``sqlite_types``), so a
column that is NULL or integral in the first rows and real or text later streams whole. The result schema
therefore needs that pass, and it follows bound parameter values (``get_bound_schema``). Statements SQLite
cannot put in a view (PRAGMA reads, EXPLAIN) keep the driver's guess from the first batch.

The driver cannot interrupt a statement, so each pooled connection lives in a worker process
(``sqlite_worker.py``): cancel and the server's time limit kill it, in the type pass, the rows, or planning.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import adbc_driver_manager
import pyarrow as pa

from nexus_flight.backends import sqlite_types
from nexus_flight.backends.adbc_backend import AdbcBackend
from nexus_flight.backends.base import (
    FK_RULE_CODES,
    Capabilities,
    Execution,
    ForeignKeyColumn,
    KeyColumn,
    TableInfo,
    TableLineage,
    catalog_column,
    parameter_schema,
)
from nexus_flight.backends.file_identity import file_identity
from nexus_flight.backends.limits import planning_limits
from nexus_flight.backends.options.sqlite import SQLiteConfig
from nexus_flight.backends.parameter_types import infer_parameter_types, quiet_probe
from nexus_flight.backends.sqlite_worker import WorkerConnection, watching
from nexus_flight.backends.view_text import query_of_create_view
from nexus_flight.core.errors import (
    BackendError,
    BackendUnavailableError,
    GatewayError,
    InvalidQueryError,
    NotFoundError,
    QueryCancelledError,
    ReadOnlyViolationError,
    RetryLaterError,
)
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.source import QueryLimits, SourceSpec

_SCHEMA = "main"




def _unwatched(_worker) -> None:
    return None


def _planning() -> QueryLimits:
    """Limits of a planning step: the server's time limit, at which its worker is killed."""
    return QueryLimits(timeout_seconds=planning_limits().timeout_seconds)


_FORBIDDEN = {"ATTACH", "DETACH", "VACUUM"}
_PRAGMA_ASSIGNMENT = re.compile(r"^\s*PRAGMA\s+[\w.]+\s*(=|\()", re.IGNORECASE)


class SQLiteBackend(AdbcBackend):
    """A SQLite file, opened read-only."""

    kind = "sqlite"
    dialect = "sqlite"
    #: SQLite resolves an unqualified name in ``main`` (the read-only file has no temporary objects to find first).
    default_schema = _SCHEMA
    #: Cancel and deadlines kill the connection's worker process (the driver itself cannot interrupt).
    capabilities = Capabilities(parameters=True, cancel=True, keys=True, schema_without_execution=False)
    read_only_guard = (
        "the file is opened with mode=ro (SQLite refuses writes); ATTACH, DETACH, VACUUM and PRAGMA "
        "assignments, "
        "which could create or change other files, are refused before they reach SQLite"
    )
    config_model = SQLiteConfig
    config: SQLiteConfig
    xdbc_type_names = sqlite_types.XDBC_TYPE_NAMES

    @classmethod
    def content_identity(cls, options: Mapping[str, Any]) -> Hashable | None:
        """The file's device and inode: pooled connections see writes in place, not a new file renamed over it."""
        return file_identity(options.get("path"), with_content=False)

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        path = Path(self.config.path)
        if not path.is_file():
            raise BackendUnavailableError(f"[sqlite] database file not found: {path.name}", source=spec.name)
        self._uri = f"{path.resolve().as_uri()}?mode=ro"
        self._typed_lock = threading.Lock()
        self._typed_cache: dict[tuple[str, str], tuple[float, sqlite_types.TypedResult]] = {}

    def _pool_options(self) -> Mapping[str, Any]:
        return {"size": self.config.pool_size, "pre_ping": False, "ping": None}

    def _classify(self, exc: BaseException) -> GatewayError:
        """Translate driver exceptions; file paths never appear in messages."""
        text = str(exc).split("\n")[0]
        text = re.sub(r"^[A-Z_]+: (\[SQLite\] )?", "", text).replace("Failed to prepare query: ", "")
        text = text.replace("Failed to step query: ", "")
        message = f"[sqlite] {text}"
        if "readonly database" in text or "read-only" in text:
            return ReadOnlyViolationError(message, source=self.name)
        if "interrupted" in text:
            return QueryCancelledError(message, source=self.name)
        if "database is locked" in text:  # a writer held the file: the source is there, and frees itself
            return RetryLaterError(f"{message} past busy_timeout_seconds; retry later", source=self.name)
        if text.startswith("no such table"):
            # as the other families answer an unknown table; also a view whose table was dropped
            return NotFoundError(message, source=self.name)
        if isinstance(exc, adbc_driver_manager.ProgrammingError) or "syntax error" in text:
            return InvalidQueryError(message, source=self.name)
        if "unable to open" in text or "disk I/O" in text:
            return BackendUnavailableError(message, source=self.name)
        if isinstance(exc, adbc_driver_manager.Error):
            # The statement failed in SQLite (no such column, malformed JSON, integer overflow). The driver says
            # IO for every failure while a statement steps, so its status tells nothing; the file was readable.
            return InvalidQueryError(message, source=self.name)
        return BackendError(message, source=self.name)

    def _open(self):
        return WorkerConnection(self._uri, int(self.config.busy_timeout_seconds * 1000))

    def _guard(self, plan: QueryPlan) -> str:
        """The statement to run (trailing semicolons dropped), unless it could change files beside the database."""
        keyword = plan.keyword.upper()
        if keyword in _FORBIDDEN or _PRAGMA_ASSIGNMENT.match(plan.sql):
            raise ReadOnlyViolationError(
                f"[sqlite] {keyword or 'PRAGMA'} is not allowed: this source is read-only", source=self.name
            )
        return plan.statement

    # -- queries ---------------------------------------------------------------------------------------------

    def get_schema(self, plan: QueryPlan) -> pa.Schema:
        """The types of the values the query returns (placeholders bound to NULL until values are bound)."""
        return self._schema(self._guard(plan), plan.parameter_count, plan.placeholders)

    def _schema(self, sql: str, parameter_count: int = 0, placeholders: Sequence[int] = ()) -> pa.Schema:
        parameters = [[None] * parameter_count] if parameter_count else None
        typed = self._typed(sql, placeholders, parameters, _planning(), planning=True)
        return typed.schema if typed is not None else self._first_batch_schema(sql, parameters)

    def get_bound_schema(self, plan: QueryPlan, parameters: Sequence[Sequence[Any]]) -> pa.Schema | None:
        """The types of the values the query returns with these parameters (``count(*)`` stays an integer)."""
        typed = self._typed(self._guard(plan), plan.placeholders, parameters, _planning(), planning=True)
        return typed.schema if typed is not None else None

    def _first_batch_schema(self, sql: str, parameters: Sequence[Sequence[Any]] | None) -> pa.Schema:
        """The driver's guess from the first batch, for statements that cannot be typed beforehand (PRAGMA).

        Columns without a value to infer from (no rows, or only NULLs) are declared utf8, the type every SQLite
        value converts to.
        """
        execution = self._stream(sql, parameters, _planning(), planning=True)
        try:
            reader = execution.reader
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                batch = None
            return pa.schema(
                [
                    f
                    if batch is not None and batch.num_rows > batch.column(i).null_count
                    else f.with_type(pa.utf8())
                    for i, f in enumerate(reader.schema)
                ]
            )
        finally:
            execution.close()

    def get_parameter_schema(self, plan: QueryPlan) -> pa.Schema:
        """Infer each placeholder's type from what it is compared with (utf8 otherwise; SQLite converts)."""
        probe = quiet_probe(lambda candidate: self._schema(candidate + " LIMIT 1"))
        return parameter_schema(infer_parameter_types(plan, probe))

    def execute(self, plan: QueryPlan, parameters: Sequence[Sequence[Any]] | None, limits: QueryLimits) -> Execution:
        """Stream the query from a pooled read-only connection, each column in the type its values decide.

        The types are read on the first read of the stream (unless planning the query just read them), so
        cancel and the deadline reach that pass as they reach the rows.
        """
        statement = self._guard(plan)
        return _TypedExecution(
            lambda started: self._typed_stream(statement, plan.placeholders, parameters, limits, started)
        )

    def _typed_stream(
        self,
        sql: str,
        placeholders: Sequence[int],
        parameters: Sequence[Sequence[Any]] | None,
        limits: QueryLimits,
        started: Callable[[Execution], None],
    ) -> Execution:
        batch_rows = {"adbc.sqlite.query.batch_rows": str(limits.batch_rows)}
        typed = self._typed(sql, placeholders, parameters, limits, started)
        if typed is None:
            execution = self._stream(sql, parameters, limits, statement_options=batch_rows)
        else:
            execution = self._stream(
                typed.statement,
                parameters,
                limits,
                statement_options=batch_rows,
                described=typed.schema,
                skip_rows=typed.skip_rows,
            )
        started(execution)
        return execution

    def _bind(self, row: Sequence[Any]) -> tuple:
        return tuple(sqlite_types.bindable(v) for v in row)

    # -- result types: SQLite types values, not columns (sqlite_types) -------------------------------------------

    #: How long a query's decided types are reused (planning and running one query come within milliseconds).
    TYPES_REUSED_SECONDS = 5.0

    def _typed(
        self,
        sql: str,
        placeholders: Sequence[int],
        parameters: Sequence[Sequence[Any]] | None,
        limits: QueryLimits,
        started: Callable[[Execution], None] = lambda _execution: None,
        planning: bool = False,
    ) -> sqlite_types.TypedResult | None:
        """How ``sql`` streams with its columns' decided types; None for statements a view cannot hold.

        While ``planning``, the type pass stops itself at the planning limit; a query's own pass is timed (and
        cancelled) with the query.
        """
        key = (sql, repr(parameters))
        with self._typed_lock:
            cached = self._typed_cache.get(key)
            if cached is not None and time.monotonic() - cached[0] < self.TYPES_REUSED_SECONDS:
                return cached[1]
        declared = self._declared_columns(sql, placeholders)
        if declared is None:
            return None
        classes = self._storage_classes(sql, len(declared), parameters, limits, started, planning)
        types = [sqlite_types.decided_type(c, column.declared) for c, column in zip(classes, declared, strict=True)]
        names = sqlite_types.result_names([column.name for column in declared])
        typed = sqlite_types.typed_result(sql, names, types, classes)
        with self._typed_lock:
            now = time.monotonic()
            self._typed_cache = {k: v for k, v in self._typed_cache.items() if now - v[0] < self.TYPES_REUSED_SECONDS}
            self._typed_cache[key] = (now, typed)
        return typed

    def _declared_columns(self, sql: str, placeholders: Sequence[int]) -> list[sqlite_types.DeclaredColumn] | None:
        """The result columns and their declared types, read from a temporary view of the query."""
        view = f"nexus_columns_{uuid.uuid4().hex}"
        # Not watched: this worker goes back to the pool at once, and a cancel must never kill it there.
        with watching(_unwatched), self._cursor() as cursor:
            try:
                cursor.execute(sqlite_types.view_sql(sql, view, placeholders))
                cursor.fetchall()
            except adbc_driver_manager.Error:
                return None  # not a query a view can hold (PRAGMA, EXPLAIN) or not valid SQL: run it as it is
            try:
                cursor.execute(f"SELECT name, type FROM pragma_table_info('{view}', 'temp')")
                rows = cursor.fetchall()
            except adbc_driver_manager.Error:
                return None  # the view does not bind (an unknown table): running the query says why
            finally:
                cursor.execute(f'DROP VIEW temp."{view}"')
                cursor.fetchall()  # read to its end: a worker left mid-result is stopped
        return [sqlite_types.DeclaredColumn(name, declared or "") for name, declared in rows]

    def _storage_classes(
        self,
        sql: str,
        width: int,
        parameters: Sequence[Sequence[Any]] | None,
        limits: QueryLimits,
        started: Callable[[Execution], None],
        planning: bool,
    ) -> list[set[str]]:
        """The storage classes each column holds over the whole result (an aggregate pass; no rows kept)."""
        scan = sqlite_types.scan_sql(sql, width)
        # Described up front, the scan starts on the first read, after ``started`` made it reachable by cancel.
        execution = self._stream(scan, parameters, limits, described=sqlite_types.scan_schema(width),
                                 planning=planning)
        started(execution)
        try:
            rows = [tuple(row.values()) for row in execution.reader.read_all().to_pylist()]
        finally:
            execution.close()
        return sqlite_types.classes_of(rows, width)

    # -- metadata --------------------------------------------------------------------------------------------

    def list_schemas(self) -> list[str]:
        """SQLite has one schema per file: ``main``."""
        return [_SCHEMA]

    def list_tables(self, db_schema: str | None = None) -> list[TableInfo]:
        """Tables and views of the file."""
        if db_schema not in (None, _SCHEMA):
            return []
        rows = self._rows(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        )
        return [TableInfo(_SCHEMA, name, "VIEW" if kind == "view" else "TABLE") for name, kind in rows]

    def view_definition(self, db_schema: str, view: str) -> str | None:
        """The query of a view of the file, cut from the ``CREATE VIEW`` statement ``sqlite_master`` keeps."""
        if db_schema != _SCHEMA:
            return None
        rows = self._rows("SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?", (view,))
        return query_of_create_view(rows[0][0], self.dialect) if len(rows) == 1 and rows[0][0] else None

    def table_lineage(self) -> TableLineage:
        """Virtual tables and the shadow tables that keep their data: rows that are not their own, to policies.

        An FTS5 table with ``content='staff'`` reads ``staff``'s rows and its shadow tables keep what it indexed of
        them; an extension's virtual table may read anything. ``sqlite_master`` lists them all as tables,
        ``pragma_table_list`` tells them apart.
        """
        rows = self._rows(
            "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type IN ('virtual', 'shadow') ORDER BY 1"
        )
        return TableLineage(foreign=tuple((_SCHEMA, name) for (name,) in rows))

    def _require_table(self, table: str) -> None:
        if not self._rows(
            "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?", (table,)
        ):
            raise NotFoundError(f"table {_SCHEMA}.{table} not found", source=self.name)

    def table_schema(self, db_schema: str, table: str) -> pa.Schema:
        """The columns as declared (``pragma_table_info``), typed by their declared types: no row is read.

        A query of the table returns these types while its values fit them (``sqlite_types``). An INTEGER
        PRIMARY KEY is the rowid, which is never NULL.
        """
        self._require_table(table)
        columns = self._rows('SELECT name, type, "notnull", pk FROM pragma_table_info(?)', (table,))
        rowid = [name for name, declared, _, pk in columns if pk == 1 and declared.upper() == "INTEGER"]
        rowid = rowid if sum(1 for column in columns if column[3]) == 1 else []
        return pa.schema(
            [
                catalog_column(
                    pa.field(name, sqlite_types.declared_type(declared)),
                    declared or None,
                    not (notnull or name in rowid),
                )
                for name, declared, notnull, _ in columns
            ]
        )

    def primary_keys(self, db_schema: str | None, table: str) -> list[KeyColumn]:
        """Primary-key columns from ``pragma_table_info``."""
        rows = self._rows("SELECT name, pk FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk", (table,))
        return [KeyColumn(_SCHEMA, table, name, int(pk), None) for name, pk in rows]

    def foreign_keys(self, db_schema: str | None = None, table: str | None = None) -> list[ForeignKeyColumn]:
        """Foreign keys from ``pragma_foreign_key_list``, filtered to ``table`` on either side."""
        rows = self._rows(
            'SELECT m.name, f.id, f.seq, f."table", f."from", f."to", f.on_update, f.on_delete '
            "FROM sqlite_master m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table' ORDER BY 1, 2, 3"
        )
        result = []
        for child, fk_id, seq, parent, from_col, to_col, on_update, on_delete in rows:
            if table is not None and table not in (child, parent):
                continue
            if to_col is None:  # references the parent's primary key implicitly
                keys = self.primary_keys(_SCHEMA, parent)
                to_col = keys[seq].column if seq < len(keys) else from_col
            result.append(
                ForeignKeyColumn(
                    pk=KeyColumn(_SCHEMA, parent, to_col, int(seq) + 1, None),
                    fk=KeyColumn(_SCHEMA, child, from_col, int(seq) + 1, f"fk_{child}_{fk_id}"),
                    update_rule=FK_RULE_CODES.get(on_update, 3),
                    delete_rule=FK_RULE_CODES.get(on_delete, 3),
                )
            )
        return result

    def ping(self) -> None:
        """Read the schema table."""
        self._rows("SELECT count(*) FROM sqlite_master")


class _TypedExecution(Execution):
    """A SQLite query that first reads its columns' types, then its rows: cancel reaches whichever runs."""

    def __init__(self, start: Callable[[Callable[[Execution], None]], Execution]) -> None:
        self._start = start
        self._lock = threading.Lock()
        self._running: Execution | None = None
        self._stream: Execution | None = None
        self._worker = None
        self._cancelled = False

    @property
    def reader(self) -> pa.RecordBatchReader:
        """The result stream; the first access reads the types and starts the rows."""
        if self._stream is None:
            if self._cancelled:
                raise QueryCancelledError("[sqlite] the query was cancelled")
            try:
                # A statement that blocks before its execution is returned is reached through its worker.
                with watching(self._sent_to):
                    self._stream = self._start(self._started)
            except GatewayError:
                if self._cancelled:
                    raise QueryCancelledError("[sqlite] the query was cancelled") from None
                raise
        return self._stream.reader

    def _sent_to(self, worker) -> None:
        with self._lock:
            self._worker = worker
            cancelled = self._cancelled
        if cancelled:
            worker.kill()

    def _started(self, execution: Execution) -> None:
        with self._lock:
            previous, self._running = self._running, execution
            cancelled = self._cancelled
        if previous is not None and previous is not execution:
            previous.close()
        if cancelled:
            execution.cancel()

    def cancel(self) -> None:
        """Stop the type pass or the rows, whichever runs (killing the worker a statement blocks in)."""
        with self._lock:
            self._cancelled = True
            running, worker = self._running, self._worker
        if running is not None:
            running.cancel()
        elif worker is not None:
            worker.kill()

    def close(self) -> None:
        """Release the running execution."""
        with self._lock:
            running = self._running
        if running is not None:
            running.close()
