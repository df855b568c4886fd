"""Delta Lake tables through deltalake (delta-rs), on local disk or object stores.

Each query loads the table's latest version (or the version / time it asks for) and hands DuckDB the
``pyarrow.dataset`` of exactly that version's files, with partition values attached to each file: DuckDB's
filters on partition columns skip whole files, other filters skip row groups.

deltalake's own dataset also attaches each file's min/max statistics from the log as guarantees, and those are
lossy: JSON has no infinity or NaN (they are logged as null) and wide decimals are logged as doubles, so a
guarantee like ``x >= null`` made pyarrow skip files that hold the rows asked for (``x = -inf`` or a
``decimal(38,10)`` equality returned nothing). Only the partition values are kept; row groups are still skipped by
the files' own statistics.

deltalake's pyarrow dataset refuses tables with reader features it does not apply (deletion vectors, v2
checkpoints), and reads a column-mapped table (``delta.columnMapping.mode`` ``name`` or ``id``, protocol 2, files
naming columns ``col-5f1c…``) as NULL columns without complaint. Such tables are read by deltalake's own engine
(``DeltaTable.scan``: DataFusion over delta-kernel, which applies them), streamed without pushdown.
"""

from __future__ import annotations

from urllib.parse import unquote

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, DeltaProtocolError

from nexus_flight.backends.lake import (
    LakeBackend,
)
from nexus_flight.backends.object_store import delta_storage_options, parse_location
from nexus_flight.backends.options.lake import DeltaConfig
from nexus_flight.backends.table_binder import Binding, TimeTravel
from nexus_flight.core.errors import BackendError, NotFoundError, UnsupportedError


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
            try:
                return DeltaTable(location.uri, version=travel.version, storage_options=options)
            except DeltaError:
                latest = DeltaTable(location.uri, storage_options=options).version()
                if travel.version > latest:
                    raise NotFoundError(
                        f"[delta] table {table!r} has no version {travel.version} (the latest is {latest})",
                        source=self.name,
                    ) from None
                raise
        delta = DeltaTable(location.uri, storage_options=options)
        if travel.as_of is not None:
            delta.load_as_version(travel.as_of)
        return delta

    def _resolve(self, table: str, travel: TimeTravel | None) -> Binding:
        try:
            delta = self._load(table, travel)
            return Binding(_readable(delta), str(delta.version()))
        except DeltaProtocolError as exc:  # a feature deltalake's own engine does not read either
            raise UnsupportedError(
                self._message(exc, table, "uses a Delta feature not supported"), source=self.name
            ) from None

    def _partition_keys(self, table: str) -> list[str]:
        """The Delta table's partition columns, from its metadata."""
        return list(self._load(table, None).metadata().partition_columns)


def _readable(delta: DeltaTable) -> ds.FileSystemDataset | pa.RecordBatchReader:
    """The version's files, with pushdown, where deltalake's pyarrow dataset reads the table right; else its engine."""
    if delta.metadata().configuration.get("delta.columnMapping.mode", "none") != "none":
        return _scanned(delta)
    try:
        return _with_partition_values_only(delta)
    except DeltaProtocolError:  # "The table has set these reader features: {'deletionVectors'} but ..."
        return _scanned(delta)


def _scanned(delta: DeltaTable) -> pa.RecordBatchReader:
    """The version's rows as deltalake's own engine reads them: column mapping and deletion vectors applied."""
    return pa.RecordBatchReader.from_stream(delta.scan())


def _with_partition_values_only(delta: DeltaTable) -> ds.FileSystemDataset:
    """The version's files as deltalake lists them, each guaranteed only its partition values, not the log's stats."""
    dataset = delta.to_pyarrow_dataset()
    keys = list(delta.metadata().partition_columns)
    if not keys:
        return _dataset_of(dataset, [(f.path, ds.scalar(True)) for f in dataset.get_fragments()])
    actions = pa.table(delta.get_add_actions(flatten=True))
    # Arrow scalars, not Python values, so each literal has its column's type (a timestamp keeps its zone).
    partitions = {key: actions.column(f"partition.{key}") for key in keys}
    values: dict[str, ds.Expression] = {}
    for row, path in enumerate(actions.column("path").to_pylist()):
        expression = ds.scalar(True)
        for key, column in partitions.items():
            value = column[row]
            expression &= ds.field(key) == value if value.is_valid else ds.field(key).is_null()
        # The log holds URI-encoded paths ("k=a%2520b"); the dataset names the file itself ("k=a%20b").
        values[unquote(path)] = expression
    missing = [f.path for f in dataset.get_fragments() if f.path not in values]
    if missing:
        # Without its partition values a file's partition columns would read as NULL: refuse instead.
        raise BackendError(f"[delta] data file {missing[0].rsplit('/', 1)[-1]!r} has no partition values in the "
                           "Delta log: the table's log and files disagree")
    return _dataset_of(dataset, [(f.path, values[f.path]) for f in dataset.get_fragments()])


def _dataset_of(dataset: ds.FileSystemDataset, files: list[tuple[str, ds.Expression]]) -> ds.FileSystemDataset:
    fragments = [dataset.format.make_fragment(path, dataset.filesystem, values) for path, values in files]
    return ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
