"""The files backend against local disk, moto's S3 server, Azurite and the GCS emulator."""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.orc as paorc
import pyarrow.parquet as pq
import pytest

from nexus_flight.backends.files import FilesBackend
from nexus_flight.backends.registry import backend_class
from nexus_flight.core.errors import (
    BackendUnavailableError,
    ConfigError,
    InvalidQueryError,
    NotFoundError,
    ReadOnlyViolationError,
    UnsupportedError,
)
from nexus_flight.core.source import QueryLimits
from tests.lake.conftest import (
    BUCKET,
    LIMITS,
    azure_source,
    rows,
    s3_source,
    sales_table,
    source,
    upload_dir,
    write_hive,
    write_hive_s3,
)
from tests.support.results import plan_for, run


@pytest.fixture(scope="module")
def local_files(local_dir):
    data = sales_table()
    root = local_dir / "files"
    write_hive(data, pa.fs.LocalFileSystem(), str(root / "sales"))
    (root / "csv").mkdir(parents=True)
    (root / "csv" / "people.csv").write_text("1|ann|10.5\n2|bob|20.25\n3|cy|\n")
    with_header = pa.table({"k": [1, 2], "name": ["x", "y"]})
    pacsv.write_csv(with_header, root / "csv" / "header.csv")
    (root / "events.ndjson").write_text('{"id": 1, "kind": "a"}\n{"id": 2, "kind": "b"}\n')
    paorc.write_table(data.slice(0, 50), str(root / "sales.orc"))
    return root, data


@pytest.fixture(scope="module")
def local_backend(local_files):
    root, _ = local_files
    spec = source(
        "files",
        tables=[
            {"name": "sales", "location": str(root / "sales"), "hive_partitioning": True},
            {"name": "sales_glob", "location": str(root / "sales" / "region=eu" / "*.parquet")},
            {
                "name": "people",
                "location": str(root / "csv" / "people.csv"),
                "format": "csv",
                "delimiter": "|",
                "header": False,
                "columns": {"id": "bigint", "name": "varchar", "score": "decimal(10,2)"},
            },
            {"name": "header_csv", "location": str(root / "csv" / "header.csv"), "format": "csv"},
            {"name": "events", "location": str(root / "events.ndjson"), "format": "ndjson"},
            {"name": "sales_orc", "location": str(root / "sales.orc"), "format": "orc"},
        ],
    )
    with FilesBackend(spec) as backend:
        yield backend


def test_registry_knows_the_lake_kinds():
    from nexus_flight.backends.delta import DeltaBackend
    from nexus_flight.backends.hudi import HudiBackend
    from nexus_flight.backends.iceberg import IcebergBackend

    assert backend_class("files") is FilesBackend
    assert backend_class("iceberg") is IcebergBackend
    assert backend_class("delta") is DeltaBackend
    assert backend_class("hudi") is HudiBackend


def test_local_hive_parquet_matches_pyarrow(local_backend, local_files):
    root, data = local_files
    got = rows(
        local_backend,
        "SELECT region, count(*) AS n, sum(amount) AS total FROM sales GROUP BY region ORDER BY region",
    )
    expected = ds.dataset(root / "sales", partitioning="hive").to_table()
    by_region = {}
    for row in expected.to_pylist():
        n, total = by_region.get(row["region"], (0, 0.0))
        by_region[row["region"]] = (n + 1, total + row["amount"])
    assert [(r["region"], r["n"]) for r in got] == [(k, v[0]) for k, v in sorted(by_region.items())]
    assert [r["total"] for r in got] == pytest.approx([v[1] for _, v in sorted(by_region.items())])


def test_metadata_lists_tables_columns_and_partition_keys(local_backend):
    assert [t.name for t in local_backend.list_tables()] == [
        "sales",
        "sales_glob",
        "people",
        "header_csv",
        "events",
        "sales_orc",
    ]
    assert local_backend.list_schemas() == ["main"]
    schema = local_backend.table_schema("main", "sales")
    assert schema.names == ["id", "amount", "day", "region"]
    assert schema.field("day").type == pa.date32()
    assert local_backend.partition_columns("sales") == ["region"]
    assert local_backend.partition_columns("people") == []
    assert schema.field("region").metadata == {b"nexus.partition_key": b"true"}
    assert schema.field("id").metadata is None
    with pytest.raises(NotFoundError, match="nope"):
        local_backend.table_schema("main", "nope")


def test_table_names_are_case_insensitive_like_duckdb(local_backend):
    assert rows(local_backend, "SELECT count(*) AS n FROM SALES_ORC") == [{"n": 50}]
    assert rows(local_backend, 'SELECT count(*) AS n FROM main."Sales_Orc"') == [{"n": 50}]


