"""Protocol-level behaviour with raw pyarrow.flight: SqlInfo typing, handshakes, writes, bad input.

The real JDBC, Java, Go and Rust clients run against the gateway in tests/clients; what stays here is what
they cannot show: exact wire forms, malformed input and header edge cases.
"""

from __future__ import annotations

import base64

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.server.flight import protocol
from nexus_flight.server.flight.protocol import flight as fpb
from nexus_flight.server.flight.protocol import sql as spb
from tests.support import flightsql_raw as raw

JDBC_LONG_IDS = [503, 505, 507, *range(541, 556), *range(557, 562), 562]
JDBC_INT_IDS = [8, 100, 101, 522, 525, 526, 528, 533, 534, 535, 538, 540, 564, 567, 568, 569, 570, 571]
JDBC_BOOL_IDS = [3, 4, 5, 9, 500, 501, 502, 506, 515, 516, *range(518, 522), 523, 524, 527, 532, 536, 537, 539,
                 556, 563, 565, 566, *range(572, 577)]
JDBC_STRING_IDS = [0, 1, 2, 504, 513, 514, 529, 530, 531]


@pytest.fixture
def client(gateway):
    with flight.connect(gateway.location) as c:
        yield c


class BasicHandshake(flight.ClientAuthHandler):
    """JDBC's Handshake: one empty request message, credentials in headers."""

    def authenticate(self, outgoing, incoming):
        outgoing.write(b"")

    def get_token(self):
        return b""


class HeaderCapture(flight.ClientMiddlewareFactory):
    def __init__(self):
        self.headers = []

    def start_call(self, info):
        factory = self

        class _M(flight.ClientMiddleware):
            def received_headers(self, headers):
                factory.headers.append(headers)

        return _M()


def test_sql_info_all_ids_have_the_member_clients_cast_to(client):
    _, table = raw.info_and_table(client, pb.CommandGetSqlInfo())
    assert table.schema.field("info_name").type == pa.uint32()
    codes = dict(zip(table.column("info_name").to_pylist(), table.column("value").chunk(0).type_codes.to_pylist(),
                     strict=True))
    assert set(codes) <= set(range(0, 10)) | {100, 101} | set(range(500, 577))
    assert all(codes[i] == 2 for i in JDBC_LONG_IDS)
    assert all(codes[i] == 3 for i in JDBC_INT_IDS)
    assert all(codes[i] == 1 for i in JDBC_BOOL_IDS)
    assert all(codes[i] == 0 for i in JDBC_STRING_IDS)
    assert all(codes[i] == 4 for i in range(508, 513)) and codes[517] == 5
    values = dict(zip(table.column("info_name").to_pylist(), table.column("value").to_pylist(), strict=True))
    assert values[3] is True and values[0] == "Nexus Flight" and values[8] == 0


def test_sql_info_subset_for_sqlalchemy(client):
    _, table = raw.info_and_table(client, pb.CommandGetSqlInfo(info=[0, 2, 3, 504]))
    assert dict(zip(table.column("info_name").to_pylist(), table.column("value").to_pylist(), strict=True)) == {
        0: "Nexus Flight", 2: pa.__version__, 3: True, 504: '"'}


def test_adbc_get_info_reports_this_server(adbc):
    info = adbc.adbc_get_info()
    assert info["vendor_name"] == "Nexus Flight" and info["vendor_arrow_version"] == pa.__version__


def _jdbc_connect(location, user="alice", password="secret1", padded=True):
    capture = HeaderCapture()
    client = flight.FlightClient(location, middleware=[capture])
    encoded = base64.b64encode(f"{user}:{password}".encode())
    if not padded:
        encoded = encoded.rstrip(b"=")
    client.authenticate(BasicHandshake(),
                        options=flight.FlightCallOptions(headers=[(b"authorization", b"Basic " + encoded)]))
    bearer = [h for hs in capture.headers for k, v in hs.items() if k == "authorization" for h in v]
    return client, bearer


@pytest.mark.parametrize("padded", [True, False])
def test_handshake_returns_a_bearer_token(gateway, padded):
    client, bearer = _jdbc_connect(gateway.location, padded=padded)
    assert bearer and bearer[0].startswith("Bearer ")
    options = flight.FlightCallOptions(headers=[(b"authorization", bearer[0].encode()), (b"applicationname", b"x"),
                                                (b"schema", b"y"), (b"foo", b"z" * 4000)])
    _, table = raw.info_and_table(client, pb.CommandGetCatalogs(), options)
    assert table.num_rows == 1
    client.close()


def test_pyarrow_basic_token_and_bearer_none(gateway):
    with flight.connect(gateway.location) as client:
        header = client.authenticate_basic_token("bob", "pw")
        assert header[0] == b"authorization" and header[1].startswith(b"Bearer ")
        options = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer None")])  # flightsql-dbapi anon
        _, table = raw.info_and_table(client, pb.CommandGetCatalogs(), options)
        assert table.num_rows == 1


