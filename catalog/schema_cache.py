"""The schema cache: each source's schemas, tables and columns, versioned, with change detection.

A refresh walks the backend's metadata into a canonical JSON document. Its version id is the lake format's
snapshot id when the caller knows one, else a hash of the content, so an unchanged source adds no version.
Older versions are kept; :func:`diff_versions` tells what changed between two. When the source does not answer,
the cached schema stays and is marked stale so metadata requests keep working.

One object the source lists but cannot describe for the gateway's login (a view of a dropped table, a view calling
a function the login may not execute, a view whose definer is gone) is kept in the snapshot without columns, with
the engine's first line under ``"unreadable"``, and logged: the source's other tables stay known. A query naming
it then meets the engine's own error. A diff says such an object became unreadable (and readable again once it is
repaired) rather than comparing the columns the snapshot no longer knows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

import pyarrow as pa
from sqlalchemy import select

from nexus_flight.backends.base import DATABASE_TYPE_NAME, Backend, TableInfo
from nexus_flight.backends.engine_messages import first_line
from nexus_flight.catalog.connect import open_source
from nexus_flight.catalog.models import DataSource, SourceSchema, SourceSchemaVersion, utcnow
from nexus_flight.catalog.redaction import SCRUBBER
from nexus_flight.catalog.storable import storable_text
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.core.errors import SOURCE_FAILURES, GatewayError, NotFoundError

log = logging.getLogger(__name__)

#: {"schemas": {schema: {table: {"type": "TABLE", "columns": [{"name", "type", "nullable", "type_name"?}]}}}}
#: ("type" is the Arrow type, "type_name" the database's own where the backend names it: bigint, varchar(40);
#: an object the source could not describe has no columns and "unreadable": the engine's first line instead)
SchemaContent = dict[str, Any]


@dataclass(frozen=True)
class CachedSchema:
    """The current cached schema of a source."""

    source: str
    version_id: str
    content: SchemaContent
    refreshed_at: datetime
    stale: bool
    last_error: str | None = None
    #: The version current before this one (None: none, or not recorded by the catalog's version then).
    previous_version: str | None = None


@dataclass(frozen=True)
class RefreshResult:
    """What a refresh found (``unreadable``: ``schema.table`` -> why, for each object listed without columns)."""

    version_id: str
    changed: bool
    previous_version: str | None
    unreadable: dict[str, str] = field(default_factory=dict)


@dataclass
class TableChange:
    """Column changes of one table present in both versions."""

    table: str
    added_columns: list[str] = field(default_factory=list)
    removed_columns: list[str] = field(default_factory=list)
    changed_columns: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class KindChange:
    """An object of both versions whose kind changed (a table replaced by a view of the same name, or back)."""

    table: str
    old_kind: str
    new_kind: str


@dataclass
class UnreadableTable:
    """An object the source cannot describe now: added so, or it could before, or it failed for another reason.

    Its columns are not compared: the snapshot knows none of them now, which does not mean they are gone.
    """

    table: str
    #: The engine's first line, as the new snapshot keeps it.
    reason: str
    #: Why the old snapshot could not describe it either, when that was another reason (None: it was readable).
    previous_reason: str | None = None


@dataclass
class ReadableAgainTable:
    """An object of both versions that the source could not describe in the old one and can in the new one."""

    table: str
    #: Its columns in the new snapshot.
    columns: list[str]
    #: Why the old snapshot could not describe it.
    previous_reason: str


@dataclass
class SchemaDiff:
    """Differences between two schema versions of a source.

    An object of both versions that the source could not describe in one of them, or in both for different
    reasons (``unreadable`` in the snapshot), is not compared column by column: it is listed in
    ``unreadable_tables`` or ``readable_again_tables`` instead.
    """

    old_version: str
    new_version: str
    added_tables: list[str] = field(default_factory=list)
    removed_tables: list[str] = field(default_factory=list)
    changed_tables: list[TableChange] = field(default_factory=list)
    unreadable_tables: list[UnreadableTable] = field(default_factory=list)
    readable_again_tables: list[ReadableAgainTable] = field(default_factory=list)
    #: Listed whatever else changed: a view standing in for a table may have the same columns, or none known.
    changed_kinds: list[KindChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when nothing changed."""
        return not (self.added_tables or self.removed_tables or self.changed_tables or self.unreadable_tables
                    or self.readable_again_tables or self.changed_kinds)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready form."""
        return asdict(self)


def snapshot_backend(backend: Backend) -> SchemaContent:
    """Read every schema, table and column the backend reports into canonical content.

    The tables of a schema the backend describes together (``table_schemas``) cost no question each; the others are
    described one by one. An object the source lists but cannot describe is kept without columns (see the module
    docstring).

    Raises:
        GatewayError: the source could not be listed, is unreachable, or refuses the gateway's login.

    """
    schemas: dict[str, Any] = {}
    for schema in sorted(backend.list_schemas()):
        tables = {}
        listed = sorted(backend.list_tables(schema), key=lambda t: t.name)
        read_together = _read_together(backend, schema) if listed else {}
        for table in listed:
            try:
                arrow_schema = read_together.get(table.name)
                if arrow_schema is None:
                    arrow_schema = backend.table_schema(schema, table.name)
            except SOURCE_FAILURES:
                raise  # the source, not this object: the caller keeps the cache and marks it stale
            except GatewayError as exc:
                tables[table.name] = _unreadable(backend.name, table, exc)
                continue
            tables[table.name] = {
                "type": table.table_type,
                "columns": [_column(f) for f in arrow_schema],
                # The exact Arrow schema, so metadata requests can be answered from the cache alone.
                "arrow": base64.b64encode(arrow_schema.serialize().to_pybytes()).decode(),
            }
        schemas[schema] = tables
    return {"schemas": schemas}


def _read_together(backend: Backend, schema: str) -> Mapping[str, pa.Schema]:
    """The tables of ``schema`` the backend reads together; none when the engine refuses (each is described alone).

    A PostgreSQL-speaking engine's catalog may lack what PostgreSQL's has: its snapshot costs more, it does not fail.
    """
    try:
        return backend.table_schemas(schema)
    except SOURCE_FAILURES:
        raise
    except GatewayError as exc:
        log.info("schema snapshot of %s: the tables of %s are described one by one (%s)", backend.name, schema,
                 first_line(exc))
        return {}


def _unreadable(source: str, table: TableInfo, exc: GatewayError) -> dict[str, Any]:
    """An object the source could not describe, as the snapshot keeps it: listed, no columns, the engine's line."""
    line = first_line(exc)  # str(exc) is the engine's message, already without the source's own secrets
    reason = SCRUBBER.scrub(line) or line
    log.warning("schema snapshot of %s: %s.%s.%s cannot be described for the source's login (%s); it is listed "
                "without columns", source, source, table.db_schema, table.name, reason)
    return {"type": table.table_type, "columns": [], "unreadable": reason}


