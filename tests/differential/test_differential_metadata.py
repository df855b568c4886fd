"""Table metadata: the gateway describes each column as the engine's own catalog does (type name, nullability).

Checked through ADBC's GetTables with schemas (``adbc_get_table_schema``, ``adbc_get_objects`` at column depth)
and GetXdbcTypeInfo, against information_schema / pg_attribute / pragma_table_info read with the engine's client.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from tests.support import flightsql_raw as raw

TYPE_NAME = b"ARROW:FLIGHT:SQL:TYPE_NAME"


def _tables(family) -> list[str]:
    return ["lineitem", family.zoo_table]


def _native(family, table: str):
    if family.native_columns is None:
        pytest.skip(f"{family.name} does not declare its engine's catalog yet")
    return family.native_columns(table)


def _table_schema(family, client, table: str) -> pa.Schema:
    if "table_metadata" in family.engine_cannot:
        pytest.skip(f"{family.name} itself cannot describe its tables: {family.engine_cannot['table_metadata']}")
    return client.adbc_get_table_schema(
        family.result_name(table), catalog_filter=family.catalog, db_schema_filter=family.schema or "main"
    )


@pytest.mark.parametrize("which", [0, 1], ids=["lineitem", "type_zoo"])
def test_columns_carry_the_engines_type_names_and_nullability(family, client, which):
    table = _tables(family)[which]
    expected = _native(family, table)
    schema = _table_schema(family, client, table)
    assert schema.names == [c.name for c in expected]
    wrong = {}
    for column, f in zip(expected, schema, strict=True):
        type_name = (f.metadata or {}).get(TYPE_NAME, b"").decode()
        if f.nullable != column.nullable:
            wrong[column.name] = f"nullable {f.nullable}, the engine says {column.nullable}"
        elif column.type_name is not None and type_name != column.type_name:
            wrong[column.name] = f"type name {type_name!r}, the engine says {column.type_name!r}"
        elif pa.types.is_decimal(f.type):
            precision = (f.metadata or {}).get(b"ARROW:FLIGHT:SQL:PRECISION", b"").decode()
            scale = (f.metadata or {}).get(b"ARROW:FLIGHT:SQL:SCALE", b"").decode()
            if (precision, scale) != (str(f.type.precision), str(f.type.scale)):
                wrong[column.name] = f"precision/scale {precision}/{scale} for {f.type}"
    assert not wrong


def test_get_objects_reports_the_same_columns(family, client):
    expected = _native(family, "lineitem")
    objects = client.adbc_get_objects(
        depth="columns", catalog_filter=family.catalog, table_name_filter="lineitem"
    ).read_all().to_pylist()
    tables = [t for s in objects[0]["catalog_db_schemas"] for t in s["db_schema_tables"] or []]
    [lineitem] = [t for t in tables if t["table_name"] == "lineitem"]
    # (The ADBC driver fills xdbc_type_name from the column metadata; it reports no nullability here.)
    got = [(c["column_name"], c["xdbc_type_name"]) for c in lineitem["table_columns"]]
    assert got == [(c.name, c.type_name or got[i][1]) for i, c in enumerate(expected)]


def test_table_schema_has_the_types_a_query_of_the_table_returns(family, client):
    schema = _table_schema(family, client, "lineitem")
    with client.cursor() as cur:
        cur.execute(family.for_gateway("select * from lineitem limit 5"))
        queried = cur.fetch_arrow_table().schema
    assert [f.type for f in schema] == [f.type for f in queried]


def test_xdbc_type_info_names_the_engines_types(family, family_gateway):
    """GetXdbcTypeInfo answers for the session's catalog (here the family's, the only one) in its own type names."""
    expected = _native(family, "lineitem")
    client = flight.FlightClient(family_gateway)
    try:
        _, table = raw.info_and_table(client, pb.CommandGetXdbcTypeInfo())
    finally:
        client.close()
    names = {name.lower() for name in table.column("type_name").to_pylist()}
    declared = {re.sub(r"\(.*\)|\[\]", "", c.type_name).strip().lower() for c in expected if c.type_name}
    assert declared <= names, f"missing: {sorted(declared - names)}"
