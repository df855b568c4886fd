"""What the file and lake-format backends share: tables bound to DuckDB as Arrow datasets, per query.

Route chosen by measurement (``benchmarks/lake_bench.py``): the data is read by pyarrow (``pyarrow.fs`` file
systems, deltalake's and hudi's file lists, pyiceberg's scan plan) and handed to DuckDB zero-copy as
``pyarrow.dataset`` objects, which DuckDB scans with projection and filter pushdown. DuckDB itself runs on an
empty database file opened read-only, keeps ``enable_external_access=false`` with no allowed directory at all
and has its configuration locked, so SQL that slipped past the validator can neither create anything nor read
or write any file or bucket (DuckDB's own readers would need ``allowed_directories``, which also lets
``COPY ... TO`` write there).

Each query gets its own cursor; the tables it names are resolved (latest snapshot, or the one asked for) and
registered on that cursor only, so concurrent queries never see each other's bindings and a query always
reads one consistent snapshot per table.

Time travel, from SQL: a table name with ``@`` reads an older state of the table::

    SELECT * FROM "orders@v3"                     -- Delta version 3 / Iceberg snapshot id 3 / Hudi instant 3
    SELECT * FROM "orders@2026-11-23T12:00:00Z"   -- the state as of that time (UTC when no zone is given)

and a table's configuration can pin one (``version`` or ``as_of``). The version each query read is reported by
``last_snapshot(table)`` and on the execution as ``read_versions`` (``{table: version}``) for query history.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nexus_flight.backends.arrow_scan import for_duckdb
from nexus_flight.backends.base import Capabilities, Execution, TableInfo, catalog_column
from nexus_flight.backends.duckdb import DuckDBBackend
from nexus_flight.backends.object_store import StoreSettings, parse_location, secrets_of
from nexus_flight.core.errors import (
    BackendUnavailableError,
    ConfigError,
    GatewayError,
    InvalidQueryError,
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

_TIME_TRAVEL = re.compile(r"^(?P<table>.+)@(?P<at>[^@]+)$")
_VERSION = re.compile(r"^v?(?P<n>\d+)$")


class EngineSettings(BaseModel):
    """DuckDB settings of a lake source; the memory limit and spill directory bound every query on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: DuckDB's memory limit for this source's queries, e.g. ``"2GB"``; past it a query spills, then fails.
    memory_limit: str = "2GB"
    #: Where DuckDB spills operators (sorts, joins, aggregates) that outgrow ``memory_limit``.
    temp_directory: str | None = None
    threads: int | None = Field(default=None, ge=1)


class LakeSourceConfig(StoreSettings, EngineSettings):
    """Store credentials plus engine settings; each lake family adds its ``tables``."""


class VersionedTable(BaseModel):
    """A table of a versioned format, optionally pinned to one version or point in time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    #: Read this version (Delta version, Iceberg snapshot id, Hudi instant) instead of the latest.
    version: int | None = None
    #: Read the state as of this time instead of the latest (naive times are UTC).
    as_of: dt.datetime | None = None


def unique_names(tables: list[BaseModel]) -> list[BaseModel]:
    """Check that table names are unique within a source (a field validator body)."""
    names = [t.name for t in tables]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate table names: {', '.join(duplicates)}")
    return tables


def parsable_location(location: str) -> str:
    """Check that a table's location has a scheme we read (a field validator body; refuses ``hdfs://``)."""
    parse_location(location)
    return location


@dataclass(frozen=True)
class TimeTravel:
    """Which state of a table to read: a version / snapshot id, a point in time, or the latest (both None)."""

    version: int | None = None
    as_of: dt.datetime | None = None

    @property
    def latest(self) -> bool:
        """True when no older state was asked for."""
        return self.version is None and self.as_of is None


@dataclass(frozen=True)
class Binding:
    """One table resolved for one query: the Arrow object DuckDB scans and the version it holds."""

    data: Any  # pyarrow.dataset.Dataset, pyarrow.Table or a RecordBatchReader factory's result
    version: str | None = None


def parse_time_travel(at: str) -> TimeTravel:
    """Parse what follows ``@`` in a table name: ``v3``/``3`` or an ISO-8601 timestamp.

    Raises:
        InvalidQueryError: neither.

    """
    match = _VERSION.match(at)
    if match:
        return TimeTravel(version=int(match["n"]))
    try:
        when = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidQueryError(
            f'time travel {at!r}: expected @v<version> or @<ISO-8601 timestamp>, e.g. "orders@v3" or '
            '"orders@2026-11-23T12:00:00Z"'
        ) from exc
    return TimeTravel(as_of=when if when.tzinfo else when.replace(tzinfo=dt.UTC))


def pinned(version: int | None, as_of: dt.datetime | None) -> TimeTravel:
    """Return the time travel a table's configuration pins (naive timestamps are UTC)."""
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=dt.UTC)
    return TimeTravel(version=version, as_of=as_of)


