"""Apache Iceberg tables through pyiceberg: SQL, REST, Glue and Hive catalogs; files on disk or object stores.

Each query asks the catalog for the table's current metadata (or the snapshot it names) and plans the scan
with pyiceberg. When the snapshot's data files can be read as they are — no delete files, no column ever
renamed, no nested columns, no column name pyiceberg writes sanitized — DuckDB gets a ``pyarrow.dataset`` of
those files in the snapshot's schema (added columns read as NULL, promoted types cast), with each file's
identity-partition values attached so DuckDB's filters on them skip whole files, and its other filters skip row
groups. Otherwise pyiceberg's own reader (which applies deletes and maps columns by field id) streams the rows,
without pushdown.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
from pyiceberg.catalog import load_catalog
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.schema import make_compatible_name
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import NestedField, StructType

from nexus_flight.backends.lake import (
    LakeBackend,
)
from nexus_flight.backends.object_store import arrow_filesystem, parse_location, pyiceberg_properties
from nexus_flight.backends.options.lake import IcebergConfig
from nexus_flight.backends.table_binder import Binding, TimeTravel
from nexus_flight.core.errors import NotFoundError
from nexus_flight.core.source import SourceSpec

#: Secrets whose key starts with this go to the catalog's properties (REST tokens, OAuth credentials ...).
CATALOG_SECRET_PREFIX = "catalog."


class IcebergBackend(LakeBackend):
    """Iceberg tables planned by pyiceberg and scanned by DuckDB; time travel by snapshot id or timestamp."""

    kind = "iceberg"
    label = "iceberg"
    config_model = IcebergConfig

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        properties = {
            "type": self.config.catalog.type,
            **pyiceberg_properties(self.config),
            **self.config.catalog.properties,
            **{k: v.get_secret_value() for k, v in self.config.catalog_secrets.items()},
        }
        with self._errors():
            self._catalog = load_catalog(self.config.catalog.name or spec.name, **properties)

    @classmethod
    def _validate(cls, spec: SourceSpec):
        """Secrets named ``catalog.<property>`` become secret catalog properties."""
        secrets = dict(spec.secrets)
        catalog = {
            k[len(CATALOG_SECRET_PREFIX) :]: secrets.pop(k)
            for k in list(secrets)
            if k.startswith(CATALOG_SECRET_PREFIX)
        }
        options = dict(spec.options)
        if catalog:
            options["catalog_secrets"] = {**options.get("catalog_secrets", {}), **catalog}
        return super()._validate(SourceSpec(spec.name, spec.kind, options, secrets))

    def _load(self, table: str):
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        try:
            return self._catalog.load_table(self._tables[table].identifier)
        except (NoSuchTableError, NoSuchNamespaceError) as exc:
            raise NotFoundError(
                f"[iceberg] {exc} (table {table!r}: no such table in the catalog)", source=self.name
            ) from None

    def _snapshot_id(self, iceberg_table, table: str, travel: TimeTravel | None) -> int | None:
        travel = self._travel(table, travel)
        if travel.version is not None:
            if iceberg_table.snapshot_by_id(travel.version) is None:
                raise NotFoundError(
                    f"[iceberg] table {table!r} has no snapshot {travel.version}", source=self.name
                )
            return travel.version
        if travel.as_of is not None:
            snapshot = iceberg_table.snapshot_as_of_timestamp(int(travel.as_of.timestamp() * 1000))
            if snapshot is None:
                raise NotFoundError(
                    f"[iceberg] table {table!r} has no snapshot as of {travel.as_of.isoformat()}",
                    source=self.name,
                )
            return snapshot.snapshot_id
        current = iceberg_table.current_snapshot()
        return current.snapshot_id if current is not None else None

    def _resolve(self, table: str, travel: TimeTravel | None) -> Binding:
        iceberg_table = self._load(table)
        snapshot_id = self._snapshot_id(iceberg_table, table, travel)
        # The latest state reads in the current schema (a rename makes no snapshot); an older one in its own.
        latest = travel is None or travel.latest
        latest = latest and self._tables[table].version is None and self._tables[table].as_of is None
        scan = iceberg_table.scan(snapshot_id=None if latest else snapshot_id)
        schema = scan.projection()
        version = str(snapshot_id) if snapshot_id is not None else None
        arrow_schema = schema_to_pyarrow(schema, include_field_ids=False)
        if snapshot_id is None:
            return Binding(arrow_schema.empty_table(), version)
        tasks = list(scan.plan_files())
        if self._files_readable_as_is(iceberg_table, schema, tasks):
            return Binding(self._dataset(iceberg_table, schema, arrow_schema, tasks), version)
        return Binding(scan.to_arrow_batch_reader(), version)

    @staticmethod
    def _files_readable_as_is(iceberg_table, schema, tasks) -> bool:
        """Tell whether reading the files by column name gives what the Iceberg scan would."""
        if any(task.delete_files for task in tasks):
            return False
        if any(not field.field_type.is_primitive for field in schema.fields):
            return False
        if any(make_compatible_name(field.name) != field.name for field in schema.fields):
            return False  # pyiceberg's files hold "my-col" as "my_x2Dcol" (Avro's rule); only field ids match
        if any(str(task.file.file_format).upper().split(".")[-1] != "PARQUET" for task in tasks):
            return False
        names = {field.field_id: field.name for field in schema.fields}
        ids = {field.name: field.field_id for field in schema.fields}
        for old in iceberg_table.metadata.schemas:
            for field in old.fields:
                if field.field_id in names and names[field.field_id] != field.name:
                    return False  # renamed: files hold the old name
                if field.name in ids and ids[field.name] != field.field_id:
                    return False  # a dropped column's name reused: files may hold the old column under it
        return True

    def _dataset(self, iceberg_table, schema, arrow_schema: pa.Schema, tasks) -> ds.Dataset:
        file_format = ds.ParquetFileFormat()
        if not tasks:
            return ds.FileSystemDataset(
                [], arrow_schema, file_format, arrow_filesystem(self.config, parse_location("/"))
            )
        locations = [parse_location(task.file.file_path) for task in tasks]
        filesystem = arrow_filesystem(self.config, locations[0])
        specs = iceberg_table.metadata.specs()
        fragments = [
            file_format.make_fragment(
                location.fs_path,
                filesystem,
                partition_expression=_partition_expression(
                    specs[task.file.spec_id], schema, task.file.partition
                ),
            )
            for location, task in zip(locations, tasks, strict=True)
        ]
        return ds.FileSystemDataset(fragments, arrow_schema, file_format, filesystem)

    def _partition_keys(self, table: str) -> list[str]:
        """Source columns of the table's current partition spec."""
        iceberg_table = self._load(table)
        schema = iceberg_table.schema()
        return [schema.find_column_name(f.source_id) for f in iceberg_table.spec().fields]


def _partition_expression(spec, schema, partition: Any) -> ds.Expression:
    """``col == value`` for each identity partition field of a primitive, non-temporal type (else true)."""
    expression = ds.scalar(True)
    for position, field in enumerate(spec.fields):
        if not isinstance(field.transform, IdentityTransform):
            continue
        source: NestedField | None = (
            schema.find_field(field.source_id) if _has(schema, field.source_id) else None
        )
        if source is None or isinstance(source.field_type, StructType):
            continue
        value = partition[position]
        if not isinstance(value, bool | int | float | str):
            continue  # dates/times are stored as ints here: comparing them to the column would be wrong
        if _temporal(source):
            continue
        expression = expression & (ds.field(source.name) == value)
    return expression


def _has(schema, field_id: int) -> bool:
    return field_id in {f.field_id for f in schema.fields}


def _temporal(field: NestedField) -> bool:
    return str(field.field_type).split("(")[0] in (
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "timestamp_ns",
        "timestamptz_ns",
    )
