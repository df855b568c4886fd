"""Malformed Flight requests, generated from a seed, sent over a raw gRPC channel (grpcio) to read exact statuses.

Every request is a well-formed Flight message (FlightDescriptor, Ticket, Action, FlightData, Criteria), as any
Flight client library sends them, with malformed contents: random bytes, protobuf ``Any`` wrappers with unknown or
mismatched types, real Flight SQL messages with hostile fields (garbage SQL, unknown handles, transaction ids,
update and ingest commands), truncated bodies, garbage IPC after a valid schema.

Bytes that are not a Flight message at all never reach the gateway's code: gRPC answers an unparseable request
message with INTERNAL, and Arrow's transport answers a DoPut/DoExchange whose first IPC message does not decode
with UNKNOWN ("Invalid flatbuffers message"). ``transport_garbage`` builds those, for a test that they are answered
at once and the server goes on serving.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import pyarrow as pa
import pyarrow.flight as flight

from nexus_flight.server.flight import protocol
from nexus_flight.server.flight.protocol import flight as fpb
from nexus_flight.server.flight.protocol import sql as pb

SERVICE = "/arrow.flight.protocol.FlightService/"

#: A specific answer: the client learns what was wrong. INTERNAL and UNKNOWN say nothing.
SPECIFIC = {
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.UNAUTHENTICATED,
}

ACTIONS = [
    "CreatePreparedStatement", "ClosePreparedStatement", "CancelFlightInfo", "CancelQuery", "SetSessionOptions",
    "GetSessionOptions", "CloseSession", "RenewFlightEndpoint", "BeginTransaction", "EndTransaction",
    "BeginSavepoint", "EndSavepoint", "CreatePreparedSubstraitPlan", "NoSuchAction", "",
]

GARBAGE_SQL = [
    "", " ", ";", "SELEC 1", "SELECT", "SELECT 1;;SELECT 2", "DELETE FROM nation", "DROP TABLE nation",
    "SELECT * FROM nosuch.main.nation", "SELECT * FROM no_table", "SELECT 'unterminated", "SELECT \x00",
    "SELECT " + "(" * 200 + "1" + ")" * 200, "SELECT " + "+".join(["1"] * 850), "SELECT ?", "SELECT $1",
    "WITH x AS (DELETE FROM nation RETURNING *) SELECT * FROM x", "COPY nation TO '/tmp/x'", "ATTACH 'x.db'",
    "SELECT * FROM read_csv('/etc/passwd')", "PRAGMA version", "CALL dbgen(sf=1)", "SELECT 1 INTO t",
    "\ufffd", "SELECT 💥", "select * from demo.main.nation where n_name = 'x' or 1=1 --",
]


def _bytes(rng: random.Random, most: int = 64) -> bytes:
    return rng.randbytes(rng.randint(0, most))


def _text(rng: random.Random, most: int = 40) -> str:
    return "".join(rng.choice(string.printable) for _ in range(rng.randint(0, most)))


def _any(rng: random.Random, type_url: str, value: bytes) -> bytes:
    from google.protobuf import any_pb2

    wrapper = any_pb2.Any(type_url=type_url, value=value)
    return wrapper.SerializeToString()


def _sql_message(rng: random.Random):
    """A real Flight SQL command with hostile content."""
    sql = rng.choice(GARBAGE_SQL) if rng.random() < 0.8 else _text(rng)
    transaction = {"transaction_id": _bytes(rng, 8)} if rng.random() < 0.15 else {}
    choices: list[Callable[[], object]] = [
        lambda: pb.CommandStatementQuery(query=sql, **transaction),
        lambda: pb.CommandStatementUpdate(query=sql),
        lambda: pb.CommandPreparedStatementQuery(prepared_statement_handle=_bytes(rng, 24)),
        lambda: pb.CommandPreparedStatementUpdate(prepared_statement_handle=_bytes(rng, 24)),
        lambda: pb.CommandStatementIngest(table=_text(rng)),
        lambda: pb.CommandStatementSubstraitPlan(plan=pb.SubstraitPlan(plan=_bytes(rng))),
        lambda: pb.TicketStatementQuery(statement_handle=_bytes(rng, 24)),
        lambda: pb.CommandGetTables(catalog=_text(rng), db_schema_filter_pattern=_text(rng),
                                    table_types=[_text(rng)], include_schema=rng.random() < 0.5),
        lambda: pb.CommandGetDbSchemas(catalog=_text(rng), db_schema_filter_pattern=_text(rng)),
        lambda: pb.CommandGetPrimaryKeys(catalog=_text(rng), table=_text(rng)),
        lambda: pb.CommandGetCrossReference(pk_table=_text(rng), fk_table=_text(rng), fk_catalog=_text(rng)),
        lambda: pb.CommandGetSqlInfo(info=[rng.randint(0, 2**32 - 1) for _ in range(rng.randint(0, 4))]),
        lambda: pb.CommandGetXdbcTypeInfo(data_type=rng.randint(-2**31, 2**31 - 1)),
        lambda: pb.ActionCreatePreparedStatementRequest(query=sql),
    ]
    return rng.choice(choices)()


def _command(rng: random.Random) -> bytes:
    """The bytes of a descriptor's command or a ticket."""
    roll = rng.random()
    if roll < 0.15:
        return _bytes(rng)
    if roll < 0.3:
        name = rng.choice(["type.googleapis.com/arrow.flight.protocol.sql.", "type.googleapis.com/", "",
                           "type.googleapis.com/google.protobuf.Empty", "x/arrow.flight.protocol.sql.Nope"])
        return _any(rng, name + _text(rng, 20), _bytes(rng))
    message = _sql_message(rng)
    if roll < 0.45:  # the right type with a mangled body
        body = message.SerializeToString()
        cut = rng.randint(0, len(body)) if body else 0
        return _any(rng, protocol.TYPE_URL_PREFIX + message.DESCRIPTOR.full_name, body[:cut] + _bytes(rng, 6))
    return protocol.pack(message)


