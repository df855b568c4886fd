"""What the file and lake-format backends share: tables bound to DuckDB as Arrow datasets, per query.

Route chosen by measurement (``benchmarks/lake_bench.py``): the data is read by pyarrow (``pyarrow.fs`` file
systems, deltalake's and hudi's file lists, pyiceberg's scan plan) and handed to DuckDB zero-copy as
``pyarrow.dataset`` objects, which DuckDB scans with projection and filter pushdown. DuckDB itself runs on an
empty database file opened read-only, keeps ``enable_external_access=false`` with no allowed directory at all
and has its configuration locked, so SQL that slipped past the validator can neither create anything nor read
or write any file or bucket (DuckDB's own readers would need ``allowed_directories``, which also lets
``COPY ... TO`` write there).

A lake adapter is a ``DuckDBEngine`` on that empty database plus a ``TableBinder``: each query gets its own
cursor, and the binder resolves the tables the query names (latest snapshot, or the one asked for with
``"orders@v3"``) and registers them on that cursor only, so concurrent queries never see each other's bindings
and a query always reads one consistent snapshot per table. A table's configuration can pin a state
(``version`` or ``as_of``). The version each query read is reported on the execution as ``read_versions``
(``{table: version}``) for query history, and by ``last_snapshot(table)``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import duckdb
import pyarrow as pa

from nexus_flight.backends.base import Backend, Capabilities, Execution, TableInfo, catalog_column, parameter_schema
from nexus_flight.backends.duckdb_engine import DuckDBEngine
from nexus_flight.backends.engine_messages import first_line, scrub
from nexus_flight.backends.object_store import secrets_of
from nexus_flight.backends.options.lake import LakeSourceConfig
from nexus_flight.backends.parameter_types import infer_parameter_types
from nexus_flight.backends.source_config import source_config
from nexus_flight.backends.table_binder import Binding, BoundTables, TableBinder, TimeTravel, pinned
from nexus_flight.core.errors import (
    BackendUnavailableError,
    GatewayError,
    NotFoundError,
)
from nexus_flight.core.plan import QueryPlan, TableRef
from nexus_flight.core.source import QueryLimits, SourceSpec

#: Field-metadata key marking a partition column in ``table_schema`` (value ``b"true"``).
PARTITION_KEY = b"nexus.partition_key"

#: Every table of a lake source lives in this schema (DuckDB registers Arrow objects there).
SCHEMA = "main"

#: Client-library exceptions (deltalake, pyiceberg, hudi) that mean "no such table", by class name.
_NOT_FOUND_ERRORS = frozenset({"TableNotFoundError", "NoSuchTableError", "NoSuchNamespaceError"})


class LakeBackend(Backend):
    """Base of the file and lake-format backends: configured tables, resolved and bound per query.

    Subclasses set ``config_model`` (whose ``tables`` each have a ``name``) and implement ``_resolve``;
    versioned formats read their partition keys in ``_partition_keys``.
    """

    dialect = "duckdb"
    engine_parser = "duckdb"
    reads_plan_tree = True  # each query binds the configured tables it reads
    default_schema = SCHEMA
    capabilities = Capabilities(parameters=True, cancel=True, keys=False, schema_without_execution=True)
    read_only_guard = (
        "data read through pyarrow/deltalake/pyiceberg/hudi with read-only calls only; DuckDB runs on an empty "
        "database opened read_only, enable_external_access=false with no allowed directory, no extension "
        "loaded, configuration locked"
    )
    #: Family label used in messages, e.g. ``[delta]``.
    label: ClassVar[str] = "lake"

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self.config = self._validate(spec)
        self._tables = {t.name: t for t in self.config.tables}
        self._secrets = secrets_of(self.config)
        self._binder = TableBinder(spec.name, self.label, list(self._tables), self._load_table)
        self._engine = DuckDBEngine.empty(
            spec.name,
            memory_limit=self.config.memory_limit,
            threads=self.config.threads,
            temp_directory=self.config.temp_directory,
        )
        self._versions_lock = threading.Lock()
        self._last_versions: dict[str, str | None] = {}

    @classmethod
    def _validate(cls, spec: SourceSpec) -> LakeSourceConfig:
        """Options and secrets, merged flat, checked against the family's model."""
        assert cls.config_model is not None
        return source_config(cls.config_model, spec)

    # -- what subclasses provide -----------------------------------------------------------------------

    def _resolve(self, table: str, travel: TimeTravel | None) -> Binding:
        """Load ``table`` at ``travel`` (None: the configured default) as something DuckDB scans."""
        raise NotImplementedError

    def _partition_keys(self, table: str) -> list[str]:
        """Read a configured table's partition keys from its format's metadata (none unless overridden)."""
        return []

    # -- configured tables -----------------------------------------------------------------------------

    def _table_names(self) -> list[str]:
        """Return the configured table names, in order."""
        return list(self._tables)

    def _travel(self, table: str, travel: TimeTravel | None) -> TimeTravel:
        """Return the state to read: the one the query asks for, else the one the table's configuration pins."""
        if travel is not None:
            return travel
        config = self._tables[table]
        return pinned(config.version, config.as_of)

    # -- binding ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, table: str | None = None) -> Iterator[None]:
        """Map client-library failures (pyarrow, deltalake, pyiceberg, hudi) to the error tree, scrubbed."""
        try:
            yield
        except GatewayError:
            raise
        except FileNotFoundError as exc:
            raise NotFoundError(self._message(exc, table, "not found"), source=self.name) from None
        except Exception as exc:  # noqa: BLE001 - every library has its own tree; none may escape unmapped
            if type(exc).__name__ in _NOT_FOUND_ERRORS:
                raise NotFoundError(self._message(exc, table, "not found"), source=self.name) from None
            raise BackendUnavailableError(self._message(exc, table), source=self.name) from None

    def _message(self, exc: BaseException, table: str | None, what: str = "cannot be read") -> str:
        text = scrub(first_line(exc), self._secrets)
        where = f"table {table!r} " if table else ""
        return f"[{self.label}] {text} ({where}{what})"

    def _load_table(self, table: str, travel: TimeTravel | None) -> Binding:
        """Resolve one configured table for the binder, the client library's errors mapped."""
        with self._errors(table):
            return self._resolve(table, travel)

    def _bind(self, name: str) -> Binding:
        """Resolve the table a name as written means (``"orders"``, ``"orders@v3"``), without a query."""
        return self._binder.resolve(name)

    def _referenced(self, tables: Sequence[TableRef] | None) -> list[str]:
        """Return the configured tables (with or without ``@``) among ``tables``; None: every configured table.

        The tables come from the query's plan (``QueryPlan.tables``: CTEs and subqueries resolved); a plan
        sqlglot could not read (only with the validator off) binds every configured table.
        """
        names = self._table_names()
        if tables is None:
            return names
        found = []
        for table in tables:
            if table.name not in found and self._binder.split(table.name)[0] in names:
                found.append(table.name)
        return found

    def _bound_cursor(
        self, tables: Sequence[TableRef] | None, memory_limit: str | None = None
    ) -> tuple[duckdb.DuckDBPyConnection, BoundTables]:
        """Return a fresh cursor with each of ``tables`` that is configured bound to it, and what was bound.

        With ``memory_limit``, the cursor is a query's own (``DuckDBEngine.query_cursor``).
        """
        names = self._referenced(tables)
        cursor = self._engine.cursor() if memory_limit is None else self._engine.query_cursor(memory_limit)
        try:
            with self._engine.errors():
                bound = self._binder.bind(cursor, names)
        except BaseException:
            self._engine.close_cursor(cursor)
            raise
        with self._versions_lock:
            self._last_versions.update(bound.by_name)
        return cursor, bound

    # -- queries ---------------------------------------------------------------------------------------

    def get_schema(self, plan: QueryPlan) -> pa.Schema:
        """Return the result schema from DuckDB's binder, the query's tables bound, without running it."""
        cursor, _ = self._bound_cursor(_tables(plan))
        return self._engine.schema_of(plan.sql, plan.parameter_count, cursor)

    def get_parameter_schema(self, plan: QueryPlan) -> pa.Schema:
        """Infer each parameter's type from what it is compared with; fall back to utf8 (DuckDB casts it)."""
        tables = _tables(plan)
        return parameter_schema(infer_parameter_types(plan, lambda probe: self._expression_types(probe, tables)))

    def _expression_types(self, probe: str, tables: Sequence[TableRef] | None) -> pa.Schema | None:
        cursor, _ = self._bound_cursor(tables)
        return self._engine.expression_types(probe, cursor)

    def execute(
        self,
        plan: QueryPlan,
        parameters: Sequence[Sequence[Any]] | None,
        limits: QueryLimits,
    ) -> Execution:
        """Run ``plan``; the execution's ``read_versions`` maps each table it read to the version read."""
        cursor, bound = self._bound_cursor(_tables(plan), self._engine.query_memory(limits))
        execution = self._engine.execute(plan.sql, parameters, limits, cursor)
        execution.read_versions = bound.read_versions
        return execution

    def last_snapshot(self, table: str) -> str | None:
        """Return the version or snapshot id the last query of ``table`` read (None: not yet read)."""
        with self._versions_lock:
            return self._last_versions.get(table)

    # -- metadata --------------------------------------------------------------------------------------

    def list_schemas(self) -> list[str]:
        """Lake sources have one schema."""
        return [SCHEMA]

    def list_tables(self, db_schema: str | None = None) -> list[TableInfo]:
        """Return the configured tables."""
        if db_schema not in (None, SCHEMA):
            return []
        return [TableInfo(SCHEMA, name) for name in self._table_names()]

    def table_schema(self, db_schema: str, table: str) -> pa.Schema:
        """Return the table's columns (partition columns included) as queries see them."""
        if db_schema != SCHEMA:
            raise NotFoundError(f"[{self.label}] schema {db_schema!r} not found", source=self.name)
        base = self._binder.split(table)[0]
        if base not in self._table_names():
            raise NotFoundError(f"[{self.label}] table {table!r} not found", source=self.name)
        # Through DuckDB, so the types are exactly those a query of the table returns; nullability is the table's.
        cursor, _ = self._bound_cursor([TableRef(table)])
        schema = self._engine.schema_of('SELECT * FROM "{}"'.format(table.replace('"', '""')), 0, cursor)
        with self._errors(base):
            stored = getattr(self._bind(table).data, "schema", None)
        nullable = {f.name: f.nullable for f in stored} if stored is not None else {}
        schema = pa.schema([catalog_column(f, None, nullable.get(f.name, True)) for f in schema])
        keys = set(self.partition_columns(base))
        if not keys:
            return schema
        # Flight SQL has no place for partition keys; clients reading the schema find them in field metadata.
        fields = [
            f.with_metadata({**(f.metadata or {}), PARTITION_KEY: b"true"}) if f.name in keys else f for f in schema
        ]
        return pa.schema(fields, metadata=schema.metadata)

    def partition_columns(self, table: str) -> list[str]:
        """Return the table's partition keys (empty when unpartitioned or not configured)."""
        if table not in self._tables:
            return []
        with self._errors(table):
            return self._partition_keys(table)

    def close(self) -> None:
        """Close DuckDB and remove its empty database file."""
        self._engine.close()

    def ping(self) -> None:
        """Every configured table resolves."""
        for name in self._table_names():
            self._bind(name)


def _tables(plan: QueryPlan) -> Sequence[TableRef] | None:
    """The tables a query reads, for its cursor to bind; None when sqlglot could not read it (all of them)."""
    return plan.tables if plan.query is not None else None
