"""Options of the lake families (Delta, Hudi, Iceberg) and what they share with the files family.

A lake source holds object-store settings (``store.py``), DuckDB engine settings and its tables; each table is
read at its latest version unless it pins one (``version``, ``as_of``).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.json_schema import SkipJsonSchema

from nexus_flight.backends.object_store import parse_location
from nexus_flight.backends.options.store import StoreSettings
from nexus_flight.backends.options.types import LocalPath


class EngineSettings(BaseModel):
    """DuckDB settings of a lake source; the memory limit and spill directory bound every query on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Memory each query on this source may use, e.g. ``"512MB"`` (the server's ``memory_limit`` when unset);
    #: past it a query spills, then fails.
    memory_limit: str | None = None
    #: Where DuckDB spills operators (sorts, joins, aggregates) that outgrow ``memory_limit``.
    temp_directory: LocalPath | None = None
    threads: int | None = Field(default=None, ge=1, le=1024)


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


class DeltaTableConfig(VersionedTable):
    """One Delta table: its root (``s3://bucket/path``, ``az://...``, ``gs://...`` or a local path)."""

    location: str
    _parsable = field_validator("location")(parsable_location)


class DeltaConfig(LakeSourceConfig):
    """A Delta source: object-store settings, engine settings and its tables."""

    tables: list[DeltaTableConfig] = Field(min_length=1)
    _unique = field_validator("tables")(unique_names)


class HudiTableConfig(VersionedTable):
    """One Hudi table: its base path; ``version`` is a commit instant (``yyyyMMddHHmmssSSS``)."""

    location: str
    #: Merge-on-read tables: read only the base files (skips uncompacted log files).
    read_optimized: bool = False
    _parsable = field_validator("location")(parsable_location)


class HudiConfig(LakeSourceConfig):
    """A Hudi source: object-store settings, engine settings and its tables."""

    tables: list[HudiTableConfig] = Field(min_length=1)
    _unique = field_validator("tables")(unique_names)


class IcebergCatalogConfig(BaseModel):
    """Which catalog holds the tables; ``properties`` are passed to pyiceberg's ``load_catalog`` unchanged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["sql", "rest", "glue", "hive", "dynamodb", "in-memory"] = "sql"
    #: The catalog's own name (a SQL catalog keeps several apart by it); the source's name when absent.
    name: str | None = None
    #: e.g. ``{"uri": "sqlite:////data/catalog.db", "warehouse": "s3://bucket/wh"}`` for a SQL catalog.
    properties: dict[str, str] = Field(default_factory=dict)


class IcebergTableConfig(VersionedTable):
    """One Iceberg table: its identifier in the catalog (``namespace.table``)."""

    identifier: str = Field(min_length=3, pattern=r"\.")


class IcebergConfig(LakeSourceConfig):
    """An Iceberg source: catalog, object-store settings, engine settings and its tables."""

    catalog: IcebergCatalogConfig = IcebergCatalogConfig()
    #: Secret catalog properties, filled by the backend from the source's secrets named ``catalog.<property>``
    #: (not an option of its own).
    catalog_secrets: SkipJsonSchema[dict[str, SecretStr]] = Field(default_factory=dict)
    tables: list[IcebergTableConfig] = Field(min_length=1)
    _unique = field_validator("tables")(unique_names)
