"""Files on local disk, S3-compatible stores, Azure Blob Storage and GCS, as tables.

Each configured table is a file, a prefix (directory) or a glob, in one format: parquet, csv, json (newline
delimited; ``ndjson`` is the same), orc or arrow/feather. Avro has no offline reader in pyarrow and is refused
plainly. A table's files are listed again by a query once the listing is ``listing_seconds`` old (added, removed
or rewritten files are then read as they are; ``refresh()`` forgets every listing); a hive-partitioned prefix
exposes its ``key=value`` directories as columns, typed and valued as DuckDB's own readers have them
(``hive_keys.py``), and ``partition_columns`` reports them.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.json as pajson

from nexus_flight.backends.arrow_scan import scannable
from nexus_flight.backends.base import Execution
from nexus_flight.backends.engine_messages import first_line
from nexus_flight.backends.file_groups import file_group, splits_by_rows
from nexus_flight.backends.hive_keys import hive_keys, place_keys
from nexus_flight.backends.lake import (
    LakeBackend,
)
from nexus_flight.backends.object_store import arrow_filesystem, parse_location
from nexus_flight.backends.options.files import FilesConfig, FileTable, arrow_type
from nexus_flight.backends.table_binder import Binding, TimeTravel
from nexus_flight.core.errors import ConfigError, InvalidQueryError, NotFoundError, UnsupportedError
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.source import QueryLimits, SourceSpec

_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class _Listing:
    """A table's dataset, the files it was made from (path, size, modification time) and when they were listed."""

    dataset: ds.Dataset
    files: tuple[tuple[str, int | None, int | None], ...]
    checked_at: float
    #: The hive partition keys, as columns of the dataset.
    keys: pa.Schema


