"""Other real clients: flightsql-dbapi (Superset's path) and ADBC's prepared re-execution."""

from __future__ import annotations

import pytest
from flightsql import FlightSQLClient
from flightsql import connect as dbapi_connect


@pytest.fixture
def dbapi(gateway):
    client = FlightSQLClient(host="127.0.0.1", port=gateway.port, insecure=True)
    conn = dbapi_connect(client)
    yield conn
    conn.close()


def test_flightsql_dbapi_select(dbapi):
    cur = dbapi.cursor()
    cur.execute("SELECT r_regionkey, r_name FROM region ORDER BY r_regionkey")
    assert list(cur.fetchall()[0]) == [0, "AFRICA"]


def test_flightsql_dbapi_dense_union_parameters(dbapi):
    cur = dbapi.cursor()
    cur.execute("SELECT n_name FROM nation WHERE n_nationkey = ? AND n_name <> ?", (3, "x"))
    assert [list(r) for r in cur.fetchall()] == [["CANADA"]]


def test_flightsql_client_metadata(gateway):
    client = FlightSQLClient(host="127.0.0.1", port=gateway.port, insecure=True)
    info = client.get_sql_info([0, 2, 3, 504])
    table = client.do_get(info.endpoints[0].ticket).read_all()
    assert table.num_rows == 4
    tables = client.do_get(client.get_tables(include_schema=True).endpoints[0].ticket).read_all()
    assert "lineitem" in tables.column("table_name").to_pylist()


def test_adbc_reexecutes_a_prepared_statement_with_new_parameters(adbc):
    cur = adbc.cursor()
    names = []
    for key in (1, 2, 3):
        cur.execute("SELECT n_name FROM nation WHERE n_nationkey = ?", (key,))
        names.append(cur.fetchone()[0])
    assert names == ["ARGENTINA", "BRAZIL", "CANADA"]


def test_parameter_rows_run_once_each_and_concatenate(gateway):
    """Several parameter rows bound in one DoPut run once each; results are concatenated in order."""
    import pyarrow as pa
    import pyarrow.flight as flight
    from flightsql import flightsql_pb2 as pb

    from tests.support import flightsql_raw as raw

    with flight.connect(gateway.location) as client:
        prepared = raw.prepare(client, "SELECT n_name FROM nation WHERE n_nationkey = ?")
        handle = prepared.prepared_statement_handle
        schema = raw.read_schema(prepared.parameter_schema)
        descriptor = raw.descriptor(pb.CommandPreparedStatementQuery(prepared_statement_handle=handle))
        writer, _ = client.do_put(descriptor, schema)
        writer.write_batch(pa.record_batch([pa.array([5, 1, 7], schema.field(0).type)], schema=schema))
        writer.done_writing()
        writer.close()
        _, table = raw.info_and_table(client, pb.CommandPreparedStatementQuery(prepared_statement_handle=handle))
    assert table.column("n_name").to_pylist() == ["ETHIOPIA", "ARGENTINA", "GERMANY"]
