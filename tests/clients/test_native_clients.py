"""The Java FlightSqlClient, Go's flightsql.Client and Rust's arrow-flight client against the gateway.

Each client runs every scenario of tests/clients/scenarios.py in one process (one JVM for Java); each answer is then
compared, schema and values, with the same request through ADBC (statements) or raw pyarrow.flight (metadata).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from tests.clients import scenarios as sc
from tests.clients import toolchain
from tests.support import flightsql_raw as raw
from tests.support.services import wait_until

ALL = sc.scenarios("grpc://unused", "grpc+tls://unused", Path("unused"))

#: tonic reports its own client-side deadline as CANCELLED "Timeout expired" (tonic 0.14 src/status.rs,
#: ``Status::from_error`` on ``TimeoutExpired``) unless the server's DEADLINE_EXCEEDED arrives first; the server
#: stops the query either way (checked below).
CLIENT_ERRORS = {("rust", "timeout"): [("CANCELLED", "Timeout expired"), ("DEADLINE_EXCEEDED", "")]}


def _command(client: str) -> list[str]:
    if client == "java":
        return toolchain.java_command("FlightSqlClientScenarios")
    return toolchain.native_command(toolchain.GO_CLIENT if client == "go" else toolchain.RUST_CLIENT)


@pytest.fixture(scope="module", params=["java", "go", "rust"])
def client(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def run(client, clients_gateway, tls_gateway, pki, tmp_path_factory, query_events):
    """Run every scenario once with this client: (records by name, output directory, the scenarios it ran).

    ``query_events`` is cut to what the gateway finished during this run.
    """
    command = _command(client)
    del query_events[:]
    out = tmp_path_factory.mktemp(f"{client}-results")
    tls_uri = f"grpc+tls://127.0.0.1:{tls_gateway.port}"
    chosen = sc.write_file(out / "scenarios.tsv", sc.scenarios(clients_gateway.location, tls_uri, pki["ca"]), client)
    records = toolchain.run_lines([*command, str(out / "scenarios.tsv"), str(out)])
    return records, out, {s.name: s for s in chosen}


@pytest.fixture(scope="module")
def adbc_reference(clients_gateway):
    """The same statement through ADBC: the answer each client must match."""
    import adbc_driver_flightsql.dbapi as flightsql

    conn = flightsql.connect(clients_gateway.location, autocommit=True)
    cache: dict[str, pa.Table] = {}

    def answer(sql: str, params: tuple) -> pa.Table:
        key = repr((sql, params))
        if key not in cache:
            with conn.cursor() as cur:
                cur.execute(sql, params or None)
                cache[key] = cur.fetch_arrow_table()
        return cache[key]

    yield answer
    conn.close()


def _optional(value: str) -> str | None:
    return None if value == sc.NULL else value


def _metadata_command(s: sc.Scenario):
    a = [_optional(v) for v in s.args]
    if s.kind == "catalogs":
        return pb.CommandGetCatalogs()
    if s.kind == "schemas":
        return pb.CommandGetDbSchemas(catalog=a[0], db_schema_filter_pattern=a[1])
    if s.kind == "tables":
        return pb.CommandGetTables(catalog=a[0], db_schema_filter_pattern=a[1], table_name_filter_pattern=a[2],
                                   table_types=a[3].split(",") if a[3] else [], include_schema=a[4] == "true")
    if s.kind == "table_types":
        return pb.CommandGetTableTypes()
    if s.kind in ("primary_keys", "exported_keys", "imported_keys"):
        cls = {"primary_keys": pb.CommandGetPrimaryKeys, "exported_keys": pb.CommandGetExportedKeys,
               "imported_keys": pb.CommandGetImportedKeys}[s.kind]
        return cls(catalog=a[0], db_schema=a[1], table=a[2])
    if s.kind == "xdbc_type_info":
        return pb.CommandGetXdbcTypeInfo(data_type=int(a[0])) if a else pb.CommandGetXdbcTypeInfo()
    if s.kind == "sql_info":
        return pb.CommandGetSqlInfo(info=[int(v) for v in a])
    raise AssertionError(f"no metadata command for {s.kind}")


def _params():
    return [pytest.param(s, marks=pytest.mark.matrix(s.capability), id=s.name) for s in ALL]


@pytest.mark.parametrize("scenario", _params())
def test_scenario(client, run, scenario, adbc_reference, clients_gateway):
    records, out, ran = run
    if scenario.name not in ran:
        pytest.skip(f"{client} has no {scenario.capability} (tests/clients/matrix.py LIMITATIONS)")
    record = records.get(scenario.name)
    assert record is not None, f"{client} printed nothing for {scenario.name}"
    if scenario.error is not None:
        expected = CLIENT_ERRORS.get((client, scenario.name), [scenario.error])
        assert not record["ok"], f"{scenario.name} succeeded; expected {expected}"
        assert any(sc.grpc_code(record["code"]) == code and fragment in record["message"]
                   for code, fragment in expected), record
        assert "Traceback" not in record["message"], record
        return
    assert record["ok"], record
    if scenario.kind == "connect":
        return
    if scenario.kind == "session_options":
        assert record["value"] == scenario.args[1]
        return
    got = pa.ipc.open_stream(pa.memory_map(str(out / f"{scenario.name}.arrows"))).read_all()
    if scenario.reference is not None:
        expected = adbc_reference(*scenario.reference)
    else:
        with flight.connect(clients_gateway.location) as reference_client:
            _, expected = raw.info_and_table(reference_client, _metadata_command(scenario))
    assert got.schema.equals(expected.schema), f"{got.schema}\n!=\n{expected.schema}"
    assert got.to_pylist() == expected.to_pylist()
    assert got.num_rows == record["rows"]


@pytest.mark.matrix("cancel")
def test_cancelled_query_stopped_on_the_server(client, run, query_events):
    """The cancelled query (minutes of work) ended on the server before the client's next query ran."""
    assert "cancelled" in sc.stopped_before(query_events, sc.AFTER_STOP)


@pytest.mark.matrix("timeout")
def test_timed_out_query_stopped_on_the_server(client, run, query_events, clients_gateway):
    """Both slow queries, cancelled and timed out, ended on the server while the client was still connected."""
    statuses = sc.stopped_before(query_events, sc.AFTER_STOP)
    assert len(statuses) == 2 and set(statuses) <= {"cancelled", "timeout"}, statuses
    assert wait_until(lambda: clients_gateway.service.running_count() == 0, 15)
