"""Metadata commands: exact schemas (ADBC compares them whole), filters, and ADBC's metadata calls."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.server.flight import metadata
from tests.support import flightsql_raw as raw


@pytest.fixture
def client(gateway):
    with flight.connect(gateway.location) as c:
        yield c


def test_catalogs(client):
    info, table = raw.info_and_table(client, pb.CommandGetCatalogs())
    assert table.schema.equals(metadata.CATALOGS) and info.schema.equals(metadata.CATALOGS)
    assert table.column("catalog_name").to_pylist() == ["demo"]


def test_db_schemas_with_filter(client):
    _, table = raw.info_and_table(client, pb.CommandGetDbSchemas(catalog="demo", db_schema_filter_pattern="ma%"))
    assert table.schema.equals(metadata.DB_SCHEMAS)
    assert table.to_pylist() == [{"catalog_name": "demo", "db_schema_name": "main"}]
    _, none = raw.info_and_table(client, pb.CommandGetDbSchemas(catalog=""))
    assert none.num_rows == 0  # "" means objects without a catalog


@pytest.mark.parametrize("include_schema", [False, True])
def test_tables_shape_follows_include_schema(client, include_schema):
    cmd = pb.CommandGetTables(table_name_filter_pattern="n_tion", include_schema=include_schema)
    info, table = raw.info_and_table(client, cmd)
    expected = metadata.TABLES_WITH_SCHEMA if include_schema else metadata.TABLES
    assert info.schema.equals(expected) and table.schema.equals(expected)
    assert table.num_columns == (5 if include_schema else 4)
    assert table.column("table_name").to_pylist() == ["nation"]
    if include_schema:
        schema = raw.read_schema(table.column("table_schema")[0].as_py())
        assert schema.names == ["n_nationkey", "n_name", "n_regionkey", "n_comment"]
        meta = schema.field("n_name").metadata
        assert meta[b"ARROW:FLIGHT:SQL:TABLE_NAME"] == b"nation"
        assert meta[b"ARROW:FLIGHT:SQL:SCHEMA_NAME"] == meta[b"ARROW:FLIGHT:SQL:DB_SCHEMA_NAME"] == b"main"
        # flightsql-dbapi reads it as a stream
        assert pa.ipc.open_stream(table.column("table_schema")[0].as_py()).schema.equals(schema)


def test_tables_type_filter_and_patterns(client):
    _, views = raw.info_and_table(client, pb.CommandGetTables(table_types=["VIEW"]))
    assert views.num_rows == 0
    _, tables = raw.info_and_table(client, pb.CommandGetTables(table_types=["TABLE"], table_name_filter_pattern="%e%"))
    names = tables.column("table_name").to_pylist()
    assert names == sorted(names) and "lineitem" in names and "nation" not in names


def test_table_types(client):
    _, table = raw.info_and_table(client, pb.CommandGetTableTypes())
    assert table.schema.equals(metadata.TABLE_TYPES)
    assert table.column("table_type").to_pylist() == ["TABLE", "VIEW"]


def test_primary_keys(client):
    _, table = raw.info_and_table(client, pb.CommandGetPrimaryKeys(table="partsupp"))
    assert table.schema.equals(metadata.PRIMARY_KEYS)
    assert [(r["column_name"], r["key_sequence"]) for r in table.to_pylist()] == [("ps_partkey", 1), ("ps_suppkey", 2)]


@pytest.mark.parametrize("cmd", [
    pb.CommandGetExportedKeys(table="nation"),
    pb.CommandGetImportedKeys(table="nation"),
    pb.CommandGetCrossReference(pk_table="nation", fk_table="customer"),
])
def test_foreign_key_commands_have_the_spec_schema(client, cmd):
    info, table = raw.info_and_table(client, cmd)
    assert info.schema.equals(metadata.FOREIGN_KEYS) and table.schema.equals(metadata.FOREIGN_KEYS)
    assert table.schema.field("update_rule").type == pa.uint8()


def test_xdbc_type_info_sorted(client):
    from nexus_flight.server.flight.xdbc import SCHEMA

    _, table = raw.info_and_table(client, pb.CommandGetXdbcTypeInfo())
    assert table.schema.equals(SCHEMA)
    keys = list(zip(table.column("data_type").to_pylist(), table.column("type_name").to_pylist(), strict=True))
    assert keys == sorted(keys) and len(keys) >= 10
    _, only_int = raw.info_and_table(client, pb.CommandGetXdbcTypeInfo(data_type=4))
    assert only_int.column("type_name").to_pylist() == ["INTEGER"]


def test_adbc_get_objects_and_table_schema(adbc):
    objects = adbc.adbc_get_objects().read_all().to_pylist()
    assert [c["catalog_name"] for c in objects] == ["demo"]
    tables = {t["table_name"]: t for s in objects[0]["catalog_db_schemas"] for t in s["db_schema_tables"]}
    assert set(tables) == {"customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"}
    columns = [c["column_name"] for c in tables["region"]["table_columns"]]
    assert columns == ["r_regionkey", "r_name", "r_comment"]
    shallow = adbc.adbc_get_objects(depth="tables").read_all().to_pylist()
    assert shallow[0]["catalog_db_schemas"][0]["db_schema_tables"]
    schema = adbc.adbc_get_table_schema("orders")
    assert schema.field("o_totalprice").type == pa.decimal128(15, 2)
    assert adbc.adbc_get_table_types() == ["TABLE", "VIEW"]


def test_result_schemas_carry_the_column_metadata_jdbc_reads(gateway):
    """Without PRECISION/SCALE the JDBC driver reports DECIMAL(0,0) for every decimal result column."""
    with flight.connect(gateway.location) as client:
        prepared = raw.prepare(client, "SELECT o_totalprice, o_orderkey, o_comment FROM orders LIMIT 1")
        for schema in (raw.read_schema(prepared.dataset_schema),
                       client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(
                           query="SELECT o_totalprice, o_orderkey, o_comment FROM orders LIMIT 1"))).schema):
            price, key, comment = (f.metadata for f in schema)
            assert price[b"ARROW:FLIGHT:SQL:PRECISION"] == b"15" and price[b"ARROW:FLIGHT:SQL:SCALE"] == b"2"
            assert price[b"ARROW:FLIGHT:SQL:TYPE_NAME"] == b"DECIMAL(15,2)"
            assert key[b"ARROW:FLIGHT:SQL:TYPE_NAME"] == b"BIGINT" and b"ARROW:FLIGHT:SQL:PRECISION" not in key
            assert comment[b"ARROW:FLIGHT:SQL:TYPE_NAME"] == b"VARCHAR"
            assert all(m[b"ARROW:FLIGHT:SQL:CATALOG_NAME"] == b"demo" for m in (price, key, comment))
