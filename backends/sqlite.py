"""SQLite database files as read-only sources, over adbc-driver-sqlite.

The file is opened with the URI ``file:...?mode=ro``: SQLite refuses every write to it ("attempt to write a
readonly database"). Read-only mode does not stop statements that touch *other* files: ``ATTACH`` creates the
file it names and ``VACUUM INTO`` writes a copy, so this backend refuses ATTACH, DETACH, VACUUM and PRAGMA
assignments itself, before SQLite sees them.

SQLite is dynamically typed: the driver infers each result column's Arrow type from the values of the first
batch (INTEGER → int64, REAL → float64, TEXT → utf8, BLOB → binary, NULL-only columns → int64). Declared types
such as NUMERIC or DATE do not change this. The result schema therefore needs an execution up to the first batch.

The driver cannot interrupt a statement, so each pooled connection lives in a worker process
(``sqlite_worker.py``): cancel and the server's time limit kill it, also while planning reads the first batch.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import adbc_driver_manager
import pyarrow as pa
import sqlglot
from pydantic import BaseModel, ConfigDict, Field
from sqlglot.tokens import TokenType

from backends.adbc_backend import AdbcBackend
from backends.base import (
    FK_RULE_CODES,
    Capabilities,
    Execution,
    ForeignKeyColumn,
    KeyColumn,
    QueryLimits,
    SourceSpec,
    TableInfo,
    parameter_schema,
)
from backends.errors import (
    BackendError,
    BackendUnavailableError,
    GatewayError,
    InvalidQueryError,
    NotFoundError,
    QueryCancelledError,
    ReadOnlyViolationError,
)
from backends.limits import planning_limits
from backends.sqlite_worker import WorkerConnection, watching

_SCHEMA = "main"


class SQLiteConfig(BaseModel):
    """Options of a SQLite source (it has no secrets)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    pool_size: int = Field(4, ge=1)
    busy_timeout_seconds: float = Field(5.0, ge=0)


def _first_keyword(sql: str) -> str:
    try:
        tokens = [t for t in sqlglot.tokenize(sql, read="sqlite") if t.token_type != TokenType.SEMICOLON]
    except sqlglot.errors.SqlglotError:
        return ""
    return tokens[0].text.upper() if tokens else ""


_FORBIDDEN = {"ATTACH", "DETACH", "VACUUM"}
_PRAGMA_ASSIGNMENT = re.compile(r"^\s*PRAGMA\s+[\w.]+\s*(=|\()", re.IGNORECASE)


