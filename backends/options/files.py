"""Options of the files family: tables of files (a file, a prefix or a glob) in one format, on disk or in stores."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from nexus_flight.backends.options.lake import LakeSourceConfig, parsable_location, unique_names

#: Arrow types by the names a configuration may use in an explicit schema.
_TYPES = {
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int": pa.int32(),
    "integer": pa.int32(),
    "int64": pa.int64(),
    "bigint": pa.int64(),
    "float": pa.float32(),
    "float32": pa.float32(),
    "double": pa.float64(),
    "float64": pa.float64(),
    "string": pa.string(),
    "varchar": pa.string(),
    "text": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "binary": pa.binary(),
}


def arrow_type(name: str) -> pa.DataType:
    """Return the Arrow type of a configuration name (``bigint``, ``decimal(12,2)``, ``timestamp`` ...).

    Raises:
        ValueError: unknown type name.

    """
    key = name.strip().lower()
    if key.startswith("decimal(") and key.endswith(")"):
        precision, scale = (int(p) for p in key[8:-1].split(","))
        return pa.decimal128(precision, scale)
    if key not in _TYPES:
        raise ValueError(
            f"unknown column type {name!r}; use one of {', '.join(sorted(_TYPES))} or decimal(p,s)"
        )
    return _TYPES[key]


class FileTable(BaseModel):
    """One table: where its files are and how to read them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    #: A file, a prefix (directory) or a glob: ``/data/x.parquet``, ``s3://bucket/sales/``, ``gs://b/logs/*.csv``.
    location: str
    format: Literal["parquet", "csv", "json", "ndjson", "orc", "arrow", "feather", "avro"] = "parquet"
    #: Hive-style ``key=value`` directories become columns, typed and valued as DuckDB's own readers have them
    #: (``read_parquet(..., hive_partitioning = true)``: BIGINT, DATE, TIMESTAMP or VARCHAR; see ``hive_keys.py``).
    hive_partitioning: bool = False
    #: CSV field delimiter.
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    #: CSV: the first row holds column names.
    header: bool = True
    #: The table's columns are those of all its files together (a column added in later files is seen, NULL in the
    #: older ones; types widened where files differ), as DuckDB's ``union_by_name``. Off: the first file's
    #: columns, as DuckDB's default. On, every file's footer is read whenever the table's files change.
    union_by_name: bool = False
    #: Explicit column types, ``{"id": "bigint", "amount": "decimal(12,2)"}``: CSV/JSON columns are parsed as
    #: these; for a headerless CSV, they also name the columns, in order.
    columns: dict[str, str] | None = None
    #: Refuses hdfs:// and unknown schemes at configuration time.
    _parsable = field_validator("location")(parsable_location)

    @field_validator("columns")
    @classmethod
    def _known_types(cls, columns: dict[str, str] | None) -> dict[str, str] | None:
        for type_name in (columns or {}).values():
            arrow_type(type_name)
        return columns


class FilesConfig(LakeSourceConfig):
    """A files source: object-store settings, engine settings and its tables."""

    tables: list[FileTable] = Field(min_length=1)
    #: Seconds a table's file listing is trusted: a query after that lists the files again and reads them afresh
    #: when any was added, removed or rewritten (size or modification time); 0 checks before every query.
    listing_seconds: float = Field(default=1.0, ge=0)

    _unique = field_validator("tables")(unique_names)