def test_parameters_typed_by_the_server_and_the_handle_kept(gateway):
    """The wire details under every driver's prepared statements (the real drivers run in tests/clients)."""
    client, bearer = _jdbc_connect(gateway.location)
    options = flight.FlightCallOptions(headers=[(b"authorization", bearer[0].encode())])
    prepared = raw.prepare(client, "SELECT o_orderkey FROM orders WHERE o_custkey = ? AND o_orderdate < ?", options)
    params = raw.read_schema(prepared.parameter_schema)
    assert [f.type for f in params] == [pa.int64(), pa.date32()]
    assert all(f.nullable for f in params)
    handle = prepared.prepared_statement_handle
    descriptor = raw.descriptor(pb.CommandPreparedStatementQuery(prepared_statement_handle=handle))
    writer, results = client.do_put(descriptor, params, options)
    import datetime

    writer.write_batch(pa.record_batch([pa.array([1], pa.int64()), pa.array([datetime.date(1998, 1, 1)])],
                                       schema=params))
    writer.done_writing()
    put = results.read()
    writer.close()
    returned = spb.DoPutPreparedStatementResult()  # newer than flightsql-dbapi's copy of the protocol
    returned.ParseFromString(put.to_pybytes())
    # The spec's stateless prepared statements: the returned handle carries the parameters (any replica runs
    # it); the original handle stays valid here, bound, for clients that keep using it.
    bound = returned.prepared_statement_handle
    assert bound != handle
    _, table = raw.info_and_table(client, pb.CommandPreparedStatementQuery(prepared_statement_handle=handle), options)
    assert table.num_rows > 0
    _, again = raw.info_and_table(client, pb.CommandPreparedStatementQuery(prepared_statement_handle=handle), options)
    assert again.equals(table)  # re-execution of a cached handle
    _, through_bound = raw.info_and_table(client, pb.CommandPreparedStatementQuery(prepared_statement_handle=bound),
                                          options)
    assert through_bound.equals(table)
    client.close()


def test_prepared_statement_for_a_write_is_refused_not_announced_empty(client):
    with pytest.raises(flight.FlightUnauthorizedError, match="read-only"):
        raw.prepare(client, "INSERT INTO nation VALUES (99, 'X', 1, 'y')")


@pytest.mark.parametrize("cmd", [
    pb.CommandStatementUpdate(query="DELETE FROM nation"),
    pb.CommandPreparedStatementUpdate(prepared_statement_handle=b"x"),
])
def test_updates_by_do_put_are_refused(client, cmd):
    writer, _ = client.do_put(raw.descriptor(cmd), pa.schema([]))
    with pytest.raises(flight.FlightUnauthorizedError, match="read-only"):
        writer.done_writing()
        writer.close()


def test_ingest_is_refused(client):
    schema = pa.schema([("a", pa.int64())])
    cmd = spb.CommandStatementIngest(table="nation")
    descriptor = flight.FlightDescriptor.for_command(protocol.pack(cmd))
    writer, _ = client.do_put(descriptor, schema)
    with pytest.raises(flight.FlightUnauthorizedError, match="read-only"):
        writer.write_batch(pa.record_batch([pa.array([1])], schema=schema))
        writer.done_writing()
        writer.close()


@pytest.mark.parametrize("action", ["BeginTransaction", "EndTransaction", "BeginSavepoint", "EndSavepoint",
                                    "CreatePreparedSubstraitPlan"])
def test_transactions_and_substrait_are_unimplemented(client, action):
    with pytest.raises(pa.ArrowNotImplementedError) as info:
        list(client.do_action(flight.Action(action, b"")))
    assert "Traceback" not in str(info.value) and ".py" not in str(info.value)


def test_substrait_statement_is_unimplemented(client):
    with pytest.raises(pa.ArrowNotImplementedError, match="Substrait"):
        client.get_flight_info(raw.descriptor(pb.CommandStatementSubstraitPlan()))


@pytest.mark.parametrize("payload, error", [
    (b"\xff\xff\xff garbage", pa.ArrowInvalid),
    (raw.pack(pb.CommandGetCatalogs())[:-3] + b"\x00", (pa.ArrowInvalid, pa.ArrowNotImplementedError)),
])
def test_garbage_descriptor(client, payload, error):
    with pytest.raises(error) as info:
        client.get_flight_info(flight.FlightDescriptor.for_command(payload))
    assert "Traceback" not in str(info.value)


def test_unknown_command_type_url(client):
    from google.protobuf import any_pb2

    wrapper = any_pb2.Any(type_url="type.googleapis.com/some.other.Command", value=b"")
    with pytest.raises(pa.ArrowNotImplementedError, match="unknown command type"):
        client.get_flight_info(flight.FlightDescriptor.for_command(wrapper.SerializeToString()))


def test_path_descriptor_unimplemented(client):
    with pytest.raises(pa.ArrowNotImplementedError):
        client.get_flight_info(flight.FlightDescriptor.for_path("demo", "nation"))