class SQLiteBackend(AdbcBackend):
    """A SQLite file, opened read-only."""

    kind = "sqlite"
    dialect = "sqlite"
    #: Cancel and deadlines kill the connection's worker process (the driver itself cannot interrupt).
    capabilities = Capabilities(parameters=True, cancel=True, keys=True, schema_without_execution=False)
    read_only_guard = (
        "the file is opened with mode=ro (SQLite refuses writes); ATTACH, DETACH, VACUUM and PRAGMA "
        "assignments, "
        "which could create or change other files, are refused before they reach SQLite"
    )
    config_model = SQLiteConfig
    config: SQLiteConfig
    title = "SQLite"

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        path = Path(self.config.path)
        if not path.is_file():
            raise BackendUnavailableError(f"[sqlite] database file not found: {path.name}", source=spec.name)
        self._uri = f"{path.resolve().as_uri()}?mode=ro"

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
        if isinstance(exc, adbc_driver_manager.ProgrammingError) or "syntax error" in text:
            return InvalidQueryError(message, source=self.name)
        if "unable to open" in text or "disk I/O" in text:
            return BackendUnavailableError(message, source=self.name)
        return BackendError(message, source=self.name)

    def _open(self):
        return WorkerConnection(self._uri, int(self.config.busy_timeout_seconds * 1000))

    def _guard(self, sql: str) -> str:
        keyword = _first_keyword(sql)
        if keyword in _FORBIDDEN or _PRAGMA_ASSIGNMENT.match(sql):
            raise ReadOnlyViolationError(
                f"[sqlite] {keyword or 'PRAGMA'} is not allowed: this source is read-only", source=self.name
            )
        return re.sub(r"[\s;]+$", "", sql)

    # -- queries ---------------------------------------------------------------------------------------------

    def get_schema(self, sql: str, parameter_count: int = 0) -> pa.Schema:
        """Run the query for its first batch: SQLite types come from values, not from the plan.

        Columns without a value to infer from (no rows, or only NULLs, as when placeholders are bound to NULL)
        are declared utf8, the type every SQLite value converts to.
        """
        limits = QueryLimits(timeout_seconds=planning_limits().timeout_seconds)  # killed at the server's limit
        execution = self.execute(sql, [[None] * parameter_count] if parameter_count else None, limits)
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

    def get_parameter_schema(self, sql: str, parameter_count: int) -> pa.Schema:
        """Infer each placeholder's type from what it is compared with (utf8 otherwise; SQLite converts)."""
        from backends.parameter_types import infer_parameter_types

        types = infer_parameter_types(sql, parameter_count, self._probe, dialect="sqlite")
        return parameter_schema(types)

    def _probe(self, sql: str) -> pa.Schema | None:
        try:
            return self.get_schema(sql + " LIMIT 1")
        except GatewayError:
            return None

    def execute(self, sql: str, parameters: Sequence[Sequence[Any]] | None, limits: QueryLimits) -> Execution:
        """Stream the query from a pooled read-only connection; it starts when the reader is first read."""
        batch_rows = {"adbc.sqlite.query.batch_rows": str(limits.batch_rows)}
        statement = self._guard(sql)
        return _StartsOnRead(lambda: self._stream(statement, parameters, limits, statement_options=batch_rows))

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

    def _require_table(self, table: str) -> None:
        if not self._rows(
            "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?", (table,)
        ):
            raise NotFoundError(f"table {_SCHEMA}.{table} not found", source=self.name)

    def table_schema(self, db_schema: str, table: str) -> pa.Schema:
        """Return the Arrow schema a ``SELECT *`` of the table returns."""
        self._require_table(table)
        return self.get_schema(f'SELECT * FROM "{table.replace(chr(34), chr(34) * 2)}"')

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


class _StartsOnRead(Execution):
    """A SQLite execution that starts on first read, so that a cancel reaches it while SQLite computes.

    SQLite's result types come from its first batch, so the driver's execution blocks until that batch
    exists (an aggregation: the whole query). Starting on first read lets the gateway register the execution
    before that; a cancel meanwhile kills the worker the statement went to.
    """

    def __init__(self, start) -> None:
        self._start = start
        self._inner: Execution | None = None
        self._worker = None
        self._cancelled = False
        self._lock = threading.Lock()

    @property
    def reader(self) -> pa.RecordBatchReader:
        """The result stream (started on first access)."""
        if self._inner is None:
            if self._cancelled:
                raise QueryCancelledError("[sqlite] the query was cancelled")
            try:
                with watching(self._sent_to):
                    self._inner = self._start()
            except GatewayError:
                if self._cancelled:
                    raise QueryCancelledError("[sqlite] the query was cancelled") from None
                raise
        return self._inner.reader

    def _sent_to(self, worker) -> None:
        with self._lock:
            self._worker = worker
            cancelled = self._cancelled
        if cancelled:
            worker.kill()

    def cancel(self) -> None:
        """Stop the statement: through the running execution, or by killing the worker it went to."""
        with self._lock:
            self._cancelled = True
            inner, worker = self._inner, self._worker
        if inner is not None:
            inner.cancel()
        elif worker is not None:
            worker.kill()

    def close(self) -> None:
        """Release the connection (cancelling what still runs)."""
        if self._inner is not None:
            self._inner.close()