def test_glob_reads_only_matching_files(local_backend, local_files):
    _, data = local_files
    [row] = rows(local_backend, "SELECT count(*) AS n FROM sales_glob")
    assert row["n"] == sum(1 for r in data.column("region").to_pylist() if r == "eu")


def test_csv_options_delimiter_headerless_explicit_schema(local_backend):
    got = rows(local_backend, "SELECT * FROM people ORDER BY id")
    assert got == [
        {"id": 1, "name": "ann", "score": pytest.approx(10.5)},
        {"id": 2, "name": "bob", "score": pytest.approx(20.25)},
        {"id": 3, "name": "cy", "score": None},
    ]
    schema = local_backend.table_schema("main", "people")
    assert schema.field("score").type == pa.decimal128(10, 2)
    assert rows(local_backend, "SELECT name FROM header_csv WHERE k = 2") == [{"name": "y"}]


def test_ndjson_and_orc(local_backend, local_files):
    _, data = local_files
    assert rows(local_backend, "SELECT kind FROM events ORDER BY id") == [{"kind": "a"}, {"kind": "b"}]
    got = rows(local_backend, "SELECT sum(amount) AS s, count(*) AS n FROM sales_orc")
    assert got[0]["n"] == 50
    assert got[0]["s"] == pytest.approx(sum(data.column("amount").to_pylist()[:50]))


def test_parameters_and_schema_without_execution(local_backend):
    schema = local_backend.get_schema(plan_for(local_backend, "SELECT id, region FROM sales WHERE id = ?"))
    assert schema.names == ["id", "region"]
    plan = plan_for(local_backend, "SELECT id, region FROM sales WHERE id = ?")
    execution = local_backend.execute(plan, [[7]], LIMITS)
    assert execution.reader.read_all().to_pylist() == [{"id": 7, "region": "us"}]
    assert execution.read_versions == {"sales": None}


def test_cancel_ends_the_stream(local_backend):
    """Mid-stream, DuckDB's Arrow reader reports the interrupt as an Arrow error (as for the DuckDB backend)."""
    from nexus_flight.core.errors import QueryCancelledError

    plan = plan_for(local_backend, "SELECT * FROM sales, range(5000)")
    execution = local_backend.execute(plan, None, QueryLimits(batch_rows=5))
    assert execution.reader.read_next_batch().num_rows > 0
    execution.cancel()
    with pytest.raises((QueryCancelledError, OSError), match="(?i)interrupt"):
        for _ in execution.reader:
            pass
    execution.close()
    assert rows(local_backend, "SELECT count(*) AS n FROM sales") == [{"n": 2000}]


def test_duckdb_cannot_reach_files_itself(local_backend, local_files, tmp_path):
    root, _ = local_files
    with pytest.raises(ReadOnlyViolationError, match="disabled by configuration"):
        rows(local_backend, f"SELECT * FROM read_csv('{root / 'csv' / 'people.csv'}')")
    target = tmp_path / "out.csv"
    with pytest.raises(ReadOnlyViolationError):
        rows(local_backend, f"COPY (SELECT 1) TO '{target}'")
    assert not target.exists()
    with pytest.raises(Exception):  # noqa: B017 - the lock refuses any SET; the class is DuckDB's
        rows(local_backend, "SET enable_external_access = true")


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO sales_orc SELECT * FROM sales_orc",
        "DELETE FROM sales_orc",
        "UPDATE sales_orc SET amount = 0",
        "CREATE TABLE copy AS SELECT * FROM sales_orc",
        "CREATE VIEW v AS SELECT 1",
        "CREATE SCHEMA s",
    ],
)
def test_writes_refused_by_duckdb_itself(local_backend, sql):
    """The validator is off here: DuckDB's own read-only database refuses, and the data stays as it was."""
    with pytest.raises(ReadOnlyViolationError):
        rows(local_backend, sql)
    assert rows(local_backend, "SELECT count(*) AS n FROM sales_orc") == [{"n": 50}]


