"""Lay out minimal Hudi copy-on-write tables with pyarrow: hudi-rs reads them; no Python Hudi writer exists.

A COW table is a ``.hoodie/`` directory (``hoodie.properties`` and one ``<instant>.commit`` per commit, with
its ``.requested``/``.inflight`` markers) and, per partition, parquet base files named
``<file id>_<write token>_<instant>.parquet`` that carry the ``_hoodie_*`` meta columns. A later commit that
rewrites a file group writes a new base file with the same file id and a newer instant.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

_META = [
    "_hoodie_commit_time",
    "_hoodie_commit_seqno",
    "_hoodie_record_key",
    "_hoodie_partition_path",
    "_hoodie_file_name",
]

_AVRO = {
    pa.int64(): "long",
    pa.int32(): "int",
    pa.int16(): "int",
    pa.int8(): "int",
    pa.string(): "string",
    pa.large_string(): "string",
    pa.string_view(): "string",
    pa.binary(): "bytes",
    pa.float32(): "float",
    pa.float64(): "double",
    pa.bool_(): "boolean",
    pa.date32(): {"type": "int", "logicalType": "date"},
    pa.date64(): {"type": "int", "logicalType": "date"},
    # An instant; hudi-rs does not read Avro's local (naive) timestamps yet.
    pa.timestamp("us", tz="UTC"): {"type": "long", "logicalType": "timestamp-micros"},
}


def _avro_type(t: pa.DataType):
    if pa.types.is_decimal(t):
        return {"type": "bytes", "logicalType": "decimal", "precision": t.precision, "scale": t.scale}
    return _AVRO[t]


def _avro_schema(name: str, schema: pa.Schema) -> str:
    fields = [{"name": m, "type": ["null", "string"], "default": None} for m in _META]
    fields += [{"name": f.name, "type": ["null", _avro_type(f.type)], "default": None} for f in schema]
    return json.dumps(
        {"type": "record", "name": f"{name}_record", "namespace": f"hoodie.{name}", "fields": fields}
    )


class CowTable:
    """A copy-on-write table under ``root``, partitioned by one string column (or not: None), keyed by ``key``."""

    def __init__(self, root: Path, name: str, key: str, partition: str | None) -> None:
        self.root, self.name, self.key, self.partition = root, name, key, partition
        self.file_ids: dict[str, str] = {}
        hoodie = root / ".hoodie"
        hoodie.mkdir(parents=True)
        (hoodie / "hoodie.properties").write_text(
            "\n".join(
                [
                    f"hoodie.table.name={name}",
                    "hoodie.table.type=COPY_ON_WRITE",
                    "hoodie.table.version=6",
                    "hoodie.timeline.layout.version=1",
                    "hoodie.table.base.file.format=PARQUET",
                    f"hoodie.table.recordkey.fields={key}",
                    f"hoodie.table.partition.fields={partition or ''}",
                    "hoodie.datasource.write.hive_style_partitioning=false",
                    "hoodie.partition.metafile.use.base.format=false",
                    "hoodie.populate.meta.fields=true",
                    "hoodie.table.keygenerator.class=org.apache.hudi.keygen."
                    + ("SimpleKeyGenerator" if partition else "NonpartitionedKeyGenerator"),
                    "hoodie.table.metadata.partitions=",
                ]
            )
            + "\n"
        )

    def commit(self, instant: str, table: pa.Table) -> None:
        """Write ``table``'s rows as the full new content of the partitions they fall in, at ``instant``."""
        stats: dict[str, list] = {}
        groups = sorted(set(table.column(self.partition).to_pylist())) if self.partition else [""]
        for value in groups:
            rows = table.filter(pa.compute.equal(table.column(self.partition), value)) if value else table
            file_id = self.file_ids.setdefault(value, f"{uuid.uuid4()}-0")
            file_name = f"{file_id}_0-1-0_{instant}.parquet"
            n = rows.num_rows
            meta = {
                "_hoodie_commit_time": [instant] * n,
                "_hoodie_commit_seqno": [f"{instant}_0_{i}" for i in range(n)],
                "_hoodie_record_key": [str(k) for k in rows.column(self.key).to_pylist()],
                "_hoodie_partition_path": [value] * n,
                "_hoodie_file_name": [file_name] * n,
            }
            full = pa.table({**meta, **{c: rows.column(c) for c in rows.column_names}})
            directory = self.root / value
            directory.mkdir(exist_ok=True)
            depth = 1 if value else 0
            (directory / ".hoodie_partition_metadata").write_text(f"commitTime={instant}\npartitionDepth={depth}\n")
            pq.write_table(full, directory / file_name)
            stats.setdefault(value, []).append(
                {
                    "fileId": file_id,
                    "path": f"{value}/{file_name}" if value else file_name,
                    "prevCommit": "null",
                    "numWrites": n,
                    "numDeletes": 0,
                    "numUpdateWrites": 0,
                    "numInserts": n,
                    "totalWriteBytes": (directory / file_name).stat().st_size,
                    "totalWriteErrors": 0,
                    "partitionPath": value,
                    "fileSizeInBytes": (directory / file_name).stat().st_size,
                }
            )
        body = {
            "partitionToWriteStats": stats,
            "compacted": False,
            "extraMetadata": {"schema": _avro_schema(self.name, table.schema)},
            "operationType": "UPSERT",
        }
        hoodie = self.root / ".hoodie"
        (hoodie / f"{instant}.commit.requested").write_text("")
        (hoodie / f"{instant}.inflight").write_text("")
        (hoodie / f"{instant}.commit").write_text(json.dumps(body))