class LakeBackend(DuckDBBackend):
    """Base of the file and lake-format backends: configured tables, resolved and bound per query.

    Subclasses set ``config_model`` (whose ``tables`` each have a ``name``) and implement ``_resolve``;
    versioned formats read their partition keys in ``_partition_keys``.
    """

    dialect = "duckdb"
    capabilities = Capabilities(parameters=True, cancel=True, keys=False, schema_without_execution=True)
    read_only_guard = (
        "data read through pyarrow/deltalake/pyiceberg/hudi with read-only calls only; DuckDB runs on an empty "
        "database opened read_only, enable_external_access=false with no allowed directory, no extension "
        "loaded, configuration locked"
    )
    #: Family label used in messages, e.g. ``[delta]``.
    label: ClassVar[str] = "lake"

    def __init__(self, spec: SourceSpec) -> None:
        self.config = self._validate(spec)
        self._tables = {t.name: t for t in self.config.tables}
        self._secrets = secrets_of(self.config)
        engine: dict[str, Any] = {"memory_limit": self.config.memory_limit}
        if self.config.temp_directory:
            engine["temp_directory"] = self.config.temp_directory
        if self.config.threads:
            engine["threads"] = self.config.threads
        # An empty database file opened read-only: DDL and DML on it fail in DuckDB itself (an in-memory
        # database would accept CREATE TABLE). Registered Arrow objects live in each cursor's temp catalog.
        self._empty_dir = tempfile.mkdtemp(prefix="nexus-lake-")
        empty = os.path.join(self._empty_dir, "empty.duckdb")
        duckdb.connect(empty).close()
        engine["path"] = empty
        try:
            super().__init__(SourceSpec(spec.name, spec.kind, engine, {}))
        except BaseException:
            shutil.rmtree(self._empty_dir, ignore_errors=True)
            raise
        self.spec = spec
        self._local = threading.local()
        self._versions_lock = threading.Lock()
        self._last_versions: dict[str, str | None] = {}

    @classmethod
    def _validate(cls, spec: SourceSpec) -> LakeSourceConfig:
        """Options and secrets, merged flat, checked against the family's model."""
        assert cls.config_model is not None
        try:
            return cls.config_model.model_validate({**spec.options, **spec.secrets})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"[{spec.kind}] invalid configuration: {problems}", source=spec.name) from None

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
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        where = f"table {table!r} " if table else ""
        return f"[{self.label}] {text} ({where}{what})"

    def _canonical(self, name: str) -> str | None:
        """Return the configured table ``name`` means (DuckDB matches names case-insensitively)."""
        names = self._table_names()
        if name in names:
            return name
        folded = [n for n in names if n.lower() == name.lower()]
        return folded[0] if len(folded) == 1 else None

    def _split(self, name: str) -> tuple[str, TimeTravel | None]:
        match = _TIME_TRAVEL.match(name)
        if match and self._canonical(match["table"]) is not None:
            return self._canonical(match["table"]), parse_time_travel(match["at"])
        return self._canonical(name) or name, None

    def _bind(self, name: str) -> Binding:
        table, travel = self._split(name)
        if table not in self._table_names():
            raise NotFoundError(f"[{self.label}] table {name!r} not found", source=self.name)
        with self._errors(table):
            binding = self._resolve(table, travel)
        return binding

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
            if table.name not in found and self._split(table.name)[0] in names:
                found.append(table.name)
        return found

    def _cursor(self, tables: Sequence[TableRef] | None = None) -> duckdb.DuckDBPyConnection:
        """Open a cursor with each of ``tables`` registered on it, at the version it asks for."""
        bindings = {name: self._bind(name) for name in self._referenced(tables)}
        cursor = self._db.cursor()
        try:
            for name, binding in bindings.items():
                cursor.register(name, for_duckdb(binding.data))
        except BaseException:
            cursor.close()
            raise
        versions = {name: binding.version for name, binding in bindings.items()}
        # History names the table, not how it was written: "sales@v0" read version 0 of sales.
        read: dict[str, str] = {}
        for name, version in versions.items():
            table = self._split(name)[0]
            read[table] = version if table not in read else f"{read[table]}+{version}"
        self._local.versions = read
        with self._versions_lock:
            self._last_versions.update(versions)
        return cursor

    # -- queries ---------------------------------------------------------------------------------------

    def execute(
        self,
        plan: QueryPlan,
        parameters: Sequence[Sequence[Any]] | None,
        limits: QueryLimits,
    ) -> Execution:
        """Run ``plan``; the execution's ``read_versions`` maps each table it read to the version read."""
        self._local.versions = {}
        execution = super().execute(plan, parameters, limits)
        execution.read_versions = dict(self._local.versions)  # type: ignore[attr-defined]
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
        base = self._split(table)[0]
        if base not in self._table_names():
            raise NotFoundError(f"[{self.label}] table {table!r} not found", source=self.name)
        # Through DuckDB, so the types are exactly those a query of the table returns; nullability is the table's.
        schema = self._schema('SELECT * FROM "{}"'.format(table.replace('"', '""')), 0, [TableRef(table)])
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
        """Close DuckDB and remove the empty database file."""
        super().close()
        shutil.rmtree(self._empty_dir, ignore_errors=True)

    def ping(self) -> None:
        """Every configured table resolves."""
        for name in self._table_names():
            self._bind(name)