def test_memory_limit_and_spill_directory_come_from_options(local_files, tmp_path):
    root, _ = local_files
    spill = tmp_path / "spill"
    spec = source(
        "files",
        memory_limit="32MB",
        temp_directory=str(spill),
        threads=1,
        tables=[{"name": "sales", "location": str(root / "sales"), "hive_partitioning": True}],
    )
    with FilesBackend(spec) as backend:
        got = rows(
            backend, "SELECT current_setting('memory_limit') AS m, current_setting('temp_directory') AS t"
        )
        assert got[0]["m"].replace(" ", "") == "24.4MiB"  # 80% of 32MB: the rest is for the batches it sends
        # Each query's instance spills in its own folder, under the folder this process holds in the spill root.
        assert re.fullmatch(re.escape(str(spill)) + r"/gateway-\d+-\w+/query-\w+/spill", got[0]["t"]), got[0]["t"]
        # Bigger than the limit: DuckDB spills the sort instead of failing.
        spilling = "SELECT range % 977 AS k, range AS v FROM range(3000000) ORDER BY k, v DESC"
        [row] = rows(backend, f"SELECT count(*) AS n FROM ({spilling})")
        assert row["n"] == 3_000_000


def test_bad_configurations_are_refused_with_the_source_named(local_files):
    root, _ = local_files
    with pytest.raises(ConfigError, match=r"\[files\] invalid configuration: .*bogus"):
        FilesBackend(source("files", bogus=1, tables=[{"name": "t", "location": str(root)}]))
    with pytest.raises(UnsupportedError, match="hdfs:// locations are not supported yet"):
        FilesBackend(source("files", tables=[{"name": "t", "location": "hdfs://nn:8020/data"}]))
    with pytest.raises(UnsupportedError, match="avro is not supported"):
        FilesBackend(source("files", tables=[{"name": "t", "location": str(root), "format": "avro"}]))
    with pytest.raises(ConfigError, match="duplicate table names: t"):
        FilesBackend(source("files", tables=[{"name": "t", "location": str(root)}] * 2))
    backend = FilesBackend(source("files", tables=[{"name": "gone", "location": str(root / "missing")}]))
    with pytest.raises(NotFoundError) as info:
        rows(backend, "SELECT * FROM gone")
    assert info.value.details["source"] == "lake" and "'gone'" in info.value.message


# -- object stores ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_sales(s3, tmp_path_factory):
    data = sales_table()
    write_hive_s3(s3, data, "files/sales", tmp_path_factory.mktemp("s3files"))
    s3[3].put_object(Bucket=BUCKET, Key="files/people.csv", Body=b"id;name\n1;ann\n2;bob\n")
    return data


def test_s3_parquet_and_csv_match_pyarrow(s3, s3_settings, s3_sales):
    spec = s3_source(
        "files",
        s3_settings,
        tables=[
            {"name": "sales", "location": f"s3://{BUCKET}/files/sales/", "hive_partitioning": True},
            {
                "name": "people",
                "location": f"s3://{BUCKET}/files/people.csv",
                "format": "csv",
                "delimiter": ";",
            },
        ],
    )
    with FilesBackend(spec) as backend:
        got = rows(backend, "SELECT id, amount FROM sales WHERE region = 'us' ORDER BY id")
        expected = [r for r in s3_sales.select(["id", "amount", "region"]).to_pylist() if r["region"] == "us"]
        assert got == [{"id": r["id"], "amount": r["amount"]} for r in expected]
        assert rows(backend, "SELECT name FROM people ORDER BY id") == [{"name": "ann"}, {"name": "bob"}]
        assert backend.partition_columns("sales") == ["region"]


def test_s3_pushdown_fetches_fewer_bytes(s3, s3_settings, s3_sales):
    """A selective filter on a sorted column lets row groups be skipped: measured at the emulator's socket."""
    relay = s3[1]
    spec = s3_source(
        "files",
        s3_settings,
        s3_endpoint=f"127.0.0.1:{relay.port}",
        tables=[{"name": "sales", "location": f"s3://{BUCKET}/files/sales/", "hive_partitioning": True}],
    )
    with FilesBackend(spec) as backend:
        rows(backend, "SELECT count(*) FROM sales")  # lists the prefix once
        relay.reset()
        full = rows(backend, "SELECT sum(amount) AS s FROM sales")
        full_bytes = relay.received
        relay.reset()
        few = rows(backend, "SELECT sum(amount) AS s FROM sales WHERE id < 30")
        few_bytes = relay.received
    assert full[0]["s"] == pytest.approx(sum(s3_sales.column("amount").to_pylist()))
    assert few[0]["s"] == pytest.approx(
        sum(a for i, a in enumerate(s3_sales.column("amount").to_pylist()) if i < 30)
    )
    assert few_bytes < full_bytes / 2, (few_bytes, full_bytes)


