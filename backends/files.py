"""Files on local disk, S3-compatible stores, Azure Blob Storage and GCS, as tables.

Each configured table is a file, a prefix (directory) or a glob, in one format: parquet, csv, json (newline
delimited; ``ndjson`` is the same), orc or arrow/feather. Avro has no offline reader in pyarrow and is refused
plainly. Files are listed once when the source opens (``refresh()`` lists again); a hive-partitioned prefix
exposes its ``key=value`` directories as columns, and ``partition_columns`` reports them.
"""

from __future__ import annotations

import fnmatch
import threading
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.json as pajson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from nexus_flight.backends.arrow_scan import scannable
from nexus_flight.backends.lake import (
    LakeBackend,
    LakeSourceConfig,
    parsable_location,
    unique_names,
)
from nexus_flight.backends.object_store import arrow_filesystem, parse_location
from nexus_flight.backends.table_binder import Binding, TimeTravel
from nexus_flight.core.errors import ConfigError, NotFoundError, UnsupportedError
from nexus_flight.core.source import SourceSpec

_GLOB_CHARS = "*?["

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
    #: Hive-style ``key=value`` directories become columns.
    hive_partitioning: bool = False
    #: CSV field delimiter.
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    #: CSV: the first row holds column names.
    header: bool = True
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

    _unique = field_validator("tables")(unique_names)


class FilesBackend(LakeBackend):
    """Parquet, CSV, JSON, ORC and Arrow files on disk or in object stores, scanned by DuckDB."""

    kind = "files"
    label = "files"
    config_model = FilesConfig

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        for table in self._tables.values():
            if table.format == "avro":
                raise UnsupportedError(
                    f"[files] table {table.name!r}: avro is not supported yet (pyarrow has no avro reader "
                    "and DuckDB's would need file access); convert it to parquet",
                    source=self.name,
                )
        self._datasets: dict[str, ds.Dataset] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Forget the file listings; the next query lists every table's location again."""
        with self._lock:
            self._datasets.clear()

    def _resolve(self, table: str, travel: TimeTravel | None) -> Binding:
        if travel is not None and not travel.latest:
            raise UnsupportedError(
                f"[files] table {table!r} is plain files: it has no versions to travel to", source=self.name
            )
        with self._lock:
            dataset = self._datasets.get(table)
        if dataset is None:
            dataset = scannable(self._open(self._tables[table]))
            with self._lock:
                self._datasets[table] = dataset
        return Binding(dataset)

    def partition_columns(self, table: str) -> list[str]:
        """Return the hive partition keys of a table (from its directory names)."""
        config = self._tables.get(table)
        if config is None:
            raise NotFoundError(f"[files] table {table!r} not found", source=self.name)
        if not config.hive_partitioning:
            return []
        dataset = self._bind(table).data
        partitioning = getattr(dataset, "partitioning", None)
        if partitioning is not None and partitioning.schema is not None:
            return list(partitioning.schema.names)
        return [f.name for f in dataset.schema if f.name not in self._file_columns(dataset)]

    @staticmethod
    def _file_columns(dataset: ds.Dataset) -> set[str]:
        fragments = dataset.get_fragments()
        first = next(iter(fragments), None)
        return set(first.physical_schema.names) if first is not None else set()

    # -- opening a table -------------------------------------------------------------------------------

    def _open(self, table: FileTable) -> ds.Dataset:
        location = parse_location(table.location)
        filesystem = arrow_filesystem(self.config, location)
        file_format = self._format(table)
        partitioning = "hive" if table.hive_partitioning else None
        path = location.fs_path
        schema = self._explicit_schema(table)
        if any(c in path for c in _GLOB_CHARS):
            base, files = self._glob(filesystem, path, table)
            return ds.dataset(
                files,
                filesystem=filesystem,
                format=file_format,
                partitioning=partitioning,
                partition_base_dir=base,
                schema=schema,
            )
        info = filesystem.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            what = "no file or prefix at the location"
            if location.bucket and filesystem.get_file_info(location.bucket).type == pafs.FileType.NotFound:
                what = (
                    f"bucket {location.bucket!r} does not exist (or these credentials cannot see it): "
                    "the location"
                )
            raise NotFoundError(f"[files] {what} of table {table.name!r}", source=self.name)
        return ds.dataset(
            path, filesystem=filesystem, format=file_format, partitioning=partitioning, schema=schema
        )

    def _glob(self, filesystem: pafs.FileSystem, pattern: str, table: FileTable) -> tuple[str, list[str]]:
        """List the fixed prefix of a glob and keep the matches (object stores have no server-side glob)."""
        first = min(pattern.index(c) for c in _GLOB_CHARS if c in pattern)
        base = pattern[:first].rsplit("/", 1)[0]
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        files = sorted(
            info.path
            for info in filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File and fnmatch.fnmatchcase(info.path, pattern)
        )
        if not files:
            raise NotFoundError(
                f"[files] no file matches the location of table {table.name!r}", source=self.name
            )
        return base, files

    @staticmethod
    def _explicit_schema(table: FileTable) -> pa.Schema | None:
        """Only for formats without their own schema; parquet/orc/arrow files describe themselves."""
        if not table.columns or table.format not in ("csv", "json", "ndjson"):
            return None
        return pa.schema([(name, arrow_type(t)) for name, t in table.columns.items()])

    @staticmethod
    def _format(table: FileTable) -> ds.FileFormat:
        if table.format == "csv":
            column_types = {n: arrow_type(t) for n, t in (table.columns or {}).items()}
            read = pacsv.ReadOptions(
                column_names=list(column_types) if not table.header and column_types else None,
                autogenerate_column_names=not table.header and not column_types,
            )
            parse = pacsv.ParseOptions(delimiter=table.delimiter)
            convert = pacsv.ConvertOptions(column_types=column_types or None)
            return ds.CsvFileFormat(parse_options=parse, read_options=read, convert_options=convert)
        if table.format in ("json", "ndjson"):
            column_types = {n: arrow_type(t) for n, t in (table.columns or {}).items()}
            parse = pajson.ParseOptions(
                explicit_schema=pa.schema(list(column_types.items())) if column_types else None
            )
            return ds.JsonFileFormat(parse_options=parse)
        if table.format in ("arrow", "feather"):
            return ds.IpcFileFormat()
        if table.format == "orc":
            return ds.OrcFileFormat()
        if table.format == "parquet":
            return ds.ParquetFileFormat()
        raise ConfigError(f"[files] format {table.format!r} of table {table.name!r} is not readable")
