"""Delta Lake tables through deltalake (delta-rs), on local disk or object stores.

Each query loads the table's latest version (or the version / time it asks for) and hands DuckDB the
``pyarrow.dataset`` of exactly that version's files, with partition values attached to each file: DuckDB's
filters on partition columns skip whole files, other filters skip row groups.

deltalake's own dataset also attaches each file's min/max statistics from the log as guarantees, and those are
lossy: JSON has no infinity or NaN (they are logged as null) and wide decimals are logged as doubles, so a
guarantee like ``x >= null`` made pyarrow skip files that hold the rows asked for (``x = -inf`` or a
``decimal(38,10)`` equality returned nothing). Only the partition values are kept; row groups are still skipped by
the files' own statistics.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable

from nexus_flight.backends.lake import (
    LakeBackend,
)
from nexus_flight.backends.object_store import delta_storage_options, parse_location
from nexus_flight.backends.options.lake import DeltaConfig
from nexus_flight.backends.table_binder import Binding, TimeTravel


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
        return Binding(_with_partition_values_only(delta), str(delta.version()))

    def _partition_keys(self, table: str) -> list[str]:
        """The Delta table's partition columns, from its metadata."""
        return list(self._load(table, None).metadata().partition_columns)


def _with_partition_values_only(delta: DeltaTable) -> ds.FileSystemDataset:
    """The version's files as deltalake lists them, each guaranteed only its partition values, not the log's stats."""
    dataset = delta.to_pyarrow_dataset()
    keys = list(delta.metadata().partition_columns)
    values: dict[str, ds.Expression] = {}
    if keys:
        actions = pa.table(delta.get_add_actions(flatten=True))
        for action in actions.select(["path", *(f"partition.{k}" for k in keys)]).to_pylist():
            expression = ds.scalar(True)
            for key in keys:
                value = action[f"partition.{key}"]
                expression &= ds.field(key).is_null() if value is None else ds.field(key) == value
            values[action["path"]] = expression
    fragments = [
        dataset.format.make_fragment(f.path, dataset.filesystem, values.get(f.path, ds.scalar(True)))
        for f in dataset.get_fragments()
    ]
    return ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