def unreadable_objects(content: SchemaContent) -> dict[str, str]:
    """``schema.table`` -> why, for each object of ``content`` the source could not describe."""
    return {f"{schema}.{name}": spec["unreadable"] for schema, tables in sorted(content["schemas"].items())
            for name, spec in sorted(tables.items()) if "unreadable" in spec}


def _column(f: pa.Field) -> dict[str, Any]:
    column = {"name": f.name, "type": str(f.type), "nullable": f.nullable}
    type_name = (f.metadata or {}).get(DATABASE_TYPE_NAME)
    if type_name:
        column["type_name"] = type_name.decode()
    return column


def cached_tables(content: SchemaContent, db_schema: str | None = None) -> list[TableInfo]:
    """List the tables of cached content, optionally of one schema."""
    return [
        TableInfo(schema, name, spec["type"])
        for schema, tables in sorted(content["schemas"].items())
        if db_schema is None or schema == db_schema
        for name, spec in sorted(tables.items())
    ]


def cached_table_schema(content: SchemaContent, db_schema: str, table: str) -> pa.Schema | None:
    """Return the Arrow schema of one cached table, or None when the cache does not know it."""
    spec = content["schemas"].get(db_schema, {}).get(table)
    if spec is None:
        return None
    if "arrow" in spec:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(spec["arrow"])))
    return None


