"""The read-only ``system`` catalog as a backend: the catalog's own tables, queryable with SQL.

Each query gets a private in-memory DuckDB with fresh Arrow snapshots of ``query_history``, ``sources``
(redacted) and ``schema_versions`` registered in schema ``main``; external access is switched off, the memory
limit set (the server's, not DuckDB's default of most of the machine) and the configuration locked before the
query runs, so the SQL can read those tables and nothing else. Planning and execution run under the server's
time limit, like every other source's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from nexus_flight.backends.base import Backend, Capabilities, Execution, TableInfo
from nexus_flight.backends.duckdb import DuckDBExecution, limit_zero
from nexus_flight.backends.limits import planning_limits, timeout_error
from nexus_flight.backends.watchdog import WATCHDOG
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.system_tables import SYSTEM_SCHEMAS, SYSTEM_TABLES
from nexus_flight.core.errors import (
    BackendError,
    InvalidQueryError,
    LimitExceededError,
    NotFoundError,
    QueryCancelledError,
)
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.source import QueryLimits, SourceSpec

SYSTEM_CATALOG = "system"
SYSTEM_SCHEMA = "main"


class SystemBackend(Backend):
    """Serves the ``system`` catalog from the catalog store."""

    kind = "system"
    dialect = "duckdb"
    engine_parser = "duckdb"
    capabilities = Capabilities(parameters=True, cancel=True, keys=False, schema_without_execution=True)
    read_only_guard = (
        "private in-memory DuckDB per query over Arrow snapshots; external access off, config locked"
    )

    def __init__(
        self,
        store: CatalogStore,
        before_read: Callable[[], object] | None = None,
        memory_limit: str = "2GB",
    ) -> None:
        super().__init__(SourceSpec(name=SYSTEM_CATALOG, kind="system"))
        self.store = store
        self._before_read = before_read
        self._memory_limit = memory_limit

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self._before_read is not None:
            self._before_read()  # queries that already ended are in the history this query reads
        con = duckdb.connect(
            ":memory:",
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "memory_limit": self._memory_limit,
            },
        )
        for name, build in SYSTEM_TABLES.items():
            con.register(name, build(self.store))
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con

    def get_schema(self, plan: QueryPlan) -> pa.Schema:
        """Plan the query under ``LIMIT 0`` (never run) and return its result schema."""
        sql, parameter_count = plan.sql, plan.parameter_count
        limits = planning_limits()
        con = self._connect()
        deadline = WATCHDOG.schedule(limits.timeout_seconds, con.interrupt)
        try:
            with _map_errors(deadline, limits, "planning"):
                return con.execute(limit_zero(sql), [None] * parameter_count).to_arrow_table().schema
        finally:
            deadline.cancel()
            con.close()

    def execute(self, plan: QueryPlan, parameters: Sequence[Sequence[Any]] | None, limits: QueryLimits) -> Execution:
        """Run the query over fresh snapshots; parameter rows run one after another and are concatenated.

        A cancel (a client's, or the server's time limit) interrupts DuckDB.
        """
        sql = plan.sql
        con = self._connect()

        def start(cursor: duckdb.DuckDBPyConnection) -> pa.RecordBatchReader:
            with _map_errors(None, limits):
                if not parameters or len(parameters) == 1:
                    return cursor.execute(sql, list(parameters[0]) if parameters else []).to_arrow_reader(
                        limits.batch_rows
                    )
                tables = [cursor.execute(sql, list(row)).to_arrow_table() for row in parameters]
                return pa.concat_tables(tables).to_reader(limits.batch_rows)

        # Started on the first read, so that a cancel (or the server's time limit) reaches the running query.
        return DuckDBExecution(con, start)

    def list_schemas(self) -> list[str]:
        """Return the one schema, ``main``."""
        return [SYSTEM_SCHEMA]

    def list_tables(self, db_schema: str | None = None) -> list[TableInfo]:
        """Return the system tables."""
        if db_schema not in (None, SYSTEM_SCHEMA):
            return []
        return [TableInfo(SYSTEM_SCHEMA, name, "TABLE") for name in sorted(SYSTEM_SCHEMAS)]

    def table_schema(self, db_schema: str, table: str) -> pa.Schema:
        """Return the fixed schema of a system table.

        Raises:
            NotFoundError: no such system table.

        """
        if db_schema != SYSTEM_SCHEMA or table not in SYSTEM_SCHEMAS:
            raise NotFoundError(f"no table {db_schema}.{table} in the system catalog", source=SYSTEM_CATALOG)
        return SYSTEM_SCHEMAS[table]

    def ping(self) -> None:
        """Check that the catalog store answers."""
        self.store.list_sources()


@contextlib.contextmanager
def _map_errors(deadline=None, limits: QueryLimits | None = None, step: str = "query"):
    try:
        yield
    except duckdb.InterruptException:
        if deadline is not None and deadline.fired:
            raise timeout_error(limits.timeout_seconds, SYSTEM_CATALOG, step) from None
        raise QueryCancelledError("[system] query interrupted", source=SYSTEM_CATALOG) from None
    except duckdb.OutOfMemoryException as exc:
        text = str(exc).strip().splitlines()[0]
        message = f"[system] {text}: the query needs more than the memory limit"
        raise LimitExceededError(message, source=SYSTEM_CATALOG) from None
    except (
        duckdb.ParserException,
        duckdb.BinderException,
        duckdb.CatalogException,
        duckdb.InvalidInputException,
        duckdb.ConversionException,
    ) as exc:
        raise InvalidQueryError(
            f"[system] {str(exc).strip().splitlines()[0]}", source=SYSTEM_CATALOG
        ) from None
    except duckdb.PermissionException as exc:
        from nexus_flight.core.errors import ReadOnlyViolationError

        raise ReadOnlyViolationError(
            f"[system] {str(exc).strip().splitlines()[0]}", source=SYSTEM_CATALOG
        ) from None
    except duckdb.Error as exc:
        raise BackendError(f"[system] {str(exc).strip().splitlines()[0]}", source=SYSTEM_CATALOG) from None
