"""Delta Lake tables through deltalake (delta-rs), on local disk or object stores.

Each query loads the table's latest version (or the version / time it asks for) and hands DuckDB the
``pyarrow.dataset`` of exactly that version's files, with partition values attached to each file: DuckDB's
filters on partition columns skip whole files, other filters skip row groups.
"""

from __future__ import annotations

from deltalake import DeltaTable
from pydantic import Field, field_validator

from backends.base import SourceSpec
from backends.lake import (
    Binding,
    LakeBackend,
    LakeSourceConfig,
    TimeTravel,
    VersionedTable,
    pinned,
    scannable,
    unique_names,
)
from backends.object_store import delta_storage_options, parse_location


class DeltaTableConfig(VersionedTable):
    """One Delta table: its root (``s3://bucket/path``, ``az://...``, ``gs://...`` or a local path)."""

    location: str

    @field_validator("location")
    @classmethod
    def _parsable(cls, location: str) -> str:
        parse_location(location)
        return location


class DeltaConfig(LakeSourceConfig):
    """A Delta source: object-store settings, engine settings and its tables."""

    tables: list[DeltaTableConfig] = Field(min_length=1)
    _unique = field_validator("tables")(unique_names)


class DeltaBackend(LakeBackend):
    """Delta Lake tables read with deltalake and scanned by DuckDB; time travel by version or timestamp."""

    kind = "delta"
    label = "delta"
    config_model = DeltaConfig

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self._tables = {t.name: t for t in self.config.tables}

    def _table_names(self) -> list[str]:
        return list(self._tables)

    def _load(self, table: str, travel: TimeTravel | None) -> DeltaTable:
        config = self._tables[table]
        location = parse_location(config.location)
        options = delta_storage_options(self.config, location)
        travel = travel if travel is not None else pinned(config.version, config.as_of)
        if travel.version is not None:
            return DeltaTable(location.uri, version=travel.version, storage_options=options)
        delta = DeltaTable(location.uri, storage_options=options)
        if travel.as_of is not None:
            delta.load_as_version(travel.as_of)
        return delta

    def _resolve(self, table: str, travel: TimeTravel | None) -> Binding:
        delta = self._load(table, travel)
        return Binding(scannable(delta.to_pyarrow_dataset()), str(delta.version()))

    def partition_columns(self, table: str) -> list[str]:
        """Return the Delta table's partition columns, from its metadata."""
        if table not in self._tables:
            return super().partition_columns(table)
        with self._errors(table):
            return list(self._load(table, None).metadata().partition_columns)
