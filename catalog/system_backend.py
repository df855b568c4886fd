"""The read-only ``system`` catalog as a backend: the catalog's own tables, queryable with SQL.

Each query gets a private in-memory DuckDB with fresh Arrow snapshots of ``query_history``, ``sources``
(redacted) and ``schema_versions`` registered in schema ``main``; external access is switched off and the
configuration locked before the query runs, so the SQL can read those tables and nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from backends.base import (
    Backend,
    Capabilities,
    Execution,
    QueryLimits,
    ReaderExecution,
    SourceSpec,
    TableInfo,
)
from backends.errors import BackendError, InvalidQueryError, NotFoundError
from catalog.store import CatalogStore
from catalog.system_tables import SYSTEM_SCHEMAS, SYSTEM_TABLES

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

    def __init__(self, store: CatalogStore, before_read: Callable[[], object] | None = None) -> None:
        super().__init__(SourceSpec(name=SYSTEM_CATALOG, kind="system"))
        self.store = store
        self._before_read = before_read

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self._before_read is not None:
            self._before_read()  # queries that already ended are in the history this query reads
        con = duckdb.connect(
            ":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        for name, build in SYSTEM_TABLES.items():
            con.register(name, build(self.store))
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con

    def get_schema(self, sql: str, parameter_count: int = 0) -> pa.Schema:
        """Plan the query under ``LIMIT 0`` and return its result schema."""
        con = self._connect()
        try:
            with _map_errors():
                query = f"SELECT * FROM ({sql.strip().rstrip(';')}) AS q LIMIT 0"
                return con.execute(query, [None] * parameter_count).to_arrow_table().schema
        finally:
            con.close()

    def execute(self, sql: str, parameters: Sequence[Sequence[Any]] | None, limits: QueryLimits) -> Execution:
        """Run the query over fresh snapshots; parameter rows run one after another and are concatenated."""
        con = self._connect()
        try:
            with _map_errors():
                if not parameters or len(parameters) == 1:
                    reader = con.execute(sql, list(parameters[0]) if parameters else []).to_arrow_reader(
                        limits.batch_rows
                    )
                else:
                    tables = [con.execute(sql, list(row)).to_arrow_table() for row in parameters]
                    reader = pa.concat_tables(tables).to_reader(limits.batch_rows)
        except BaseException:
            con.close()
            raise
        return ReaderExecution(reader, cancel=con.interrupt, close=con.close)

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
def _map_errors():
    try:
        yield
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
        from backends.errors import ReadOnlyViolationError

        raise ReadOnlyViolationError(
            f"[system] {str(exc).strip().splitlines()[0]}", source=SYSTEM_CATALOG
        ) from None
    except duckdb.Error as exc:
        raise BackendError(f"[system] {str(exc).strip().splitlines()[0]}", source=SYSTEM_CATALOG) from None
