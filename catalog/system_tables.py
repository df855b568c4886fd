"""The read API of the ``system`` catalog: history, sources (redacted), schema versions, audit events (Arrow)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
from sqlalchemy import ColumnElement, Table, func, select

from nexus_flight.catalog.models import AuditEvent, DataSource, QueryHistory, SourceSchema, SourceSchemaVersion
from nexus_flight.catalog.source_types import suggest
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.core.errors import NotFoundError

_TS = pa.timestamp("us", tz="UTC")
#: Rows of a log-like table read and turned into one record batch at a time.
_CHUNK_ROWS = 10_000

QUERY_HISTORY_SCHEMA = pa.schema(
    [
        ("id", pa.utf8()),
        ("source_name", pa.utf8()),
        ("source_id", pa.utf8()),
        ("user_name", pa.utf8()),
        ("sql_text", pa.utf8()),
        ("sql_sha256", pa.utf8()),
        ("parameters", pa.utf8()),
        ("status", pa.utf8()),
        ("error_message", pa.utf8()),
        ("rows", pa.int64()),
        ("bytes", pa.int64()),
        ("total_ms", pa.float64()),
        ("validate_ms", pa.float64()),
        ("connect_ms", pa.float64()),
        ("execute_ms", pa.float64()),
        ("first_batch_ms", pa.float64()),
        ("stream_ms", pa.float64()),
        ("correlation_id", pa.utf8()),
        ("retry_count", pa.int32()),
        ("table_version", pa.utf8()),
        ("auth_method", pa.utf8()),
        ("client_address", pa.utf8()),
        ("policy_rewritten", pa.bool_()),
        ("created_at", _TS),
    ]
)
SOURCES_SCHEMA = pa.schema(
    [
        ("id", pa.utf8()),
        ("name", pa.utf8()),
        ("type", pa.utf8()),
        ("family", pa.utf8()),
        ("dialect", pa.utf8()),
        ("status", pa.utf8()),
        ("config", pa.utf8()),
        ("auth_type", pa.utf8()),
        ("token_expires_at", _TS),
        ("last_error", pa.utf8()),
        ("health_failures", pa.int32()),
        ("last_checked_at", _TS),
        ("next_check_at", _TS),
        ("created_at", _TS),
        ("updated_at", _TS),
    ]
)
SCHEMA_VERSIONS_SCHEMA = pa.schema(
    [
        ("source_name", pa.utf8()),
        ("version_id", pa.utf8()),
        ("created_at", _TS),
        ("table_count", pa.int32()),
        ("column_count", pa.int32()),
        ("is_current", pa.bool_()),
        ("stale", pa.bool_()),
    ]
)

AUDIT_EVENTS_SCHEMA = pa.schema(
    [
        ("id", pa.utf8()),
        ("created_at", _TS),
        ("kind", pa.utf8()),
        ("actor", pa.utf8()),
        ("subject", pa.utf8()),
        ("auth_method", pa.utf8()),
        ("client_address", pa.utf8()),
        ("detail", pa.utf8()),
    ]
)


def audit_events_table(store: CatalogStore) -> pa.Table:
    """The audit trail, newest first: sign-in failures, lockouts, changes to users, roles, grants and keys."""
    return LOG_TABLES["audit_events"].read(store)


def query_history_table(store: CatalogStore, user: str | None = None) -> pa.Table:
    """Query history (one user's, or everyone's), newest first, parameters as JSON text (redacted unless recorded)."""
    history = LOG_TABLES["query_history"]
    return history.read(store, history.owned_by(user))


@dataclass(frozen=True)
class LogTable:
    """A system table over a catalog table that grows with use (history, audit): each query reads what it needs.

    Attributes:
        table: The catalog's table.
        schema: The system table's Arrow schema (its columns are the catalog table's, by name).
        owner_column: The column naming whose row it is, where every signed-in user reads their own rows.
        as_json: Columns held as JSON in the catalog, shown as JSON text.

    """

    table: Table
    schema: pa.Schema
    owner_column: str | None = None
    as_json: tuple[str, ...] = ()

    def owned_by(self, user: str | None) -> tuple[ColumnElement[bool], ...]:
        """The condition keeping ``user``'s rows alone (none for None: everyone's)."""
        return () if user is None or self.owner_column is None else (self.table.c[self.owner_column] == user,)

    def read(self, store: CatalogStore, where: Sequence[ColumnElement[bool]] = ()) -> pa.Table:
        """The rows ``where`` keeps, newest first."""
        return log_table(store, self.table, self.schema, where, self.as_json)

    def newest_at(self, store: CatalogStore, where: Sequence[ColumnElement[bool]], rank: int):
        """The ``created_at`` of the ``rank``-th newest row ``where`` keeps (None: fewer rows than that)."""
        query = (select(self.table.c.created_at).where(*where).order_by(self.table.c.created_at.desc())
                 .offset(rank - 1).limit(1))
        with store.connection() as connection:
            return connection.execute(query).scalar()

    def count(self, store: CatalogStore, where: Sequence[ColumnElement[bool]] = ()) -> int:
        """How many rows ``where`` keeps (one indexed count, before anything is read)."""
        with store.connection() as connection:
            return connection.execute(select(func.count()).select_from(self.table).where(*where)).scalar_one()


def log_table(store: CatalogStore, table: Table, schema: pa.Schema, where: Sequence[ColumnElement[bool]] = (),
              as_json: Sequence[str] = ()) -> pa.Table:
    """A log-like table's rows that ``where`` keeps, newest first, as Arrow (columns ``as_json`` as JSON text).

    Read with one Core select in chunks, each chunk turned into a record batch: no ORM object or dict per row.
    """
    query = select(*(table.c[field.name] for field in schema)).where(*where).order_by(table.c.created_at.desc(),
                                                                                      table.c.id)
    json_at = [schema.get_field_index(name) for name in as_json]
    batches = []
    with store.connection() as connection:
        result = connection.execution_options(yield_per=_CHUNK_ROWS).execute(query)
        for rows in result.partitions():
            columns = [list(column) for column in zip(*rows, strict=True)]
            for index in json_at:
                columns[index] = [None if v is None else json.dumps(v) for v in columns[index]]
            batches.append(pa.RecordBatch.from_arrays(
                [pa.array(column, type=field.type) for column, field in zip(columns, schema, strict=True)],
                schema=schema))
    return pa.Table.from_batches(batches, schema=schema)


def sources_table(store: CatalogStore) -> pa.Table:
    """Every source with its configuration redacted (secrets as ``***``)."""
    rows = []
    for info in store.list_sources():
        row = info.redacted()
        row["config"] = json.dumps(row["config"], sort_keys=True)
        for key in ("token_expires_at", "last_checked_at", "next_check_at", "created_at", "updated_at"):
            row[key] = getattr(info, key)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=SOURCES_SCHEMA)


def schema_versions_table(store: CatalogStore) -> pa.Table:
    """Every stored schema version of every source, with which one is current and whether it is stale."""
    query = (
        select(
            DataSource.name,
            SourceSchemaVersion.version_id,
            SourceSchemaVersion.created_at,
            SourceSchemaVersion.table_count,
            SourceSchemaVersion.column_count,
            SourceSchema.current_version,
            SourceSchema.stale,
        )
        .join(DataSource, DataSource.id == SourceSchemaVersion.source_id)
        .join(SourceSchema, SourceSchema.source_id == SourceSchemaVersion.source_id, isouter=True)
        .order_by(DataSource.name, SourceSchemaVersion.created_at)
    )
    with store.session() as session:
        rows = [
            {
                "source_name": name,
                "version_id": version,
                "created_at": created,
                "table_count": tables,
                "column_count": columns,
                "is_current": version == current,
                "stale": bool(stale) and version == current,
            }
            for name, version, created, tables, columns, current, stale in session.execute(query)
        ]
    return pa.Table.from_pylist(rows, schema=SCHEMA_VERSIONS_SCHEMA)


#: The system tables read from catalog tables that grow with use.
LOG_TABLES: dict[str, LogTable] = {
    "query_history": LogTable(QueryHistory.__table__, QUERY_HISTORY_SCHEMA, "user_name", ("parameters",)),
    "audit_events": LogTable(AuditEvent.__table__, AUDIT_EVENTS_SCHEMA),
}

#: Table name -> builder of the ``system`` catalog.
SYSTEM_TABLES: dict[str, Callable[[CatalogStore], pa.Table]] = {
    "query_history": query_history_table,
    "sources": sources_table,
    "schema_versions": schema_versions_table,
    "audit_events": audit_events_table,
}
SYSTEM_SCHEMAS: dict[str, pa.Schema] = {
    "query_history": QUERY_HISTORY_SCHEMA,
    "sources": SOURCES_SCHEMA,
    "schema_versions": SCHEMA_VERSIONS_SCHEMA,
    "audit_events": AUDIT_EVENTS_SCHEMA,
}


#: The system tables every signed-in user may read, each cut to that user's rows (``LogTable.owned_by``; the
#: others are admins' only).
OWN_ROWS: frozenset[str] = frozenset({"query_history"})


def system_table(store: CatalogStore, name: str) -> pa.Table:
    """One table of the ``system`` catalog.

    Raises:
        NotFoundError: no such system table.

    """
    if name not in SYSTEM_TABLES:
        raise NotFoundError(f"no system table {name!r}{suggest(name, SYSTEM_TABLES)}")
    return SYSTEM_TABLES[name](store)