def test_s3_view_typed_files_filter_on_text_and_still_skip_row_groups(s3, s3_settings, tmp_path_factory):
    """Files written with string_view (arrow-rs, pyiceberg): text filters work; other filters still prune."""
    relay = s3[1]
    data = sales_table()
    local = tmp_path_factory.mktemp("s3views")
    for region in ("eu", "us", "apac"):  # pyarrow's partitioned writer cannot take string_view: one file each
        part = data.filter(pa.compute.equal(data.column("region"), region)).drop_columns(["region"])
        notes = pa.array([f"note {i % 7}" for i in part.column("id").to_pylist()], pa.string_view())
        (local / f"region={region}").mkdir()
        pq.write_table(part.append_column("note", notes), local / f"region={region}" / "part.parquet",
                       row_group_size=100)
    upload_dir(s3, local, "files/views")
    spec = s3_source(
        "files",
        s3_settings,
        s3_endpoint=f"127.0.0.1:{relay.port}",
        tables=[{"name": "sales", "location": f"s3://{BUCKET}/files/views/", "hive_partitioning": True}],
    )
    with FilesBackend(spec) as backend:
        assert rows(backend, "SELECT count(*) AS n FROM sales WHERE note = 'note 3'") == [
            {"n": sum(1 for i in range(data.num_rows) if i % 7 == 3)}
        ]
        assert rows(backend, "SELECT count(*) AS n FROM sales WHERE note LIKE 'note 1%' AND region = 'eu'") == [
            {"n": sum(1 for i in range(data.num_rows) if i % 7 == 1 and i % 3 == 0)}
        ]
        relay.reset()
        rows(backend, "SELECT sum(amount) AS s, max(note) AS m FROM sales")
        full_bytes = relay.received
        relay.reset()
        few = rows(backend, "SELECT sum(amount) AS s, max(note) AS m FROM sales WHERE id < 30")
        few_bytes = relay.received
    assert few[0]["m"] == "note 6"
    assert few_bytes < full_bytes / 2, (few_bytes, full_bytes)


def test_wide_decimals_are_readable(tmp_path):
    """DuckDB's DECIMAL stops at 38 digits: decimal256 up to 38 reads exactly, wider as double (not a failure)."""
    import decimal

    path = tmp_path / "wide.parquet"
    narrow, wide = decimal.Decimal("1234567890.12"), decimal.Decimal("12345678901234567890123456789012345678.91")
    pq.write_table(
        pa.table({"n": pa.array([narrow], pa.decimal256(20, 2)), "w": pa.array([wide], pa.decimal256(40, 2))}), path
    )
    with FilesBackend(source("files", tables=[{"name": "t", "location": str(path)}])) as backend:
        got = run(backend, "SELECT n, w FROM t", timeout_seconds=LIMITS.timeout_seconds)
    assert got.schema.field("n").type == pa.decimal128(20, 2) and got.column("n")[0].as_py() == narrow
    assert got.schema.field("w").type == pa.float64() and got.column("w")[0].as_py() == pytest.approx(float(wide))


def test_nanosecond_times_are_selected_and_filtered_through_a_cast(tmp_path):
    """DuckDB 1.5 reads time64[ns] as TIME_NS and cannot push a filter on it: the README's cast works."""
    import datetime as dt

    path = tmp_path / "times.parquet"
    pq.write_table(pa.table({"t": pa.array([1_000_005_000, None], pa.time64("ns"))}), path)
    with FilesBackend(source("files", tables=[{"name": "t", "location": str(path)}])) as backend:
        assert rows(backend, "SELECT t FROM t ORDER BY t") == [{"t": dt.time(0, 0, 1, 5)}, {"t": None}]
        execution = backend.execute(plan_for(backend, "SELECT count(*) AS n FROM t WHERE cast(t AS time) = ?"),
                                    [[dt.time(0, 0, 1, 5)]], LIMITS)
        assert execution.reader.read_all().to_pylist() == [{"n": 1}]
        execution.close()


def test_s3_wrong_bucket_is_named(s3, s3_settings, s3_sales):
    wrong_bucket = s3_source("files", s3_settings, tables=[{"name": "t", "location": "s3://no-such-bucket/x/"}])
    with (
        FilesBackend(wrong_bucket) as backend,
        pytest.raises((NotFoundError, BackendUnavailableError)) as info,
    ):
        rows(backend, "SELECT * FROM t")
    assert info.value.details["source"] == "lake" and "'t'" in info.value.message
    assert "bucket 'no-such-bucket' does not exist" in info.value.message


