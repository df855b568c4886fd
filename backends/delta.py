"""Delta Lake tables through deltalake (delta-rs), on local disk or object stores.

Each query loads the table's latest version (or the version / time it asks for) and hands DuckDB the
``pyarrow.dataset`` of exactly that version's files, with partition values attached to each file: DuckDB's
filters on partition columns skip whole files, other filters skip row groups.
"""

from __future__ import annotations

from deltalake import DeltaTable
from pydantic import Field, field_validator

from backends.lake import (
    Binding,
    LakeBackend,
    LakeSourceConfig,
    TimeTravel,
    VersionedTable,
    parsable_location,
    unique_names,
)
from backends.object_store import delta_storage_options, parse_location


class DeltaTableConfig(VersionedTable):
    """One Delta table: its root (``s3://bucket/path``, ``az://...``, ``gs://...`` or a local path)."""

    location: str
    _parsable = field_validator("location")(parsable_location)


class DeltaConfig(LakeSourceConfig):
    """A Delta source: object-store settings, engine settings and its tables."""

    tables: list[DeltaTableConfig] = Field(min_length=1)
    _unique = field_validator("tables")(unique_names)


class DeltaBackend(LakeBackend):
    """Delta Lake tables read with deltalake and scanned by DuckDB; time travel by version or timestamp."""

    kind = "delta"
    label = "delta"
    config_model = DeltaConfig

    def _load(self, table: str, travel: TimeTravel | None) -> DeltaTable:
        location = parse_location(self._tables[table].location)
        options = delta_storage_options(self.config, location)
        travel = self._travel(table, travel)
        if travel.version is not None:
            return DeltaTable(location.uri, version=travel.version, storage_options=options)
        delta = DeltaTable(location.uri, storage_options=options)
        if travel.as_of is not None:
            delta.load_as_version(travel.as_of)
        return delta

    def _resolve(self, table: str, travel: TimeTravel | None) -> Binding:
        delta = self._load(table, travel)
        return Binding(delta.to_pyarrow_dataset(), str(delta.version()))

    def _partition_keys(self, table: str) -> list[str]:
        """The Delta table's partition columns, from its metadata."""
        return list(self._load(table, None).metadata().partition_columns)
