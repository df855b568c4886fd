"""Queries through the real ADBC Flight SQL driver return exactly what DuckDB in-process returns."""

from __future__ import annotations

import decimal
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from tests.support.plan_reads import record_plan_reads
from tests.validator.tpch import TPCH_QUERIES

TPCH = sorted((Path(__file__).parents[2] / "benchmarks" / "tpch").glob("q*.sql"))


@pytest.fixture(scope="module")
def local(demo_data_dir, tmp_path_factory):
    """DuckDB in-process on a copy of the demo database (one process may open a file with one configuration)."""
    copy = tmp_path_factory.mktemp("local") / "tpch.duckdb"
    shutil.copy(next(demo_data_dir.glob("tpch_sf0_01.duckdb")), copy)
    con = duckdb.connect(str(copy), read_only=True)
    yield con
    con.close()


@pytest.mark.parametrize("path", TPCH, ids=[p.stem for p in TPCH])
def test_tpch_query_matches_duckdb_in_process(adbc, local, path):
    sql = path.read_text()
    cur = adbc.cursor()
    cur.execute(sql)
    got = cur.fetch_arrow_table()
    expected = local.execute(sql).to_arrow_table()
    assert got.num_rows > 0
    assert got.equals(expected)


def test_plain_queries_are_served_on_duckdbs_reading_alone(adbc, local, monkeypatch):
    """TPC-H queries without qualified names are decided on DuckDB's reading alone: they reach DuckDB and answer
    as DuckDB in-process does, and nothing reads sqlglot's tree of them."""
    record = record_plan_reads(monkeypatch)
    numbers = (1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 14, 15, 16, 17, 18, 19, 20, 22)
    for number in numbers:
        sql = TPCH_QUERIES[number] + "-- decided on DuckDB's reading alone\n"
        cur = adbc.cursor()
        cur.execute(sql)
        assert cur.fetch_arrow_table().equals(local.execute(sql).to_arrow_table()), number
    assert record.decided == [True] * len(numbers) and record.reads == []


def test_every_tpch_table_is_queryable(adbc, local):
    cur = adbc.cursor()
    for table in ("customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"):
        cur.execute(f"SELECT count(*) FROM demo.main.{table}")
        assert cur.fetchone()[0] == local.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0


def test_empty_result_still_carries_its_schema(adbc):
    cur = adbc.cursor()
    cur.execute("SELECT n_name, n_nationkey FROM nation WHERE 1 = 0")
    table = cur.fetch_arrow_table()
    assert table.num_rows == 0
    assert table.schema.names == ["n_name", "n_nationkey"]
    assert table.schema.field("n_nationkey").type == pa.int64()


TYPE_QUERY = """
SELECT 1::TINYINT AS i8, 2::SMALLINT AS i16, 3::INTEGER AS i32, 4::BIGINT AS i64,
       255::UTINYINT AS u8, 65535::USMALLINT AS u16, 4294967295::UINTEGER AS u32, 18446744073709551615::UBIGINT AS u64,
       12.34::DECIMAL(10, 2) AS dec, 1.5::FLOAT AS f32, 2.5::DOUBLE AS f64,
       DATE '2024-02-29' AS d, TIME '13:14:15.123456' AS t,
       TIMESTAMP '2024-02-29 13:14:15.123456' AS ts, TIMESTAMPTZ '2024-02-29 13:14:15+02' AS tstz,
       'héllo wörld ✓ 数据' AS s, true AS b, '\\x00\\xff'::BLOB AS bin,
       [1, 2, NULL] AS lst, {'x': 1, 'y': 'z'} AS st, MAP {'k': 7} AS mp, NULL::INTEGER AS nul
"""


