"""Apache Hudi copy-on-write tables through the ``hudi`` package (hudi-rs), on local disk or object stores.

Each query asks hudi-rs for the file slices of the latest commit (or of the instant / time it names) and hands
DuckDB a ``pyarrow.dataset`` of their base parquet files, so DuckDB's projection and filters reach the files.

Merge-on-read: a file slice with log files (updates not yet compacted) cannot be read this way, and merging
logs is not wired up: such a table is refused with a clear error, unless the table is configured
``read_optimized: true``, which reads only the compacted base files (Hudi's read-optimized query: the latest
updates are missing by design). Incremental and CDC queries are not offered.
"""

from __future__ import annotations

import datetime as dt

import pyarrow.dataset as ds
from hudi import HudiReadOptions, HudiTable

from nexus_flight.backends.lake import (
    LakeBackend,
)
from nexus_flight.backends.object_store import arrow_filesystem, delta_storage_options, parse_location
from nexus_flight.backends.options.lake import HudiConfig
from nexus_flight.backends.table_binder import Binding, TimeTravel
from nexus_flight.core.errors import NotFoundError, UnsupportedError


def instant(when: dt.datetime) -> str:
    """Return the Hudi instant time (UTC, millisecond precision) of a point in time."""
    return when.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S%f")[:17]


class HudiBackend(LakeBackend):
    """Hudi copy-on-write tables read through hudi-rs file slices and scanned by DuckDB."""

    kind = "hudi"
    label = "hudi"
    config_model = HudiConfig

    def _open(self, table: str) -> HudiTable:
        location = parse_location(self._tables[table].location)
        # hudi-rs uses the same object_store crate (and option names) as delta-rs.
        return HudiTable(location.uri, delta_storage_options(self.config, location))

    def _resolve(self, table: str, travel: TimeTravel | None) -> Binding:
        config = self._tables[table]
        hudi_table = self._open(table)
        travel = self._travel(table, travel)
        as_of = None
        if travel.version is not None:
            as_of = str(travel.version)
        elif travel.as_of is not None:
            as_of = instant(travel.as_of)
        options = HudiReadOptions() if as_of is None else HudiReadOptions().with_as_of_timestamp(as_of)
        timeline = hudi_table.get_timeline()
        commits = [
            c.timestamp for c in timeline.get_completed_commits() + timeline.get_completed_deltacommits()
        ]
        read = [c for c in commits if as_of is None or c <= as_of]
        if not read:
            raise NotFoundError(f"[hudi] table {table!r} has no commit as of {as_of}", source=self.name)
        slices = hudi_table.get_file_slices(options)
        if any(s.has_log_files() for s in slices) and not config.read_optimized:
            raise UnsupportedError(
                f"[hudi] table {table!r} is merge-on-read with uncompacted log files: merging them is not "
                "supported; compact the table or configure read_optimized=true to read the base files only",
                source=self.name,
            )
        location = parse_location(self._tables[table].location)
        filesystem = arrow_filesystem(self.config, location)
        base = location.fs_path.rstrip("/")
        files = [f"{base}/{s.base_file_relative_path()}" for s in slices]
        schema = hudi_table.get_schema_with_meta_fields()
        dataset = ds.dataset(files, schema=schema, filesystem=filesystem, format="parquet")
        return Binding(dataset, max(read))

    def _partition_keys(self, table: str) -> list[str]:
        """The Hudi table's partition fields (``hoodie.table.partition.fields``)."""
        return list(self._open(table).get_partition_schema().names)