def content_version(content: SchemaContent) -> str:
    """Hash content into the version id used when no snapshot id is known."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:32]


def save_schema(
    store: CatalogStore, source: str, content: SchemaContent, snapshot_id: str | None = None
) -> RefreshResult:
    """Store content as the source's current schema, adding a version when it is new.

    Raises:
        NotFoundError: no such source.

    """
    version_id = snapshot_id or content_version(content)
    tables = [t for schema in content["schemas"].values() for t in schema.values()]
    with store.session() as session:
        source_id = _source_id(session, source)
        current = session.get(SourceSchema, source_id)
        previous = current.current_version if current else None
        if session.get(SourceSchemaVersion, (source_id, version_id)) is None:
            session.add(
                SourceSchemaVersion(
                    source_id=source_id,
                    version_id=version_id,
                    content=content,
                    table_count=len(tables),
                    column_count=sum(len(t["columns"]) for t in tables),
                )
            )
        if current is None:
            current = SourceSchema(source_id=source_id, current_version=version_id)
            session.add(current)
        elif previous != version_id:
            current.previous_version = previous
        current.current_version = version_id
        current.refreshed_at = utcnow()
        current.stale = False
        current.last_error = None
        return RefreshResult(version_id, previous != version_id, previous, unreadable_objects(content))


def refresh_schema(
    store: CatalogStore, source: str, backend: Backend | None = None, snapshot_id: str | None = None
) -> RefreshResult:
    """Read the source's metadata and store it; on failure keep the cache and mark it stale, then re-raise.

    Raises:
        NotFoundError: no such source.
        GatewayError: the backend failed (the cache, if any, is now marked stale).

    """
    try:
        if backend is None:
            with open_source(store, source) as opened:
                content = snapshot_backend(opened)
                snapshot_id = snapshot_id or lake_versions(opened)
        else:
            content = snapshot_backend(backend)
            snapshot_id = snapshot_id or lake_versions(backend)
    except NotFoundError:
        raise
    except GatewayError as exc:
        mark_stale(store, source, exc.message)
        raise
    return save_schema(store, source, content, snapshot_id)


def lake_versions(backend: Backend) -> str | None:
    """The table versions a lake source's snapshot read (``orders@3, lineitem@7``), as its schema version id."""
    last = getattr(backend, "last_snapshot", None)
    if last is None:
        return None
    versions = sorted((t.name, last(t.name)) for t in backend.list_tables())
    return ", ".join(f"{name}@{version}" for name, version in versions if version is not None) or None


def mark_stale(store: CatalogStore, source: str, error: str) -> None:
    """Flag the cached schema of a source as stale (the source did not answer)."""
    with store.session() as session:
        current = session.get(SourceSchema, _source_id(session, source))
        if current is not None:
            current.stale = True
            current.last_error = storable_text(SCRUBBER.scrub(error))


def cached_schema(store: CatalogStore, source: str, known: CachedSchema | None = None) -> CachedSchema | None:
    """Return the current cached schema of a source, or None before the first refresh.

    ``known``: one read before; while it is still the current version its content is reused, not read again (a
    large source's content is megabytes of JSON).
    """
    with store.session() as session:
        current = session.get(SourceSchema, _source_id(session, source))
        if current is None:
            return None
        if known is not None and known.version_id == current.current_version:
            return replace(known, refreshed_at=current.refreshed_at, stale=current.stale,
                                       last_error=current.last_error, previous_version=current.previous_version)
        version = session.get(SourceSchemaVersion, (current.source_id, current.current_version))
        return CachedSchema(
            source,
            current.current_version,
            version.content,
            current.refreshed_at,
            current.stale,
            current.last_error,
            current.previous_version,
        )


