"""The read-only ``system`` catalog as a backend: the catalog's own tables, queryable with SQL.

The engine is a ``DuckDBEngine`` on an empty database opened read-only, with external access switched off, the
memory limit set (the server's, not DuckDB's default of most of the machine) and the configuration locked. Each
query gets a cursor of its own with fresh Arrow snapshots of ``query_history``, ``sources`` (redacted) and
``schema_versions`` registered on it, so the SQL can read those tables and nothing else. Planning and execution
run under the server's time limit, like every other source's.

For a signed-in user who is no admin (``core/reading.py``: the query service says whose query it runs), the
snapshots hold only that user's own history rows and no row of the tables only admins may read, whatever the
SQL says: the grants let such a user name ``query_history`` alone, and this is the second wall behind them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from nexus_flight.backends.base import Backend, Capabilities, Execution, TableInfo
from nexus_flight.backends.duckdb_engine import DuckDBEngine
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.system_pushdown import Narrowing, pushed_down
from nexus_flight.catalog.system_tables import LOG_TABLES, OWN_ROWS, SYSTEM_SCHEMAS, SYSTEM_TABLES, LogTable
from nexus_flight.core.errors import LimitExceededError, NotFoundError
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.reading import reading_user
from nexus_flight.core.source import QueryLimits, SourceSpec

SYSTEM_CATALOG = "system"
SYSTEM_SCHEMA = "main"
#: The most rows of the history or the audit trail one query may read (``[server] system_table_rows``).
DEFAULT_MAX_LOG_ROWS = 1_000_000


class SystemBackend(Backend):
    """Serves the ``system`` catalog from the catalog store."""

    kind = "system"
    dialect = "duckdb"
    engine_parser = "duckdb"
    capabilities = Capabilities(parameters=True, cancel=True, keys=False, schema_without_execution=True)
    read_only_guard = (
        "empty DuckDB database opened read_only, Arrow snapshots bound per query cursor; external access off, "
        "config locked"
    )

    def __init__(
        self,
        store: CatalogStore,
        before_read: Callable[[], object] | None = None,
        memory_limit: str = "2GB",
        max_log_rows: int | None = DEFAULT_MAX_LOG_ROWS,
    ) -> None:
        super().__init__(SourceSpec(name=SYSTEM_CATALOG, kind="system"))
        self.store = store
        self._before_read = before_read
        self.max_log_rows = max_log_rows
        self._engine = DuckDBEngine.empty(SYSTEM_CATALOG, memory_limit=memory_limit, label="system")

    def _cursor(self, plan: QueryPlan, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
        """Return a fresh cursor (a query's own with ``memory_limit``) with the snapshots ``plan`` reads.

        Only the tables the statement names (DuckDB's own parser says which) are read; the others are bound
        empty. The history and the audit trail are read as far as the statement's WHERE allows
        (``system_pushdown``), and refused past ``max_log_rows``.
        """
        cursor = self._engine.cursor() if memory_limit is None else self._engine.query_cursor(memory_limit)
        try:
            user = reading_user()
            with self._engine.errors():
                named = self._named(cursor, plan.sql)
                if named & set(LOG_TABLES) and self._before_read is not None:
                    self._before_read()  # queries that already ended are in the history this query reads
                narrowed = pushed_down(plan.tree, {n: t.table for n, t in LOG_TABLES.items() if n in named},
                                       lambda expression: _timestamp(cursor, expression))
                for name, schema in SYSTEM_SCHEMAS.items():
                    if name not in named or (user is not None and name not in OWN_ROWS):
                        table = schema.empty_table()
                    elif name in LOG_TABLES:
                        log = LOG_TABLES[name]
                        table = self._read_log(name, log, narrowed.get(name, Narrowing()), user)
                    else:
                        table = SYSTEM_TABLES[name](self.store)
                    cursor.register(name, table)
        except BaseException:
            self._engine.close_cursor(cursor)
            raise
        return cursor

    def _read_log(self, name: str, log: LogTable, narrowing: Narrowing, user: str | None) -> pa.Table:
        where = (*narrowing.conditions, *log.owned_by(user))
        if narrowing.newest is not None:
            # Only the newest rows can reach the answer: those at least as new as the last of them (ties kept).
            if narrowing.newest == 0:
                return log.schema.empty_table()
            oldest = log.newest_at(self.store, where, narrowing.newest)
            if oldest is not None:
                where = (*where, log.table.c.created_at >= oldest)
        self._check_size(name, log, where)
        return log.read(self.store, where)

    @staticmethod
    def _named(cursor: duckdb.DuckDBPyConnection, sql: str) -> set[str]:
        """The system tables ``sql`` names, by DuckDB's parser (all of them when it cannot say)."""
        try:
            return {name.rsplit(".", 1)[-1].lower() for name in cursor.get_table_names(sql)} & set(SYSTEM_SCHEMAS)
        except duckdb.Error:
            return set(SYSTEM_SCHEMAS)

    def _check_size(self, name: str, log: LogTable, where: tuple) -> None:
        if self.max_log_rows is None:
            return
        rows = log.count(self.store, where)
        if rows > self.max_log_rows:
            columns = "user_name, status or source_name" if name == "query_history" else "kind or actor"
            raise LimitExceededError(
                f"system.main.{name}: this query would read {rows:,} rows, more than the server's limit "
                f"(system_table_rows={self.max_log_rows}); narrow it in the SELECT that reads {name} alone, with "
                f"created_at >= now() - INTERVAL 1 DAY (say) or {columns} = 'a value', or use `nexus-flight history`",
                source=SYSTEM_CATALOG,
            )

    def get_schema(self, plan: QueryPlan) -> pa.Schema:
        """Return the query's result schema from DuckDB's binder over empty tables, without reading any."""
        cursor = self._engine.cursor()
        try:
            for name, schema in SYSTEM_SCHEMAS.items():
                cursor.register(name, schema.empty_table())
        except BaseException:
            self._engine.close_cursor(cursor)
            raise
        return self._engine.schema_of(plan.sql, plan.parameter_count, cursor)

    def execute(self, plan: QueryPlan, parameters: Sequence[Sequence[Any]] | None, limits: QueryLimits) -> Execution:
        """Run the query over fresh snapshots; parameter rows run one after another and are concatenated.

        A cancel (a client's, or the server's time limit, ``server/query/results.py``) interrupts DuckDB.
        """
        cursor = self._cursor(plan, self._engine.query_memory(limits))
        return self._engine.execute(plan.sql, parameters, limits, cursor)

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

    def close(self) -> None:
        """Close the engine and remove its empty database file."""
        self._engine.close()


def _timestamp(cursor: duckdb.DuckDBPyConnection, expression: str):
    """A constant expression's value as DuckDB's TIMESTAMPTZ on the query's own cursor (None if it is none)."""
    try:
        row = cursor.execute(f"SELECT CAST(({expression}) AS TIMESTAMPTZ)").fetchone()
    except duckdb.Error:
        return None
    return row[0] if row else None
