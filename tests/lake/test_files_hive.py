"""Hive partition keys of files tables, compared with DuckDB's own ``read_parquet(..., hive_partitioning = true)``.

Data as users write it: pyarrow's ``write_dataset(..., partitioning_flavor="hive")``, DuckDB's
``COPY ... (PARTITION_BY ...)``, and folders made by hand with the awkward values (integers past int32, dates,
timestamps, decimals, leading zeros, NULL partitions, empty and URL-encoded values, a key also stored in the files).
Every answer (column names, Arrow types, values) is DuckDB's own on the same files.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from nexus_flight.backends.files import FilesBackend
from nexus_flight.backends.lake import PARTITION_KEY
from tests.lake.conftest import BUCKET, LIMITS, s3_source, source, upload_dir
from tests.support.results import plan_for, run

#: Hand-made tables: directories (``key=value/...``) with the rows of each file (ids unique per table).
HAND_MADE = {
    "years": {"year=2023": [1, 2], "year=2024": [3], "year=3000000000": [4]},
    "days": {"day=2024-01-31": [1], "day=2024-2-5": [2], "day=__HIVE_DEFAULT_PARTITION__": [3]},
    "stamps": {"ts=2024-01-31 10:00:00": [1], "ts=2024-02-01T08:30:00.5Z": [2], "ts=2024-03-01 00:00:00+02": [3]},
    "prices": {"price=1.5": [1], "price=2.25": [2], "price=10": [3]},
    "mixed": {"k=1": [1], "k=abc": [2]},
    "date_or_number": {"k=2024-01-31": [1], "k=5": [2]},
    "codes": {"zip=007": [1], "zip=010": [2], "zip=+5": [3]},
    "null_years": {"year=__HIVE_DEFAULT_PARTITION__": [1], "year=NULL": [2], "year=2024": [3]},
    "cities": {"city=New%20York": [1], "city=S%C3%A3o%20Paulo": [2], "city=a%2Fb": [3],
               "city=__HIVE_DEFAULT_PARTITION__": [4], "city=": [5], "city=Paris": [6]},
    "two_keys": {"year=2024/month=1": [1], "year=2024/month=2": [2], "year=2025/month=1": [3]},
}


def _write_hand_made(root: Path) -> None:
    for table, folders in HAND_MADE.items():
        for folder, ids in folders.items():
            (root / table / folder).mkdir(parents=True)
            pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "v": [f"r{i}" for i in ids]}),
                           root / table / folder / "part-0.parquet")
    # A key also stored in the files, with another type and value: the directory's wins, in the column's place.
    for year, ids in ((2024, [1, 2]), (2025, [3])):
        (root / "stored_key" / f"year={year}").mkdir(parents=True)
        pq.write_table(pa.table({"id": ids, "year": pa.array([1] * len(ids), pa.int32()), "v": ["x"] * len(ids)}),
                       root / "stored_key" / f"year={year}" / "part-0.parquet")


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hive")
    _write_hand_made(root)
    sales = pa.table({
        "id": pa.array(range(12), pa.int64()),
        "amount": [i * 1.5 for i in range(12)],
        "year": [2023, 2024, 2025] * 4,
        "day": [dt.date(2024, 1, 1) + dt.timedelta(days=i % 4) for i in range(12)],
        "region": ["eu", "New York", None, "us"] * 3,
    })
    ds.write_dataset(sales, root / "pyarrow_sales", format="parquet", partitioning=["year", "day", "region"],
                     partitioning_flavor="hive")
    with duckdb.connect() as con:
        con.register("sales", sales)
        con.execute(f"COPY sales TO '{root / 'duckdb_sales'}' (FORMAT parquet, PARTITION_BY (year, day, region))")
    return root


TABLES = [*HAND_MADE, "stored_key", "pyarrow_sales", "duckdb_sales"]


def _tables(root: Path) -> list[dict]:
    return [{"name": name, "location": str(root / name), "hive_partitioning": True} for name in TABLES]


@pytest.fixture(scope="module")
def backend(lake):
    with FilesBackend(source("files", tables=_tables(lake))) as files:
        yield files


def duckdb_answer(root: Path, sql: str, params=None) -> pa.Table:
    """DuckDB's own answer: each table a view over its files read by ``read_parquet``."""
    with duckdb.connect() as con:
        for name in TABLES:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{root / name}/**/*.parquet', "
                        "hive_partitioning = true)")
        return con.execute(sql, params).to_arrow_table()


def assert_same(got: pa.Table, expected: pa.Table) -> None:
    assert [(f.name, f.type) for f in got.schema] == [(f.name, f.type) for f in expected.schema]
    assert got.to_pylist() == expected.to_pylist()


