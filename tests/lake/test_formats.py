"""Delta, Iceberg and Hudi tables written by the fixtures, on local disk and on moto's S3 server."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tests.lake.conftest import require_modules

require_modules("deltalake", "pyiceberg", "hudi")

from deltalake import DeltaTable, write_deltalake  # noqa: E402

from nexus_flight.backends.delta import DeltaBackend  # noqa: E402
from nexus_flight.backends.hudi import HudiBackend  # noqa: E402
from nexus_flight.backends.iceberg import IcebergBackend  # noqa: E402
from nexus_flight.core.errors import InvalidQueryError, NotFoundError, UnsupportedError  # noqa: E402
from tests.lake.conftest import (  # noqa: E402
    BUCKET,
    LIMITS,
    azure_source,
    rows,
    s3_source,
    sales_table,
    source,
    upload_dir,
    wait_a_moment,
)
from tests.lake.hudi_tables import CowTable  # noqa: E402
from tests.support.results import plan_for  # noqa: E402


def read_versions(backend, sql: str) -> dict:
    execution = backend.execute(plan_for(backend, sql), None, LIMITS)
    execution.reader.read_all()
    execution.close()
    return execution.read_versions


# -- Delta -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def delta_local(local_dir):
    path = str(local_dir / "delta_sales")
    first = sales_table(300)
    write_deltalake(path, first, partition_by=["region"])
    between = wait_a_moment()
    write_deltalake(path, sales_table(600).slice(300), mode="append", partition_by=["region"])
    return path, between


def test_delta_latest_version_and_partitions(delta_local):
    path, _ = delta_local
    with DeltaBackend(source("delta", tables=[{"name": "sales", "location": path}])) as backend:
        got = rows(backend, "SELECT count(*) AS n, sum(amount) AS s FROM sales")
        expected = DeltaTable(path).to_pyarrow_table()
        assert got == [
            {"n": expected.num_rows, "s": pytest.approx(sum(expected.column("amount").to_pylist()))}
        ]
        assert backend.partition_columns("sales") == ["region"]
        assert "region" in backend.table_schema("main", "sales").names
        assert read_versions(backend, "SELECT 1 FROM sales LIMIT 1") == {"sales": "1"}
        assert backend.last_snapshot("sales") == "1"
        # Partition values are attached per file, so a filter on them skips whole files.
        dataset = backend._bind("sales").data
        assert len(list(dataset.get_fragments(filter=ds.field("region") == "eu"))) < len(
            list(dataset.get_fragments())
        )


def test_delta_filters_find_rows_the_logs_statistics_cannot_describe(local_dir):
    """The log stores -inf, NaN and decimal(38) bounds lossily (null, a double): no file may be skipped for that."""
    import decimal

    path = str(local_dir / "delta_lossy_stats")
    table = pa.table({
        "region": ["eu", "us", "eu"],
        "x": [1.0, float("-inf"), float("nan")],
        "d": pa.array([decimal.Decimal("1234567890123456789012345678.0123456789")] * 3, pa.decimal128(38, 10)),
    })
    write_deltalake(path, table, partition_by=["region"])
    with DeltaBackend(source("delta", tables=[{"name": "t", "location": path}])) as backend:
        assert rows(backend, "SELECT region FROM t WHERE x = '-inf'::double") == [{"region": "us"}]
        assert rows(backend, "SELECT count(*) AS n FROM t WHERE isnan(x)") == [{"n": 1}]
        assert rows(backend, "SELECT count(*) AS n FROM t WHERE d = 1234567890123456789012345678.0123456789") == [
            {"n": 3}
        ]
        dataset = backend._bind("t").data
        assert len(list(dataset.get_fragments(filter=ds.field("region") == "eu"))) == 1


def test_delta_time_travel_by_version_timestamp_and_pin(delta_local):
    path, between = delta_local
    with DeltaBackend(source("delta", tables=[{"name": "sales", "location": path}])) as backend:
        assert rows(backend, 'SELECT count(*) AS n FROM "sales@v0"') == [{"n": 300}]
        assert rows(backend, f'SELECT count(*) AS n FROM "sales@{between.isoformat()}"') == [{"n": 300}]
        # keyed by the table, not by how the query wrote it
        assert read_versions(backend, 'SELECT * FROM "sales@v0"') == {"sales": "0"}
        both = rows(
            backend, 'SELECT (SELECT count(*) FROM "sales@v0") AS old, (SELECT count(*) FROM sales) AS new'
        )
        assert both == [{"old": 300, "new": 600}]
        with pytest.raises(InvalidQueryError, match="expected @v<version>"):
            rows(backend, 'SELECT * FROM "sales@yesterday"')
    with DeltaBackend(source("delta", tables=[{"name": "sales", "location": path, "version": 0}])) as pinned:
        assert rows(pinned, "SELECT count(*) AS n FROM sales") == [{"n": 300}]


def test_delta_queries_opened_together_each_read_and_report_their_own_version(delta_local):
    """Two executions prepared before either is read: each cursor holds its own binding and its own versions."""
    path, _ = delta_local
    with DeltaBackend(source("delta", tables=[{"name": "sales", "location": path}])) as backend:
        old = backend.execute(plan_for(backend, 'SELECT count(*) AS n FROM "sales@v0"'), None, LIMITS)
        new = backend.execute(plan_for(backend, "SELECT count(*) AS n FROM sales"), None, LIMITS)
        assert new.reader.read_all().to_pylist() == [{"n": 600}]
        assert old.reader.read_all().to_pylist() == [{"n": 300}]
        assert (dict(old.read_versions), dict(new.read_versions)) == ({"sales": "0"}, {"sales": "1"})
        old.close()
        new.close()


def test_delta_on_s3(s3, s3_settings, tmp_path_factory):
    local = tmp_path_factory.mktemp("delta_s3") / "t"
    write_deltalake(str(local), sales_table(200), partition_by=["region"])
    upload_dir(s3, local, "delta/sales")
    spec = s3_source("delta", s3_settings, tables=[{"name": "sales", "location": f"s3://{BUCKET}/delta/sales"}])
    with DeltaBackend(spec) as backend:
        assert rows(backend, "SELECT count(*) AS n, max(id) AS m FROM sales WHERE region = 'us'") == [
            {"n": len([i for i in range(200) if i % 3 == 1]), "m": 199}
        ]
    missing = s3_source("delta", s3_settings, tables=[{"name": "gone", "location": f"s3://{BUCKET}/delta/none"}])
    with DeltaBackend(missing) as backend, pytest.raises(NotFoundError) as info:
        rows(backend, "SELECT * FROM gone")
    assert info.value.details["source"] == "lake" and "'gone'" in info.value.message


def test_delta_on_azure_blob(azure, tmp_path_factory):
    import pyarrow.fs as pafs

    emulator, filesystem = azure
    local = tmp_path_factory.mktemp("delta_az") / "t"
    write_deltalake(str(local), sales_table(120), partition_by=["region"])
    pafs.copy_files(str(local), "lake/delta/sales", pafs.LocalFileSystem(), filesystem)
    spec = azure_source("delta", emulator, tables=[{"name": "sales", "location": "az://lake/delta/sales"}])
    with DeltaBackend(spec) as backend:
        assert rows(backend, "SELECT count(*) AS n FROM sales WHERE region = 'eu'") == [{"n": 40}]


# -- Iceberg -----------------------------------------------------------------------------------------------


def _iceberg_catalog(uri: str, warehouse: str, **properties):
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog("test", uri=uri, warehouse=warehouse, **properties)


def _iceberg_table(catalog):
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import DoubleType, LongType, NestedField, StringType

    catalog.create_namespace("shop")
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "region", StringType(), required=False),
        NestedField(3, "amount", DoubleType(), required=False),
    )
    spec = PartitionSpec(PartitionField(2, 1000, IdentityTransform(), "region"))
    return catalog.create_table("shop.sales", schema=schema, partition_spec=spec)


def _iceberg_sales(root, rows: int):
    """A SQL catalog under ``root`` (created) holding ``shop.sales`` with its first ``rows`` sales appended."""
    root.mkdir()
    uri, warehouse = f"sqlite:///{root}/catalog.db", f"file://{root}/warehouse"
    catalog = _iceberg_catalog(uri, warehouse)
    table = _iceberg_table(catalog)
    table.append(sales_table(rows).select(["id", "region", "amount"]))
    return catalog, table, uri, warehouse


@pytest.fixture(scope="module")
def iceberg_local(local_dir):
    from pyiceberg.types import StringType

    catalog, table, uri, warehouse = _iceberg_sales(local_dir / "iceberg", 300)
    first = table.current_snapshot().snapshot_id
    between = wait_a_moment()
    with table.update_schema() as update:
        update.add_column("note", StringType())
    table = catalog.load_table("shop.sales")
    more = sales_table(400).slice(300).select(["id", "region", "amount"])
    table.append(more.append_column("note", pa.array(["late"] * more.num_rows)))
    return catalog, uri, warehouse, first, between


def _iceberg_source(uri, warehouse, **table):
    return source(
        "iceberg",
        catalog={"type": "sql", "name": "test", "properties": {"uri": uri, "warehouse": warehouse}},
        tables=[{"name": "sales", "identifier": "shop.sales", **table}],
    )


def test_iceberg_latest_with_schema_evolution_and_pruning(iceberg_local):
    catalog, uri, warehouse, _, _ = iceberg_local
    with IcebergBackend(_iceberg_source(uri, warehouse)) as backend:
        expected = catalog.load_table("shop.sales").scan().to_arrow()
        got = rows(backend, "SELECT count(*) AS n, count(note) AS notes, sum(amount) AS s FROM sales")
        assert got == [
            {
                "n": expected.num_rows,
                "notes": 100,
                "s": pytest.approx(sum(expected.column("amount").to_pylist())),
            }
        ]
        assert backend.table_schema("main", "sales").names == ["id", "region", "amount", "note"]
        assert backend.partition_columns("sales") == ["region"]
        current = str(catalog.load_table("shop.sales").current_snapshot().snapshot_id)
        assert read_versions(backend, "SELECT id FROM sales LIMIT 1") == {"sales": current}
        dataset = backend._bind("sales").data
        assert isinstance(dataset, ds.FileSystemDataset)
        assert len(list(dataset.get_fragments(filter=ds.field("region") == "eu"))) < len(
            list(dataset.get_fragments())
        )
        assert rows(backend, "SELECT count(*) AS n FROM sales WHERE region = 'eu'") == [{"n": 134}]


def test_iceberg_time_travel_by_snapshot_and_timestamp(iceberg_local):
    _, uri, warehouse, first, between = iceberg_local
    with IcebergBackend(_iceberg_source(uri, warehouse)) as backend:
        assert rows(backend, f'SELECT count(*) AS n FROM "sales@v{first}"') == [{"n": 300}]
        old = backend.table_schema("main", f"sales@v{first}")
        assert old.names == ["id", "region", "amount"]  # the snapshot's own schema
        assert rows(backend, f'SELECT count(*) AS n FROM "sales@{between.isoformat()}"') == [{"n": 300}]
        with pytest.raises(NotFoundError, match="has no snapshot 12345"):
            rows(backend, 'SELECT * FROM "sales@v12345"')
    with IcebergBackend(_iceberg_source(uri, warehouse, version=first)) as pinned:
        assert read_versions(pinned, "SELECT * FROM sales") == {"sales": str(first)}


def test_iceberg_rename_falls_back_to_pyiceberg_reader(local_dir):
    _, table, uri, warehouse = _iceberg_sales(local_dir / "iceberg_rename", 30)
    with table.update_schema() as update:
        update.rename_column("amount", "total")
    with IcebergBackend(_iceberg_source(uri, warehouse)) as backend:
        got = rows(backend, "SELECT sum(total) AS s FROM sales")
        assert got[0]["s"] == pytest.approx(sum(round(i * 1.25, 2) for i in range(30)))
        assert isinstance(backend._bind("sales").data, pa.RecordBatchReader)


def test_iceberg_reused_column_name_reads_null_for_old_files(local_dir):
    from pyiceberg.types import DoubleType

    _, table, uri, warehouse = _iceberg_sales(local_dir / "iceberg_reuse", 6)
    with table.update_schema() as update:
        update.delete_column("amount")
    with table.update_schema() as update:
        update.add_column("amount", DoubleType())
    with IcebergBackend(_iceberg_source(uri, warehouse)) as backend:
        assert rows(backend, "SELECT count(amount) AS n FROM sales") == [{"n": 0}]


def test_iceberg_missing_table_names_source(iceberg_local):
    _, uri, warehouse, _, _ = iceberg_local
    spec = _iceberg_source(uri, warehouse, name="ghost", identifier="shop.ghost")
    with IcebergBackend(spec) as backend, pytest.raises(NotFoundError) as info:
        rows(backend, "SELECT * FROM ghost")
    assert "shop.ghost" in info.value.message and info.value.details["source"] == "lake"


def test_iceberg_data_files_on_s3(s3, s3_settings, tmp_path):
    """Data files on the S3 emulator, metadata on disk: moto refuses pyarrow's multipart uploads, so pyiceberg
    cannot write metadata there, but ``add_files`` registers parquet objects uploaded with boto3."""
    import pyarrow.parquet as pq

    options, secrets = s3_settings
    local = tmp_path / "part-0.parquet"
    data = sales_table(90).select(["id", "region", "amount"])
    pq.write_table(data, local)
    s3[3].put_object(Bucket=BUCKET, Key="iceberg/data/part-0.parquet", Body=local.read_bytes())
    uri, warehouse = f"sqlite:///{tmp_path}/catalog.db", f"file://{tmp_path}/warehouse"
    io = {
        "s3.endpoint": f"http://{options['s3_endpoint']}",
        "s3.access-key-id": options["s3_access_key_id"],
        "s3.secret-access-key": secrets["s3_secret_access_key"],
        "s3.region": "us-east-1",
    }
    catalog = _iceberg_catalog(uri, warehouse, **io)
    catalog.create_namespace("shop")
    table = catalog.create_table("shop.sales", schema=data.schema)
    table.add_files([f"s3://{BUCKET}/iceberg/data/part-0.parquet"])
    spec = s3_source(
        "iceberg",
        s3_settings,
        catalog={"type": "sql", "name": "test", "properties": {"uri": uri, "warehouse": warehouse}},
        tables=[{"name": "sales", "identifier": "shop.sales"}],
    )
    with IcebergBackend(spec) as backend:
        assert rows(backend, "SELECT count(*) AS n, sum(id) AS s FROM sales WHERE region = 'apac'") == [
            {"n": 30, "s": sum(i for i in range(90) if i % 3 == 2)}
        ]


# -- Hudi --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hudi_local(local_dir):
    root = local_dir / "hudi_trips"
    table = CowTable(root, "trips", "id", "region")
    table.commit(
        "20261101000000000",
        pa.table(
            {"id": pa.array([1, 2, 3], pa.int64()), "region": ["eu", "us", "eu"], "fare": [1.0, 2.0, 3.0]}
        ),
    )
    table.commit(
        "20261102000000000",
        pa.table({"id": pa.array([1, 3, 4], pa.int64()), "region": ["eu"] * 3, "fare": [10.0, 30.0, 40.0]}),
    )
    return root


def test_hudi_cow_latest_matches_hudi_rs(hudi_local):
    import hudi

    expected = pa.Table.from_batches(hudi.HudiTable(str(hudi_local)).read()).select(["id", "region", "fare"])
    with HudiBackend(source("hudi", tables=[{"name": "trips", "location": str(hudi_local)}])) as backend:
        got = rows(backend, "SELECT id, region, fare FROM trips ORDER BY id")
        assert got == sorted(expected.to_pylist(), key=lambda r: r["id"])
        assert read_versions(backend, "SELECT * FROM trips") == {"trips": "20261102000000000"}
        assert backend.partition_columns("trips") == ["region"]
        assert "_hoodie_commit_time" in backend.table_schema("main", "trips").names


def test_hudi_time_travel(hudi_local):
    with HudiBackend(source("hudi", tables=[{"name": "trips", "location": str(hudi_local)}])) as backend:
        old = rows(backend, 'SELECT id, fare FROM "trips@v20261101000000000" ORDER BY id')
        assert old == [{"id": 1, "fare": 1.0}, {"id": 2, "fare": 2.0}, {"id": 3, "fare": 3.0}]
        assert rows(backend, 'SELECT count(*) AS n FROM "trips@2026-11-01T12:00:00Z"') == [{"n": 3}]
        with pytest.raises(NotFoundError, match="no commit as of"):
            rows(backend, 'SELECT * FROM "trips@2020-01-01"')


def test_hudi_merge_on_read_with_log_files_is_refused(local_dir):
    root = local_dir / "hudi_mor"
    table = CowTable(root, "mor", "id", "region")
    table.commit(
        "20261101000000000", pa.table({"id": pa.array([1], pa.int64()), "region": ["eu"], "fare": [1.0]})
    )
    props = root / ".hoodie" / "hoodie.properties"
    props.write_text(props.read_text().replace("COPY_ON_WRITE", "MERGE_ON_READ"))
    file_id = table.file_ids["eu"]
    (root / "eu" / f".{file_id}_20261101000000000.log.1_0-1-0").write_bytes(b"#HUDI#")
    with HudiBackend(source("hudi", tables=[{"name": "mor", "location": str(root)}])) as backend:
        with pytest.raises(UnsupportedError, match="merge-on-read with uncompacted log files") as info:
            rows(backend, "SELECT * FROM mor")
        assert "mor" in info.value.message
    optimized = source("hudi", tables=[{"name": "mor", "location": str(root), "read_optimized": True}])
    with HudiBackend(optimized) as backend:
        assert rows(backend, "SELECT id, fare FROM mor") == [{"id": 1, "fare": 1.0}]


def _two_trips(directory, fares: list[float]):
    """A one-commit Hudi table ``trips`` of two rides (eu, us) with these fares, under ``directory``."""
    root = directory / "trips"
    CowTable(root, "trips", "id", "region").commit(
        "20261101000000000",
        pa.table({"id": pa.array([1, 2], pa.int64()), "region": ["eu", "us"], "fare": fares}),
    )
    return root


def test_hudi_on_azure_blob(azure, tmp_path):
    import pyarrow.fs as pafs

    emulator, filesystem = azure
    root = _two_trips(tmp_path, fares=[1.0, 2.5])
    pafs.copy_files(str(root), "lake/hudi/trips", pafs.LocalFileSystem(), filesystem)
    spec = azure_source("hudi", emulator, tables=[{"name": "trips", "location": "az://lake/hudi/trips"}])
    with HudiBackend(spec) as backend:
        assert rows(backend, "SELECT sum(fare) AS s FROM trips") == [{"s": 3.5}]


def test_hudi_on_s3(s3, s3_settings, tmp_path):
    root = _two_trips(tmp_path, fares=[1.0, 2.0])
    upload_dir(s3, root, "hudi/trips")
    spec = s3_source("hudi", s3_settings, tables=[{"name": "trips", "location": f"s3://{BUCKET}/hudi/trips"}])
    with HudiBackend(spec) as backend:
        assert rows(backend, "SELECT sum(fare) AS s FROM trips") == [{"s": 3.0}]
