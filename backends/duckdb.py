"""DuckDB: the embedded demo and DuckDB database files, each a source of its own.

The database is a ``DuckDBEngine`` (``backends/duckdb_engine.py``): opened read-only (an in-memory demo
database prepared by its setup statements instead), with external access disabled and its configuration locked,
so that even SQL that slipped past the validator cannot write to the database, read the gateway's file system or
load code. Each query runs on its own cursor, so queries run in parallel and cancelling one stops only it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from nexus_flight.backends.base import (
    Backend,
    Capabilities,
    Execution,
    ForeignKeyColumn,
    KeyColumn,
    TableInfo,
    catalog_column,
    parameter_schema,
)
from nexus_flight.backends.duckdb_engine import DuckDBEngine, database_file_identity
from nexus_flight.backends.options.duckdb import DuckDBConfig
from nexus_flight.backends.parameter_types import infer_parameter_types
from nexus_flight.backends.source_config import source_config
from nexus_flight.backends.view_text import query_of_create_view
from nexus_flight.core.errors import NotFoundError
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.source import QueryLimits, SourceSpec

_INTERNAL_SCHEMAS = ("information_schema", "pg_catalog")


class DuckDBBackend(Backend):
    """A DuckDB database (in memory or a file), opened read-only; its options are ``DuckDBConfig``'s."""

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
        options = source_config(DuckDBConfig, spec)
        if options.path:  # a database file opened read-only: DuckDB's lock keeps writers out while it is open
            self.capabilities = dataclasses.replace(self.capabilities, stable_schemas=True)
        self._engine = DuckDBEngine(
            spec.name,
            options.path or ":memory:",
            memory_limit=options.memory_limit,
            threads=options.threads,
            temp_directory=options.temp_directory,
            setup_sql=options.setup_sql,
        )

    @classmethod
    def content_identity(cls, options: Mapping[str, Any]) -> Hashable | None:
        """The database file's device, inode, modification time and size.

        The open file's lock keeps writers out, so a pipeline updates it by writing a new file and renaming it over
        the path; the gateway's open instance would read the old file (its inode) for good. A new identity makes
        the gateway open the new file for the queries that start from then on.
        """
        return database_file_identity(options.get("path"))

    # -- queries -------------------------------------------------------------------------------------------

    def get_schema(self, plan: QueryPlan) -> pa.Schema:
        """Return the result schema from DuckDB's binder, without running the query (``DuckDBEngine.schema_of``)."""
        return self._engine.schema_of(plan.sql, plan.parameter_count)

    def get_parameter_schema(self, plan: QueryPlan) -> pa.Schema:
        """Infer each parameter's type from what it is compared with; fall back to utf8 (DuckDB casts it)."""
        return parameter_schema(infer_parameter_types(plan, self._engine.expression_types))

    def execute(
        self,
        plan: QueryPlan,
        parameters: Sequence[Sequence[Any]] | None,
        limits: QueryLimits,
    ) -> Execution:
        """Prepare the query on a query instance; it runs when the execution's reader is first read."""
        return self._engine.execute(plan.sql, parameters, limits, validated=plan.validated)

    # -- metadata ------------------------------------------------------------------------------------------

    def list_schemas(self) -> list[str]:
        """Schemas of the source's own database (the system ones are hidden)."""
        rows = self._engine.rows(
            "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = current_database() "
            "ORDER BY schema_name"
        )
        return [r[0] for r in rows if r[0] not in _INTERNAL_SCHEMAS]

    def list_tables(self, db_schema: str | None = None) -> list[TableInfo]:
        """Tables and views of the source's own database."""
        rows = self._engine.rows(
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
        columns = self._engine.rows(
            "SELECT data_type, is_nullable = 'YES' FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [db_schema, table],
        )
        if not columns:
            raise NotFoundError(f"table {db_schema}.{table} not found", source=self.name)
        described = self._engine.schema_of(f"SELECT * FROM {_quote(db_schema)}.{_quote(table)}")
        pairs = zip(described, columns, strict=True)
        return pa.schema([catalog_column(f, type_name, nullable) for f, (type_name, nullable) in pairs])

    def primary_keys(self, db_schema: str | None, table: str) -> list[KeyColumn]:
        """Primary keys from DuckDB's constraint catalog."""
        rows = self._engine.rows(
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

    def foreign_keys(self, db_schema: str | None = None, table: str | None = None) -> list[ForeignKeyColumn]:
        """Foreign-key column pairs from DuckDB's constraint catalog, named as its tables and columns are.

        DuckDB keeps the referenced table and columns as the FOREIGN KEY clause spelled them (``REFERENCES
        "CUSTOMERS"(ID)`` for ``customers.id``), and binds them case-insensitively: they are matched the same way
        to the referenced table's own names. A key references a table of its own schema (DuckDB allows no other).
        """
        constraints = self._engine.rows(
            "SELECT c.schema_name, c.table_name, c.constraint_type, c.constraint_column_names, c.constraint_name, "
            "c.referenced_table, c.referenced_column_names, "
            "(SELECT list(d.column_name) FROM duckdb_columns() d WHERE d.database_name = c.database_name "
            "AND d.schema_name = c.schema_name AND d.table_name = c.table_name) "
            "FROM duckdb_constraints() c WHERE c.database_name = current_database() "
            "AND c.constraint_type IN ('PRIMARY KEY', 'UNIQUE', 'FOREIGN KEY') AND (? IS NULL OR c.schema_name = ?) "
            "ORDER BY c.schema_name, c.table_name, c.constraint_index",
            [db_schema, db_schema],
        )
        tables = {(s.lower(), t.lower()): (t, {c.lower(): c for c in columns}) for s, t, *_, columns in constraints}
        unique = {(s, t, tuple(c.lower() for c in cols)): name
                  for s, t, kind, cols, name, *_ in constraints if kind != "FOREIGN KEY"}
        result = []
        for s, fk_table, kind, fk_columns, fk_name, referenced, referenced_columns, _ in constraints:
            if kind != "FOREIGN KEY" or (s.lower(), referenced.lower()) not in tables:
                continue
            pk_table, pk_names = tables[(s.lower(), referenced.lower())]
            if table is not None and table not in (fk_table, pk_table):
                continue
            pk_columns = [pk_names.get(c.lower(), c) for c in referenced_columns]
            pk_name = unique.get((s, pk_table, tuple(c.lower() for c in pk_columns)))
            for seq, (fk_column, pk_column) in enumerate(zip(fk_columns, pk_columns, strict=True), start=1):
                result.append(ForeignKeyColumn(pk=KeyColumn(s, pk_table, pk_column, seq, pk_name),
                                               fk=KeyColumn(s, fk_table, fk_column, seq, fk_name)))
        return result

    def view_definition(self, db_schema: str, view: str) -> str | None:
        """The query of a view of the source's own database (``duckdb_views()``), as DuckDB keeps it.

        DuckDB binds a view's unqualified names in the view's own schema first (then along the search path).
        """
        rows = self._engine.rows(
            "SELECT sql FROM duckdb_views() WHERE database_name = current_database() AND schema_name = ? "
            "AND view_name = ? AND NOT internal AND NOT temporary",
            [db_schema, view],
        )
        return query_of_create_view(rows[0][0], self.dialect) if len(rows) == 1 and rows[0][0] else None

    def view_database(self) -> str | None:
        """What DuckDB calls the database (``current_database()``: ``shop`` for ``shop.duckdb``, ``memory`` in memory).

        A view's text is kept as written, so ``shop.main.depts`` (``memory.main.depts``) reaches whoever reads it;
        the gateway's query instances attach the file under the same name, or are in memory themselves, so the
        name means the same there.
        """
        return self._engine.database_name

    def close(self) -> None:
        """Close the database."""
        self._engine.close()


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
