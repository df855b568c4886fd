"""A retryable limit reached at ``GetSchema`` arrives as INVALID_ARGUMENT: pyarrow cannot send UNAVAILABLE there.

Every other call sends a rate-limit refusal as UNAVAILABLE (the code clients retry on). pyarrow's ``GetSchema``
callback, unlike the others, lets no ``FlightError`` choose its status: whatever the handler raises becomes an
Arrow status carrying the Python error, and on the wire only Arrow's own codes survive (``Invalid`` ->
INVALID_ARGUMENT; a ``FlightUnavailableError`` -> UNKNOWN). The first test pins that limitation on a bare pyarrow
server (when a pyarrow release lifts it, it fails, and the gateway can send UNAVAILABLE from GetSchema too); the
others pin what the gateway answers, on the wire (grpcio) and through pyarrow.flight; ADBC, which asks a
statement's schema by preparing it, gets UNAVAILABLE.
"""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import grpc
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from nexus_flight.catalog.grants import add_grant
from tests.security.conftest import BOB_PASSWORD, bearer, sign_in
from tests.security.test_principal_limits import SMALL, _command, _limit

GET_SCHEMA = "/arrow.flight.protocol.FlightService/GetSchema"


def _wire_code(location: str, descriptor: flight.FlightDescriptor, token: str | None = None) -> tuple:
    """The gRPC status code and text ``GetSchema`` answers, read by grpcio (no Arrow client in between)."""
    with grpc.insecure_channel(location.removeprefix("grpc://")) as channel:
        call = channel.unary_unary(GET_SCHEMA, request_serializer=lambda d: d.serialize(),
                                   response_deserializer=lambda b: b)
        metadata = [("authorization", f"Bearer {token}")] if token else None
        with pytest.raises(grpc.RpcError) as refused:
            call(descriptor, metadata=metadata, timeout=30)
    return refused.value.code(), refused.value.details()


class _Raising(flight.FlightServerBase):
    def get_schema(self, context, descriptor):
        raise flight.FlightUnavailableError("retry in 2 s")

    def get_flight_info(self, context, descriptor):
        raise flight.FlightUnavailableError("retry in 2 s")


def test_pyarrow_sends_no_unavailable_from_get_schema():
    server = _Raising("grpc://127.0.0.1:0")
    try:
        location, descriptor = f"grpc://127.0.0.1:{server.port}", flight.FlightDescriptor.for_command(b"x")
        code, _ = _wire_code(location, descriptor)
        assert code == grpc.StatusCode.UNKNOWN  # the same error from GetFlightInfo is UNAVAILABLE:
        with pytest.raises(flight.FlightUnavailableError):
            flight.FlightClient(location).get_flight_info(descriptor)
    finally:
        server.shutdown()


@pytest.fixture
def limited(secure_gateway, store):
    add_grant(store, "analyst", "demo")
    secured = secure_gateway()
    _limit(secured, "bob", queries_per_minute=6, query_burst=1)
    return secured


def test_a_rate_refusal_at_get_schema_is_invalid_argument_naming_the_limit_and_the_wait(limited):
    client = limited.client()
    bob = sign_in(client, "bob", BOB_PASSWORD)
    descriptor = flight.FlightDescriptor.for_command(_command(SMALL))
    assert client.get_schema(descriptor, bearer(bob)).schema.names == ["n_name"]  # the burst's one token
    code, text = _wire_code(limited.location, descriptor, bob)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "queries_per_minute=6" in text and "retry" in text and "Traceback" not in text
    with pytest.raises(pa.ArrowInvalid, match="queries_per_minute=6"):
        client.get_schema(descriptor, bearer(bob))
    with pytest.raises(flight.FlightUnavailableError, match="queries_per_minute=6"):  # elsewhere: UNAVAILABLE
        client.get_flight_info(descriptor, bearer(bob))




def test_adbc_execute_schema_prepares_and_gets_unavailable(limited):
    """ADBC asks a statement's schema by preparing it (CreatePreparedStatement), so its refusal is UNAVAILABLE."""
    conn = flight_sql.connect(limited.location, db_kwargs={"username": "bob", "password": BOB_PASSWORD},
                              autocommit=True)
    try:
        with conn.cursor() as cur:
            assert cur.adbc_execute_schema(SMALL).names == ["n_name"]
            with pytest.raises(adbc_driver_manager.OperationalError, match=r"\(Unavailable; Prepare\)") as refused:
                cur.adbc_execute_schema(SMALL + " AND n_regionkey = 3")
            assert "queries_per_minute=6" in str(refused.value) and "retry after" in str(refused.value)
    finally:
        conn.close()