def _assert_reads_as_duckdb(root: Path, table: dict, sql: str) -> None:
    """``sql`` (``{}`` for the table) on a hive-partitioned files table at ``root`` answers as DuckDB's own read."""
    options = ["hive_partitioning = true", *(["union_by_name = true"] if table.get("union_by_name") else [])]
    spec = source("files", tables=[{**table, "location": str(root), "hive_partitioning": True}])
    with FilesBackend(spec) as files, duckdb.connect() as con:
        got = run(files, sql.format(table["name"]), timeout_seconds=LIMITS.timeout_seconds)
        read = f"read_parquet('{root}/**/*.parquet', {', '.join(options)})"
        expected = con.execute(sql.format(read)).to_arrow_table()
    assert_same(got, expected)


def test_every_table_reads_as_duckdb_reads_it(backend, lake):
    differing = []
    for table in TABLES:
        sql = f"SELECT * FROM {table} ORDER BY id"
        got, expected = run(backend, sql), duckdb_answer(lake, sql)
        if got.schema != expected.schema or got.to_pylist() != expected.to_pylist():
            differing.append((table, got.schema, expected.schema, got.to_pylist(), expected.to_pylist()))
    assert not differing


def test_key_types_follow_duckdb(backend):
    """The types DuckDB gives (pyarrow's discovery said int32 for years and text for dates)."""
    def key_type(table: str, key: str) -> pa.DataType:
        return backend.table_schema("main", table).field(key).type

    assert key_type("years", "year") == pa.int64()
    assert key_type("days", "day") == pa.date32()
    assert key_type("stamps", "ts") == pa.timestamp("us")
    assert key_type("null_years", "year") == pa.int64()
    for table, key in (("prices", "price"), ("mixed", "k"), ("date_or_number", "k"), ("codes", "zip")):
        assert key_type(table, key) == pa.string()
    assert key_type("stored_key", "year") == pa.int64()


#: Text, date, timestamp and number predicates on keys, NULL partitions; each with its parameters, if any.
PREDICATES = [
    ("SELECT id, year FROM years WHERE year > 2147483647", None),
    ("SELECT id FROM days WHERE day >= DATE '2024-02-01' ORDER BY id", None),
    ("SELECT id, day FROM days WHERE day IS NULL", None),
    ("SELECT id FROM stamps WHERE ts < TIMESTAMP '2024-02-15 00:00:00' ORDER BY id", None),
    ("SELECT id, city FROM cities WHERE city = 'New York'", None),
    ("SELECT id, city FROM cities WHERE city LIKE 'S%' ORDER BY id", None),
    ("SELECT id FROM cities WHERE city IS NULL", None),
    ("SELECT id FROM cities WHERE city = ''", None),
    ("SELECT year, count(*) AS n FROM null_years GROUP BY year ORDER BY year NULLS FIRST", None),
    ("SELECT id FROM codes WHERE zip = '007'", None),
    ("SELECT id FROM prices WHERE price = '1.5'", None),
    ("SELECT id, month FROM two_keys WHERE year = 2024 AND month = 2", None),
    ("SELECT id, year FROM stored_key WHERE year = 2024 ORDER BY id", None),
    ("SELECT region, sum(amount) AS s FROM pyarrow_sales WHERE day = ? GROUP BY region ORDER BY region",
     [dt.date(2024, 1, 2)]),
    ("SELECT id, region FROM duckdb_sales WHERE year = ? AND region IS NOT NULL ORDER BY id", [2024]),
    ("SELECT id FROM duckdb_sales WHERE region = ? ORDER BY id", ["New York"]),
    ("SELECT id FROM pyarrow_sales WHERE region IS NULL ORDER BY id", None),
]


def test_predicates_on_keys_answer_as_duckdb(backend, lake):
    differing = []
    for sql, params in PREDICATES:
        got = run(backend, sql, [params] if params else None, timeout_seconds=LIMITS.timeout_seconds)
        expected = duckdb_answer(lake, sql, params)
        if got.schema != expected.schema or got.to_pylist() != expected.to_pylist():
            differing.append((sql, got.schema, expected.schema, got.to_pylist(), expected.to_pylist()))
    assert not differing


def test_partition_columns_and_their_place(backend):
    """Keys follow the files' columns in name order; a key stored in the files keeps the file column's place."""
    assert backend.partition_columns("two_keys") == ["month", "year"]
    assert backend.partition_columns("pyarrow_sales") == ["day", "region", "year"]
    schema = backend.table_schema("main", "stored_key")
    assert schema.names == ["id", "year", "v"] and backend.partition_columns("stored_key") == ["year"]
    assert schema.field("year").metadata == {PARTITION_KEY: b"true"} and schema.field("v").metadata is None