def list_versions(store: CatalogStore, source: str) -> list[dict[str, Any]]:
    """Every stored version of a source, oldest first (version id, created_at, table and column counts)."""
    with store.session() as session:
        source_id = _source_id(session, source)
        rows = session.scalars(
            select(SourceSchemaVersion)
            .where(SourceSchemaVersion.source_id == source_id)
            .order_by(SourceSchemaVersion.created_at, SourceSchemaVersion.version_id)
        )
        return [
            {
                "version_id": r.version_id,
                "created_at": r.created_at,
                "table_count": r.table_count,
                "column_count": r.column_count,
            }
            for r in rows
        ]


def diff_versions(
    store: CatalogStore, source: str, old: str | None = None, new: str | None = None
) -> SchemaDiff:
    """Diff two stored versions; by default the current one and the one current before it.

    ``new`` defaults to the current version; ``old`` to the version current before it, else (another ``new``, or a
    catalog from before that was recorded) the newest other version stored.

    Raises:
        NotFoundError: no such source or version, or fewer than two versions to compare.

    """
    current = cached_schema(store, source)
    if old is None and new is None and current is not None:
        old = current.previous_version
    new = new or (current.version_id if current else None)
    if old is None:
        earlier = [v["version_id"] for v in list_versions(store, source) if v["version_id"] != new]
        old = earlier[-1] if earlier else None
    if old is None or new is None:
        raise NotFoundError(f"source {source!r} has fewer than two schema versions to compare", source=source)
    with store.session() as session:
        source_id = _source_id(session, source)
        contents = []
        for version_id in (old, new):
            row = session.get(SourceSchemaVersion, (source_id, version_id))
            if row is None:
                raise NotFoundError(f"source {source!r} has no schema version {version_id!r}", source=source)
            contents.append(row.content)
    return diff_content(contents[0], contents[1], old, new)


def diff_content(
    old: SchemaContent, new: SchemaContent, old_id: str = "old", new_id: str = "new"
) -> SchemaDiff:
    """Compare two schema contents: added, removed and changed tables and columns, and readability changes."""
    before, after = _tables(old), _tables(new)
    diff = SchemaDiff(
        old_id, new_id, sorted(after.keys() - before.keys()), sorted(before.keys() - after.keys())
    )
    for name in diff.added_tables:  # added already broken: its columns are unknown, its reason is not
        if (reason := after[name].get("unreadable")) is not None:
            diff.unreadable_tables.append(UnreadableTable(name, reason))
    for name in sorted(before.keys() & after.keys()):
        old_kind, new_kind = before[name].get("type"), after[name].get("type")
        if old_kind and new_kind and old_kind != new_kind:
            diff.changed_kinds.append(KindChange(name, old_kind, new_kind))
        was, now = before[name].get("unreadable"), after[name].get("unreadable")
        if now is not None:
            if now != was:
                diff.unreadable_tables.append(UnreadableTable(name, now, was))
            continue
        if was is not None:
            diff.readable_again_tables.append(
                ReadableAgainTable(name, [c["name"] for c in after[name]["columns"]], was)
            )
            continue
        old_cols = {c["name"]: c for c in before[name]["columns"]}
        new_cols = {c["name"]: c for c in after[name]["columns"]}
        change = TableChange(
            name, [c for c in new_cols if c not in old_cols], [c for c in old_cols if c not in new_cols]
        )
        for column in (c for c in new_cols if c in old_cols and new_cols[c] != old_cols[c]):
            before_column, after_column = old_cols[column], new_cols[column]
            change.changed_columns.append(
                {
                    "name": column,
                    # The database's own type names where known (varchar(25) -> varchar(40) is one Arrow type).
                    "old_type": before_column.get("type_name", before_column["type"]),
                    "new_type": after_column.get("type_name", after_column["type"]),
                    "old_nullable": before_column["nullable"],
                    "new_nullable": after_column["nullable"],
                }
            )
        if change.added_columns or change.removed_columns or change.changed_columns:
            diff.changed_tables.append(change)
    return diff


def _tables(content: SchemaContent) -> dict[str, Any]:
    return {f"{s}.{t}": spec for s, tables in content["schemas"].items() for t, spec in tables.items()}


def _source_id(session, source: str) -> str:
    found = session.scalars(select(DataSource.id).where(DataSource.name == source)).first()
    if found is None:
        raise NotFoundError(f"no source named {source!r}", source=source)
    return found