def test_azure_blob_parquet(azure):
    emulator, filesystem = azure
    data = sales_table(300)
    pq.write_table(data, "lake/sales/part-0.parquet", filesystem=filesystem)
    spec = azure_source("files", emulator, tables=[{"name": "sales", "location": "az://lake/sales/"}])
    with FilesBackend(spec) as backend:
        got = rows(backend, "SELECT count(*) AS n, sum(amount) AS s FROM sales WHERE region = 'eu'")
    eu = [r["amount"] for r in data.to_pylist() if r["region"] == "eu"]
    assert got == [{"n": len(eu), "s": pytest.approx(sum(eu))}]


def test_azure_wrong_account_key_is_unavailable_and_secret_free(azure):
    emulator, filesystem = azure
    pq.write_table(sales_table(10), "lake/small/part-0.parquet", filesystem=filesystem)
    bad_key = "A" * 86 + "=="
    spec = azure_source("files", emulator, key=bad_key, tables=[{"name": "small", "location": "az://lake/small/"}])
    with FilesBackend(spec) as backend, pytest.raises((BackendUnavailableError, NotFoundError)) as info:
        rows(backend, "SELECT * FROM small")
    assert bad_key not in info.value.message
    assert info.value.details["source"] == "lake"


def test_gcs_parquet_anonymous(gcs):
    emulator, filesystem = gcs
    data = sales_table(300)
    pq.write_table(data, f"{BUCKET}/sales/part-0.parquet", filesystem=filesystem)
    spec = source(
        "files",
        gcs_endpoint=emulator.endpoint,
        gcs_anonymous=True,
        tables=[{"name": "sales", "location": f"gs://{BUCKET}/sales/"}],
    )
    with FilesBackend(spec) as backend:
        got = rows(backend, "SELECT max(id) AS m, count(*) AS n FROM sales")
    assert got == [{"m": 299, "n": 300}]



def test_required_parquet_columns_are_reported_not_null(tmp_path, tpch_dir):
    """tpchgen-cli writes every TPC-H column as required: the table's metadata says NOT NULL, as the file does."""
    with FilesBackend(source("files", tables=[{"name": "nation", "location": str(tpch_dir / "nation.parquet")}])) as b:
        schema = b.table_schema("main", "nation")
    stored = pq.read_schema(tpch_dir / "nation.parquet")
    assert [(f.name, f.nullable) for f in schema] == [(f.name, f.nullable) for f in stored]
    assert not schema.field("n_nationkey").nullable


@pytest.fixture(scope="module")
def evolving(tmp_path_factory):
    """Files written over time: a column added later, an integer column written narrower, hive partitions."""
    root = tmp_path_factory.mktemp("evolving")
    for year, table in (
        (2023, pa.table({"id": [1, 2], "amount": [1.5, 2.5]})),
        (2024, pa.table({"id": [3], "amount": [3.5], "region": ["EU"]})),
        (2025, pa.table({"id": pa.array([4], pa.int32()), "region": [None], "amount": [4.5]})),
    ):
        (root / f"year={year}").mkdir()
        pq.write_table(table, root / f"year={year}" / "part-0.parquet")
    return root


@pytest.mark.parametrize("united", [True, False])
@pytest.mark.parametrize("sql", ["SELECT * FROM sales ORDER BY id", "SELECT count(*) AS n FROM sales WHERE amount > 2",
                                 "SELECT id, year FROM sales WHERE year >= 2024 ORDER BY id"])
def test_files_written_over_time_read_as_duckdb_reads_them(evolving, sql, united):
    """``union_by_name`` as DuckDB's: every file's columns; without it, the first file's, as DuckDB's default."""
    spec = source("files", tables=[{"name": "sales", "location": str(evolving), "hive_partitioning": True,
                                    "union_by_name": united}])
    with FilesBackend(spec) as backend:
        got = run(backend, sql)
    with duckdb.connect() as con:
        con.execute(f"CREATE VIEW sales AS SELECT * FROM read_parquet('{evolving}/*/*.parquet', "
                    f"hive_partitioning = true, union_by_name = {str(united).lower()})")
        expected = con.execute(sql).to_arrow_table()
    assert got.schema.equals(expected.schema), (got.schema, expected.schema)  # the hive key too: BIGINT
    assert got.to_pylist() == expected.to_pylist()


def test_a_column_added_later_is_filtered_on_only_when_united(evolving):
    def count(united: bool):
        spec = source("files", tables=[{"name": "sales", "location": str(evolving), "hive_partitioning": True,
                                        "union_by_name": united}])
        with FilesBackend(spec) as backend:
            return run(backend, "SELECT count(*) AS n FROM sales WHERE region = 'EU'").to_pylist()

    assert count(True) == [{"n": 1}]
    with pytest.raises(InvalidQueryError, match='column "region" not found'):
        count(False)