def test_a_filter_on_a_key_skips_the_other_partitions_files(lake, tmp_path):
    """A damaged file in a partition the filter excludes is never opened (DuckDB's reader skips it too)."""
    root = tmp_path / "damaged"
    for year in (2024, 2025):
        (root / f"year={year}").mkdir(parents=True)
        pq.write_table(pa.table({"id": [year]}), root / f"year={year}" / "part-0.parquet")
    (root / "year=2026").mkdir()
    (root / "year=2026" / "part-0.parquet").write_bytes(b"PAR1 not a parquet file")
    _assert_reads_as_duckdb(root, {"name": "damaged"}, "SELECT id, year FROM {} WHERE year = 2025")


def test_union_by_name_places_the_keys_as_duckdb(lake):
    """``union_by_name``: a key stored in only some files, and columns added later, as DuckDB unites them."""
    root = lake / "evolving_keys"
    for year, table in ((2023, pa.table({"id": [1]})), (2024, pa.table({"id": [2], "year": pa.array([0], pa.int16()),
                                                                             "note": ["n"]}))):
        (root / f"year={year}").mkdir(parents=True)
        pq.write_table(table, root / f"year={year}" / "part-0.parquet")
    _assert_reads_as_duckdb(root, {"name": "evolving_keys", "union_by_name": True}, "SELECT * FROM {} ORDER BY id")


def test_file_groups_carry_each_files_keys(backend, lake):
    """A scan split into groups of files (one endpoint each): together they answer as DuckDB does."""
    sql = "SELECT id, year, day, region FROM duckdb_sales WHERE day > DATE '2024-01-01'"
    parts = backend.split(plan_for(backend, sql), 4)
    assert len(parts) == 4
    tables = []
    for part in parts:
        execution = backend.execute(part, None, LIMITS)
        tables.append(execution.reader.read_all())
        execution.close()
    got = pa.concat_tables(tables).sort_by("id")
    assert_same(got, duckdb_answer(lake, sql + " ORDER BY id"))


def test_glob_and_csv_tables_type_keys_as_duckdb(lake, tmp_path):
    """A glob location, and CSV files (``read_csv``'s keys are typed by the same rules)."""
    root = tmp_path / "csv"
    for day, region in (("2024-01-31", "eu"), ("2024-02-01", "New%20York")):
        folder = root / f"day={day}" / f"region={region}"
        folder.mkdir(parents=True)
        pacsv.write_csv(pa.table({"id": [len(day) + len(region)]}), folder / "data.csv")
    spec = source("files", tables=[
        {"name": "by_glob", "location": str(lake / "years" / "*" / "*.parquet"), "hive_partitioning": True},
        {"name": "csv_keys", "location": str(root), "format": "csv", "hive_partitioning": True},
    ])
    with FilesBackend(spec) as files, duckdb.connect() as con:
        glob = run(files, "SELECT year, id FROM by_glob ORDER BY id", timeout_seconds=LIMITS.timeout_seconds)
        assert_same(glob, con.execute(f"SELECT year, id FROM read_parquet('{lake}/years/*/*.parquet', "
                                      "hive_partitioning = true) ORDER BY id").to_arrow_table())
        csv = run(files, "SELECT day, region FROM csv_keys WHERE day < DATE '2024-02-01' OR region = 'New York' "
                  "ORDER BY day", timeout_seconds=LIMITS.timeout_seconds)
        assert_same(csv, con.execute(f"SELECT day, region FROM read_csv('{root}/*/*/*.csv', hive_partitioning = true) "
                                     "WHERE day < DATE '2024-02-01' OR region = 'New York' "
                                     "ORDER BY day").to_arrow_table())


def test_s3_keys_are_typed_and_prune_as_on_disk(s3, s3_settings, lake):
    """The same files on the S3 emulator: DuckDB's answer on the local copy, and fewer bytes for one partition."""
    relay = s3[1]
    upload_dir(s3, lake / "duckdb_sales", "hive/duckdb_sales")
    spec = s3_source("files", s3_settings, s3_endpoint=f"127.0.0.1:{relay.port}", tables=[
        {"name": "duckdb_sales", "location": f"s3://{BUCKET}/hive/duckdb_sales/", "hive_partitioning": True},
    ])
    sql = "SELECT id, year, day, region FROM duckdb_sales WHERE year = 2024 ORDER BY id"
    with FilesBackend(spec) as files:
        run(files, "SELECT count(*) FROM duckdb_sales", timeout_seconds=LIMITS.timeout_seconds)
        relay.reset()
        run(files, "SELECT sum(amount) FROM duckdb_sales", timeout_seconds=LIMITS.timeout_seconds)
        every_file = relay.received
        relay.reset()
        got = run(files, sql, timeout_seconds=LIMITS.timeout_seconds)
        one_year = relay.received
        assert files.partition_columns("duckdb_sales") == ["day", "region", "year"]
    assert_same(got, duckdb_answer(lake, sql))
    assert one_year < every_file / 2, (one_year, every_file)