def test_made_up_ticket_and_handle_are_invalid(client):
    with pytest.raises(pa.ArrowInvalid, match="not a valid ticket: it was not issued by this gateway"):
        client.do_get(flight.Ticket(raw.pack(pb.TicketStatementQuery(statement_handle=b"nope")))).read_all()
    with pytest.raises(pa.ArrowInvalid, match="not a valid prepared statement handle"):
        client.get_flight_info(raw.descriptor(pb.CommandPreparedStatementQuery(prepared_statement_handle=b"nope")))
    with pytest.raises(pa.ArrowInvalid):
        client.do_get(flight.Ticket(b"\x01\x02garbage")).read_all()


def test_bad_sql_is_invalid_argument_without_traceback(client):
    with pytest.raises(pa.ArrowInvalid) as info:
        client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(query="SELEC 1 FROMM")))
    message = str(info.value)
    assert "QV-001" in message and "Traceback" not in message and "File " not in message


def test_statement_with_placeholders_must_be_prepared(client):
    with pytest.raises(pa.ArrowInvalid, match="prepare it"):
        client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(query="SELECT ? + 1")))


def test_parameter_count_mismatch(client):
    prepared = raw.prepare(client, "SELECT * FROM nation WHERE n_nationkey = ?")
    descriptor = raw.descriptor(pb.CommandPreparedStatementQuery(
        prepared_statement_handle=prepared.prepared_statement_handle))
    schema = pa.schema([("a", pa.int64()), ("b", pa.int64())])
    writer, _ = client.do_put(descriptor, schema)
    with pytest.raises(pa.ArrowInvalid, match="1 parameter"):
        writer.write_batch(pa.record_batch([pa.array([1]), pa.array([2])], schema=schema))
        writer.done_writing()
        writer.close()


def test_list_actions(client):
    names = {a.type for a in client.list_actions()}
    assert {"CreatePreparedStatement", "ClosePreparedStatement", "CancelFlightInfo", "SetSessionOptions"} <= names


def _set_options(client, options, **values):
    request = fpb.SetSessionOptionsRequest()
    for name, value in values.items():
        if value is None:
            request.session_options[name].SetInParent()
        else:
            request.session_options[name].string_value = value
    [result] = client.do_action(flight.Action("SetSessionOptions", request.SerializeToString()), options)
    parsed = fpb.SetSessionOptionsResult()
    parsed.ParseFromString(result.body.to_pybytes())
    return {k: v.value for k, v in parsed.errors.items()}


def test_session_options_catalog_schema_and_errors(gateway):
    client, bearer = _jdbc_connect(gateway.location)
    options = flight.FlightCallOptions(headers=[(b"authorization", bearer[0].encode())])
    assert _set_options(client, options, catalog="demo") == {}
    assert _set_options(client, options, catalog="nosuch") == {"catalog": 2}  # INVALID_VALUE
    assert _set_options(client, options, bogus="x") == {"bogus": 1}  # INVALID_NAME
    [result] = client.do_action(flight.Action("GetSessionOptions", b""), options)
    got = fpb.GetSessionOptionsResult()
    got.ParseFromString(result.body.to_pybytes())
    assert got.session_options["catalog"].string_value == "demo"
    assert got.session_options["schema"].string_value == "main"
    [closed] = client.do_action(flight.Action("CloseSession", b""), options)
    status = fpb.CloseSessionResult()
    status.ParseFromString(closed.body.to_pybytes())
    assert status.status == 1
    client.close()


def test_adbc_current_catalog_round_trip(adbc):
    assert adbc.adbc_current_catalog == "demo"
    assert adbc.adbc_current_db_schema == "main"
    adbc.adbc_current_catalog = "demo"
    cur = adbc.cursor()
    cur.execute("SELECT count(*) FROM region")
    assert cur.fetchone()[0] == 5


def test_idle_prepared_statements_and_tickets_expire(make_gateway):
    import time

    gw = make_gateway(handle_ttl_seconds=0.3)
    gw.server.signer.leeway_seconds = 0
    with flight.connect(gw.location) as client:
        prepared = raw.prepare(client, "SELECT 1 AS one")
        handle = prepared.prepared_statement_handle
        command = raw.descriptor(pb.CommandPreparedStatementQuery(prepared_statement_handle=handle))
        info = client.get_flight_info(command)
        time.sleep(1.2)  # past the TTL and the once-a-second sweep
        with pytest.raises(pa.ArrowInvalid, match="the prepared statement handle has expired"):
            client.get_flight_info(command)
        with pytest.raises(pa.ArrowInvalid, match="the ticket has expired"):
            client.do_get(info.endpoints[0].ticket).read_all()
        assert raw.close_prepared(client, handle) == []  # closing an expired handle still succeeds


def test_issued_tokens_expire_when_unused():
    import time

    from nexus_flight.server.flight.auth import TokenRegistry

    tokens = TokenRegistry(idle_seconds=0.2)
    kept, dropped = tokens.issue("alice"), tokens.issue("bob")
    assert tokens.user_of(kept) == "alice"
    time.sleep(0.12)
    assert tokens.user_of(kept) == "alice"  # use keeps it alive
    time.sleep(0.12)
    assert tokens.user_of(kept) == "alice" and tokens.user_of(dropped) is None
    tokens._next_sweep = 0.0
    tokens.issue("carol")  # issuing sweeps what expired
    assert len(tokens) == 2