def _descriptor(rng: random.Random) -> bytes:
    if rng.random() < 0.1:
        return flight.FlightDescriptor.for_path(*[_text(rng, 10) for _ in range(rng.randint(0, 3))]).serialize()
    return flight.FlightDescriptor.for_command(_command(rng)).serialize()


def _action(rng: random.Random) -> bytes:
    kind = rng.choice(ACTIONS)
    roll = rng.random()
    if roll < 0.35:
        body = _bytes(rng)
    elif roll < 0.55:
        body = _command(rng)
    elif roll < 0.7:
        body = flight.FlightEndpoint(_command(rng), []).serialize()
    elif roll < 0.8:
        body = fpb.CancelFlightInfoRequest(info=_bytes(rng)).SerializeToString()
    elif roll < 0.9:
        request = fpb.SetSessionOptionsRequest()
        request.session_options[_text(rng, 8)].string_value = _text(rng)
        body = request.SerializeToString()
    else:
        body = b""
    return flight.Action(kind, body).serialize()


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _ipc_header(message: pa.Buffer) -> bytes:
    """The flatbuffer of an encapsulated IPC message (what FlightData.data_header carries)."""
    data = message.to_pybytes()
    length = int.from_bytes(data[4:8], "little")
    return data[8 : 8 + length]


def _flight_data(rng: random.Random) -> list[bytes]:
    """A DoPut/DoExchange stream: a descriptor with a valid schema first (field 1, 2), then hostile messages."""
    schema = pa.schema([(_text(rng, 6) or "a", rng.choice([pa.int64(), pa.string(), pa.float64()]))])
    messages = [_field(1, _descriptor(rng)) + _field(2, _ipc_header(schema.serialize()))]
    for _ in range(rng.randint(0, 2)):
        roll = rng.random()
        if roll < 0.5:
            messages.append(_field(2, _bytes(rng)) + _field(1000, _bytes(rng)))  # a batch that does not decode
        elif roll < 0.8:
            messages.append(_field(3, _bytes(rng)))  # app_metadata only
        else:
            batch = pa.record_batch([pa.array([rng.randint(0, 9)])], names=["x"])
            messages.append(_field(2, _ipc_header(batch.serialize())))  # header without its body
    return messages


def transport_garbage(rng: random.Random) -> Request:
    """Bytes that are no Flight message: gRPC or Arrow's transport refuses them before the gateway sees them."""
    return rng.choice([
        lambda: Request("GetFlightInfo", "unary_unary", b"\xff" + _bytes(rng, 16)),
        lambda: Request("ListFlights", "unary_stream", b"\x8d" + _bytes(rng, 16)),
        lambda: Request("DoPut", "stream_stream", [_field(1, _descriptor(rng)) + _field(2, _bytes(rng))]),
        lambda: Request("DoPut", "stream_stream", [_field(2, _bytes(rng))]),
    ])()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits, value = value & 0x7F, value >> 7
        out.append(bits | (0x80 if value else 0))
        if not value:
            return bytes(out)


@dataclass
class Request:
    """One malformed call: its method, how it is sent, and its payload."""

    method: str
    shape: str  # unary_unary | unary_stream | stream_stream
    payload: bytes | list[bytes]

    def send(self, channel: grpc.Channel, timeout: float):
        """Send the request and drain the answer; return the status code (OK when it succeeded)."""
        call = getattr(channel, self.shape)(SERVICE + self.method)
        try:
            if self.shape == "unary_unary":
                call(self.payload, timeout=timeout)
            elif self.shape == "unary_stream":
                for _ in call(self.payload, timeout=timeout):
                    pass
            else:
                for _ in call(iter(self.payload), timeout=timeout):
                    pass
        except grpc.RpcError as exc:
            return exc.code(), exc.details()
        return grpc.StatusCode.OK, ""


def requests(seed: int, count: int) -> list[Request]:
    """``count`` malformed requests over every Flight method, the same for the same seed."""
    rng = random.Random(seed)
    makers: list[tuple[float, Callable[[], Request]]] = [
        (0.25, lambda: Request("GetFlightInfo", "unary_unary", _descriptor(rng))),
        (0.15, lambda: Request("GetSchema", "unary_unary", _descriptor(rng))),
        (0.2, lambda: Request("DoGet", "unary_stream", flight.Ticket(_command(rng)).serialize())),
        (0.25, lambda: Request("DoAction", "unary_stream", _action(rng))),
        (0.08, lambda: Request("DoPut", "stream_stream", _flight_data(rng))),
        (0.03, lambda: Request("ListFlights", "unary_stream", _field(1, _bytes(rng, 16)))),
        (0.02, lambda: Request("DoExchange", "stream_stream", _flight_data(rng))),
        (0.02, lambda: Request("PollFlightInfo", "unary_unary", _descriptor(rng))),
    ]
    weights = [w for w, _ in makers]
    return [rng.choices(makers, weights)[0][1]() for _ in range(count)]