#: Directory values, alone or together, whose key type and value DuckDB's strict casts decide (no ``/``: a folder).
SPELLINGS = [
    ["0"], ["-0"], ["-05"], ["007"], ["+5"], ["5.0"], ["1e3"], ["1_000"], ["0x1F"], ["0b11"], [" 5"], ["5 "],
    ["9223372036854775807"], ["9223372036854775808"], ["-9223372036854775808"], ["20240105"],
    ["2024-01-31"], ["2024-1-5"], ["24-01-01"], ["1-1-1"], ["2024 01 05"], ["2024.01.05"], ["2024-02-30"],
    ["2024-01-01 "], [" 2024-01-01"], ["2024-01-01x"], ["2024-01-01 (BC)"], ["-2024-01-01"], ["epoch"], ["infinity"],
    ["2024-01-01 10"], ["2024-01-01 10:00"], ["2024-01-01 00:00:00"], ["2024-01-01T10:00:00Z"], ["2024-01-01t10:00"],
    ["2024-01-01 10:00:00+02"], ["2024-01-01 10:00:00-05:30"], ["2024-01-01 10:00:00 UTC"], ["2024-01-01 10:00 CET"],
    ["2024-01-01 10:00:00.123456789"], ["2024-01-01 25:00:00"], ["2024-01-01 10%3A00%3A00"],
    ["NULL"], ["null"], ["__HIVE_DEFAULT_PARTITION__"], ["__hive_default_partition__"], ["N%55LL"], [""], ["-"],
    ["%41"], ["%E2%82%AC"], ["a+b"], ["%zz"], ["true"],
    ["1", "2024-01-01"], ["2024-01-01", "2024-01-01 10:00:00"], ["7", ""], ["7", "NULL"], ["NULL", "2024-01-01"],
    ["__HIVE_DEFAULT_PARTITION__", "x"], ["1", "1.5"],
]


def test_spellings_of_key_values_are_typed_and_read_as_duckdb(tmp_path):
    tables = []
    for number, values in enumerate(SPELLINGS):
        for index, value in enumerate(values):
            folder = tmp_path / f"t{number}" / f"k={value}"
            folder.mkdir(parents=True)
            pq.write_table(pa.table({"id": [index]}), folder / "part-0.parquet")
        tables.append({"name": f"t{number}", "location": str(tmp_path / f"t{number}"), "hive_partitioning": True})
    differing = []
    with FilesBackend(source("files", tables=tables)) as files, duckdb.connect() as con:
        for number, values in enumerate(SPELLINGS):
            sql = f"SELECT id, k FROM t{number} ORDER BY id"
            got = run(files, sql, timeout_seconds=LIMITS.timeout_seconds)
            con.execute(f"CREATE VIEW t{number} AS SELECT * FROM read_parquet('{tmp_path}/t{number}/*/*.parquet', "
                        "hive_partitioning = true)")
            expected = con.execute(sql).to_arrow_table()
            if not got.equals(expected):  # compared as Arrow: Python has no date for DuckDB's BC dates or infinity
                differing.append((values, got.schema.field("k").type, expected.schema.field("k").type))
    assert not differing


def test_through_flight_sql_the_keys_are_duckdbs(lake, tmp_path):
    """What a client reads through the gateway (ADBC Flight SQL): DuckDB's types and values, a parameter bound."""
    flightsql = pytest.importorskip("adbc_driver_flightsql.dbapi")
    from nexus_flight.core.settings import ServerSettings
    from nexus_flight.core.source import SourceSpec
    from nexus_flight.server.app.gateway import Gateway

    sources = [SourceSpec("hive", "files", {"tables": _tables(lake)})]
    gateway = Gateway(ServerSettings(port=0, data_dir=tmp_path, demo_scale=None), sources).start()
    sql = "SELECT id, year, day, region FROM {}duckdb_sales WHERE year = ? AND day < DATE '2024-01-04' ORDER BY id"
    try:
        with flightsql.connect(gateway.location, autocommit=True) as conn, conn.cursor() as cursor:
            cursor.execute(sql.format("hive.main."), parameters=[2024])
            got = cursor.fetch_arrow_table()
            schema = conn.adbc_get_table_schema("duckdb_sales", catalog_filter="hive", db_schema_filter="main")
    finally:
        gateway.shutdown()
    assert_same(got, duckdb_answer(lake, sql.format(""), [2024]))
    assert [(f.name, f.type) for f in schema][-3:] == [("day", pa.date32()), ("region", pa.string()),
                                                       ("year", pa.int64())]
