"""Raw Flight SQL over pyarrow.flight, with the Flight SQL messages compiled independently by flightsql-dbapi.

Using another project's generated protobufs (not the server's own) checks our wire format from outside.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight
from flightsql import flightsql_pb2 as pb
from google.protobuf import any_pb2

TYPE_PREFIX = "type.googleapis.com/"


def pack(msg) -> bytes:
    wrapper = any_pb2.Any()
    wrapper.Pack(msg)
    return wrapper.SerializeToString()


def unpack(data: bytes, cls):
    wrapper = any_pb2.Any()
    wrapper.ParseFromString(data)
    out = cls()
    assert wrapper.Unpack(out), f"expected {cls.DESCRIPTOR.full_name}, got {wrapper.type_url}"
    return out


def descriptor(msg) -> flight.FlightDescriptor:
    return flight.FlightDescriptor.for_command(pack(msg))


def info_and_table(client: flight.FlightClient, msg, options=None) -> tuple[flight.FlightInfo, pa.Table]:
    info = client.get_flight_info(descriptor(msg), options)
    assert len(info.endpoints) == 1
    assert list(info.endpoints[0].locations) == []
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    return info, table


def prepare(client: flight.FlightClient, query: str, options=None):
    results = list(client.do_action(
        flight.Action("CreatePreparedStatement", pack(pb.ActionCreatePreparedStatementRequest(query=query))),
        options,
    ))
    assert len(results) == 1
    return unpack(results[0].body.to_pybytes(), pb.ActionCreatePreparedStatementResult)


def close_prepared(client: flight.FlightClient, handle: bytes, options=None) -> list:
    return list(client.do_action(
        flight.Action("ClosePreparedStatement",
                      pack(pb.ActionClosePreparedStatementRequest(prepared_statement_handle=handle))),
        options,
    ))


def read_schema(data: bytes) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(data))