def _files_of(dataset: ds.Dataset) -> tuple[tuple[str, int | None, int | None], ...]:
    """What tells a rewritten or added file apart: each file's path, size and modification time."""
    if not isinstance(dataset, ds.FileSystemDataset):
        return ()
    infos = dataset.filesystem.get_file_info(list(dataset.files))
    return tuple((info.path, info.size, info.mtime_ns) for info in infos)


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
        self._listings: dict[str, _Listing] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Forget the file listings; the next query lists every table's location again."""
        with self._lock:
            self._listings.clear()

    def _resolve(self, table: str, travel: TimeTravel | None) -> Binding:
        if travel is not None and not travel.latest:
            raise UnsupportedError(
                f"[files] table {table!r} is plain files: it has no versions to travel to", source=self.name
            )
        with self._lock:
            listing = self._listings.get(table)
        now = time.monotonic()
        if listing is None or now - listing.checked_at >= self.config.listing_seconds:
            listing = self._listed_again(table, listing, now)
        return Binding(listing.dataset)

    def _listed_again(self, table: str, previous: _Listing | None, now: float) -> _Listing:
        """The table's files as they are now: the previous dataset while nothing changed, else a new one.

        A dataset remembers each file's size: read after the file was rewritten, it would fail mid-file.
        """
        config = self._tables[table]
        opened = self._open(config)
        files = _files_of(opened)
        if previous is not None and files == previous.files:
            listing = dataclasses.replace(previous, checked_at=now)
        else:
            opened, keys = self._with_keys(opened, config)
            if config.union_by_name:
                opened = self._united(opened, config, keys)
            listing = _Listing(scannable(opened), files, now, keys)
        with self._lock:
            self._listings[table] = listing
        return listing

    def split(self, plan: QueryPlan, most: int) -> list[QueryPlan]:
        """One plan per group of the table's files when the result is the union of theirs, else ``[plan]``."""
        if most < 2 or plan.file_part is not None or not splits_by_rows(plan):
            return [plan]
        names = self._referenced(plan.tables)
        if len(names) != 1:
            return [plan]
        dataset = self._bind(names[0]).data
        count = min(most, len(dataset.files)) if isinstance(dataset, ds.FileSystemDataset) else 1
        if count < 2:
            return [plan]
        return [dataclasses.replace(plan, file_part=(index, count)) for index in range(count)]

    def execute(self, plan: QueryPlan, parameters: Sequence[Sequence[Any]] | None, limits: QueryLimits) -> Execution:
        """Run ``plan`` over all of its table's files, or over the group of them its ``file_part`` names."""
        if plan.file_part is None:
            return super().execute(plan, parameters, limits)
        index, count = plan.file_part
        [name] = self._referenced(plan.tables)
        dataset = self._bind(name).data
        fragments = file_group(count, index, list(dataset.get_fragments()))
        group = ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
        cursor = self._engine.cursor()
        try:
            with self._engine.errors():
                cursor.register(name, scannable(group))
        except BaseException:
            cursor.close()
            raise
        return self._engine.execute(plan.sql, parameters, limits, cursor)

    def partition_columns(self, table: str) -> list[str]:
        """Return the hive partition keys of a table (from its directory names)."""
        config = self._tables.get(table)
        if config is None:
            raise NotFoundError(f"[files] table {table!r} not found", source=self.name)
        if not config.hive_partitioning:
            return []
        self._bind(table)
        with self._lock:
            return list(self._listings[table].keys.names)

    # -- opening a table -------------------------------------------------------------------------------

    def _open(self, table: FileTable) -> ds.Dataset:
        location = parse_location(table.location)
        filesystem = arrow_filesystem(self.config, location)
        file_format = self._format(table)
        path = location.fs_path
        schema = self._explicit_schema(table)
        if any(c in path for c in _GLOB_CHARS):
            files = self._glob(filesystem, path, table)
            return ds.dataset(
                files,
                filesystem=filesystem,
                format=file_format,
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
        return ds.dataset(path, filesystem=filesystem, format=file_format, schema=schema)

    def _with_keys(self, dataset: ds.Dataset, table: FileTable) -> tuple[ds.Dataset, pa.Schema]:
        """``dataset`` with its hive partition keys as columns (pyarrow skips files a filter on them excludes)."""
        if not table.hive_partitioning or not isinstance(dataset, ds.FileSystemDataset):
            return dataset, pa.schema([])
        path = parse_location(table.location).fs_path
        base = self._glob_base(path) if any(c in path for c in _GLOB_CHARS) else path
        try:
            keys = hive_keys(dataset.files, base, dataset.schema)
        except UnicodeDecodeError as exc:
            raise InvalidQueryError(f"[files] a partition directory of table {table.name!r} is not URL-encoded "
                                    f"UTF-8: {first_line(exc)}", source=self.name) from None
        if not keys.names:
            return dataset, pa.schema([])
        keyed = ds.FileSystemDataset.from_paths(list(dataset.files), schema=keys.schema, format=dataset.format,
                                                filesystem=dataset.filesystem, partitions=list(keys.expressions))
        return keyed, keys.keys

    def _united(self, dataset: ds.Dataset, table: FileTable, keys: pa.Schema) -> ds.Dataset:
        """``dataset`` with the columns of all its files (types widened where they differ), partition keys placed."""
        physical = [fragment.physical_schema for fragment in dataset.get_fragments()]
        try:
            united = pa.unify_schemas(physical, promote_options="permissive") if physical else dataset.schema
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidQueryError(f"[files] the files of table {table.name!r} have columns that cannot be "
                                    f"united: {first_line(exc)}", source=self.name) from None
        return dataset.replace_schema(place_keys(united, keys)[0])

    def _glob(self, filesystem: pafs.FileSystem, pattern: str, table: FileTable) -> list[str]:
        """List the fixed prefix of a glob and keep the matches (object stores have no server-side glob)."""
        base = self._glob_base(pattern)
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
        return files

    @staticmethod
    def _glob_base(pattern: str) -> str:
        """The folder a glob's fixed prefix names."""
        first = min(pattern.index(c) for c in _GLOB_CHARS if c in pattern)
        return pattern[:first].rsplit("/", 1)[0]

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