def test_types_round_trip(adbc):
    cur = adbc.cursor()
    cur.execute(TYPE_QUERY)
    table = cur.fetch_arrow_table()
    row = table.to_pylist()[0]
    types = {f.name: f.type for f in table.schema}
    assert types["i8"] == pa.int8() and types["i16"] == pa.int16() and types["i32"] == pa.int32()
    assert types["u8"] == pa.uint8() and types["u64"] == pa.uint64()
    assert types["dec"] == pa.decimal128(10, 2)
    assert types["ts"] == pa.timestamp("us") and types["tstz"].tz in ("UTC", "Etc/UTC")
    assert types["lst"] == pa.list_(pa.int32()) or pa.types.is_list(types["lst"])
    assert pa.types.is_struct(types["st"]) and pa.types.is_map(types["mp"])
    assert row["i64"] == 4 and row["u32"] == 4294967295 and row["u64"] == 18446744073709551615
    assert row["dec"] == decimal.Decimal("12.34")
    assert row["s"] == "héllo wörld ✓ 数据"
    assert row["bin"] == b"\x00\xff" and row["b"] is True
    assert row["lst"] == [1, 2, None] and row["st"] == {"x": 1, "y": "z"} and row["mp"] == [("k", 7)]
    assert row["nul"] is None
    assert str(row["d"]) == "2024-02-29" and str(row["t"]) == "13:14:15.123456"
    assert row["tstz"].isoformat().startswith("2024-02-29T11:14:15")


def test_enum_columns_arrive_as_strings_not_dictionaries(adbc):
    cur = adbc.cursor()
    cur.execute("SELECT CAST('b' AS ENUM('a', 'b')) AS e")
    table = cur.fetch_arrow_table()
    assert table.schema.field("e").type == pa.utf8()
    assert table.column("e").to_pylist() == ["b"]


def test_large_result_streams_in_bounded_batches(adbc, local):
    cur = adbc.cursor()
    cur.execute("SELECT * FROM lineitem ORDER BY l_orderkey, l_linenumber")
    reader = cur.fetch_record_batch()
    rows = 0
    for batch in reader:
        assert batch.nbytes < 16 * 1024 * 1024
        rows += batch.num_rows
    assert rows == local.execute("SELECT count(*) FROM lineitem").fetchone()[0]


def test_three_part_names_and_trailing_semicolon(adbc):
    cur = adbc.cursor()
    cur.execute("SELECT r_name FROM demo.main.region ORDER BY r_regionkey;")
    assert [r[0] for r in cur.fetchall()] == ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM nation a JOIN nation b ON a.n_nationkey = b.n_nationkey WHERE a.n_nationkey < 4",
        "SELECT a.n_name, b.n_name, a.n_name FROM nation a JOIN nation b ON a.n_regionkey = b.n_regionkey "
        "WHERE a.n_nationkey = 1 ORDER BY 2",
        "SELECT n_name AS name, r_name AS name FROM nation JOIN region ON n_regionkey = r_regionkey "
        "ORDER BY n_nationkey LIMIT 5",
    ],
    ids=["star-over-self-join", "same-column-twice", "same-alias-twice"],
)
def test_duplicate_column_names_come_back_as_duckdb_streams_them(adbc, local, sql):
    """Announced schema and stream agree, and both equal DuckDB's own answer (names repeated, not renamed)."""
    cur = adbc.cursor()
    cur.execute(sql)
    got = cur.fetch_arrow_table()
    expected = local.execute(sql).to_arrow_table()
    assert got.num_rows > 0
    assert got.schema.names == expected.schema.names
    assert got.equals(expected)
    assert cur.adbc_execute_schema(sql).names == expected.schema.names  # GetSchema announces the same


def test_duplicate_column_names_of_a_prepared_query_with_parameters(adbc, local):
    sql = "SELECT * FROM nation a JOIN nation b ON a.n_regionkey = b.n_regionkey WHERE a.n_nationkey < ? ORDER BY ALL"
    cur = adbc.cursor()
    cur.execute(sql, parameters=(3,))
    got = cur.fetch_arrow_table()
    expected = local.execute(sql, [3]).to_arrow_table()
    assert got.num_rows > 0
    assert got.schema.names == expected.schema.names
    assert got.equals(expected)
