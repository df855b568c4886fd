"""Faults found under fuzzing and with killed clients: each malformed request gets a specific status, fast."""

from __future__ import annotations

import collections
import statistics
import time

import grpc
import pyarrow.flight as flight
import pytest

from nexus_flight.server.flight import protocol
from nexus_flight.server.flight.protocol import sql as pb
from tests.operations.fuzz import SPECIFIC, Request, requests

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def channel(gateway):
    with grpc.insecure_channel(gateway.location.removeprefix("grpc://")) as chan:
        yield chan


def test_two_thousand_malformed_requests_each_get_a_specific_status_in_milliseconds(channel):
    """Every answer is OK or a status that names the problem; none is INTERNAL or UNKNOWN, none is slow.

    "Slow" allows a few answers past a second (a loaded machine can stall any one call) but no pattern of them.
    """
    wrong: list[tuple[str, str, str]] = []
    slow: list[tuple[str, float]] = []
    times: list[float] = []
    seen: collections.Counter = collections.Counter()
    started = time.perf_counter()
    for request in requests(seed=20_260_115, count=2_000):
        begun = time.perf_counter()
        code, details = request.send(channel, timeout=5)
        elapsed = time.perf_counter() - begun
        times.append(elapsed)
        seen[(request.method, code.name)] += 1
        if code is not grpc.StatusCode.OK and code not in SPECIFIC:
            wrong.append((request.method, code.name, details[:160]))
        if elapsed > 1.0:
            slow.append((request.method, round(elapsed, 2)))
    total = time.perf_counter() - started
    assert not wrong, f"{len(wrong)} unspecific answers, e.g. {wrong[:8]}"
    assert len(slow) <= 5, slow[:8]
    assert statistics.median(times) < 0.05, statistics.median(times)
    assert total < 120, total
    # The fuzzer reached every method and got refusals of several kinds.
    assert {method for method, _ in seen} >= {"GetFlightInfo", "GetSchema", "DoGet", "DoAction", "DoPut"}
    assert len({code for _, code in seen}) >= 4, seen


def test_renew_flight_endpoint_with_a_garbage_body_is_invalid_argument(channel):
    for body in (b"\x01garbage\xff", b"\xff" * 40, b"\x0a\x05abc"):
        code, details = Request("DoAction", "unary_stream", flight.Action("RenewFlightEndpoint", body).serialize()
                                ).send(channel, timeout=5)
        assert code is grpc.StatusCode.INVALID_ARGUMENT, (code, details)
        assert "RenewFlightEndpoint" in details


@pytest.mark.parametrize("command", [
    pb.CommandStatementUpdate(query="DELETE FROM nation"),
    pb.CommandPreparedStatementUpdate(prepared_statement_handle=b"h"),
    pb.CommandStatementIngest(table="nation"),
])
def test_get_schema_of_a_write_command_is_refused_as_read_only_with_a_specific_status(channel, command):
    """PERMISSION_DENIED, as GetFlightInfo answers, cannot leave pyarrow's GetSchema handler (see status.py):
    the refusal is INVALID_ARGUMENT there, what the Java and Go Flight SQL servers answer for such a command."""
    descriptor = flight.FlightDescriptor.for_command(protocol.pack(command)).serialize()
    code, details = Request("GetSchema", "unary_unary", descriptor).send(channel, timeout=5)
    assert code is grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert "read-only" in details
    code, details = Request("GetFlightInfo", "unary_unary", descriptor).send(channel, timeout=5)
    assert code is grpc.StatusCode.PERMISSION_DENIED, (code, details)


@pytest.mark.parametrize("operator", ["+", "||", "*"])
def test_a_long_flat_expression_is_refused_at_once_naming_the_limit(channel, operator):
    """DuckDB spends seconds to minutes binding a chain of 850 binary operators (13 s for +, 46 s for ||)."""
    query = "SELECT " + f" {operator} ".join(["1"] * 850)
    descriptor = flight.FlightDescriptor.for_command(protocol.pack(pb.CommandStatementQuery(query=query)))
    begun = time.perf_counter()
    code, details = Request("GetFlightInfo", "unary_unary", descriptor.serialize()).send(channel, timeout=5)
    assert code is grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert "max_operator_depth=256" in details
    assert time.perf_counter() - begun < 1.0


def test_long_and_or_chains_stay_allowed(adbc):
    """Engines flatten AND and OR; BI tools send long chains of them, so they are not operator depth."""
    with adbc.cursor() as cur:
        cur.execute("SELECT count(*) FROM nation WHERE " + " OR ".join(f"n_nationkey = {i}" for i in range(600)))
        assert cur.fetchone()[0] == 25
        cur.execute("SELECT " + " + ".join(["1"] * 200))
        assert cur.fetchone()[0] == 200


def test_bytes_that_are_no_flight_message_are_answered_at_once_and_the_server_goes_on(channel, adbc):
    """gRPC and Arrow's transport answer these before any handler runs (INTERNAL, UNKNOWN): nothing of ours to map.

    What matters is that they cost nothing: each is answered in milliseconds and queries keep working.
    """
    import random

    from tests.operations.fuzz import transport_garbage

    rng = random.Random(7)
    for _ in range(200):
        begun = time.perf_counter()
        code, _ = transport_garbage(rng).send(channel, timeout=5)
        assert code is not grpc.StatusCode.OK
        assert time.perf_counter() - begun < 1.0
    with adbc.cursor() as cur:
        cur.execute("SELECT count(*) FROM nation")
        assert cur.fetchone()[0] == 25
