"""Where the server listens, decided on resolved addresses; how many handles a client may hold open."""

from __future__ import annotations

import socket
import subprocess
import sys

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow.flight as flight
import pytest

from nexus_flight.core.errors import ConfigError
from nexus_flight.core.settings import ServerSettings
from nexus_flight.server.app.gateway import Gateway, resolve_listen_address
from tests.support import flightsql_raw as raw

# -- --host --------------------------------------------------------------------------------------------------


def test_a_name_that_starts_like_loopback_is_not_loopback_when_it_does_not_resolve(tmp_path):
    # .example never resolves (RFC 2606): the refusal is a clear error, not an uncaught exception.
    with pytest.raises(ConfigError, match="cannot resolve the address to listen on .'127.attacker.example'."):
        Gateway(ServerSettings(host="127.attacker.example", port=0, data_dir=tmp_path, demo_scale=None))


def test_a_name_is_judged_by_the_address_it_resolves_to(tmp_path, monkeypatch):
    """DNS that answers for an attacker's name cannot run here: getaddrinfo is replaced for that one name."""
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if host == "127.attacker.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("203.0.113.7", 0))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(ConfigError, match=r"refusing to bind 127.attacker.example \(203.0.113.7\)"):
        Gateway(ServerSettings(host="127.attacker.example", port=0, data_dir=tmp_path, demo_scale=None))


def test_loopback_names_and_addresses_are_resolved_and_bound(make_gateway):
    assert resolve_listen_address("127.0.0.1") == ("127.0.0.1", True)
    assert resolve_listen_address("localhost")[1] is True
    assert resolve_listen_address("0.0.0.0")[1] is False
    gw = make_gateway(host="localhost")
    assert gw.location.startswith(("grpc://127.0.0.1:", "grpc://[::1]:"))
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM region")
        assert cur.fetchone()[0] == 5


def test_cli_says_why_it_cannot_listen(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "nexus_flight.server", "serve", "--host", "127.attacker.example", "--port", "0",
         "--no-demo",
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "error: cannot resolve the address to listen on ('127.attacker.example')" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


# -- caps on tickets and prepared statements -----------------------------------------------------------------


def refusal(action) -> flightsql.Error:
    with pytest.raises(flightsql.Error) as caught:
        action()
    return caught.value


def test_prepared_statements_beyond_the_per_client_cap_leave_the_cache_and_still_execute(make_gateway):
    """The caps bound what a process caches; a handle that left the cache is re-planned from its signed content."""
    gw = make_gateway(max_prepared_statements_per_client=3)
    with flight.connect(gw.location) as client:
        handles = [raw.prepare(client, f"SELECT {i} AS n").prepared_statement_handle for i in range(5)]
        assert len(gw.server.prepared) == 3
        for i, handle in enumerate(handles):
            command = raw.pb.CommandPreparedStatementQuery(prepared_statement_handle=handle)
            assert raw.info_and_table(client, command)[1].column(0).to_pylist() == [i]
        raw.close_prepared(client, handles[0])
        assert len(gw.server.prepared) <= 3


def test_tickets_beyond_the_caps_leave_the_cache_and_still_give_their_answers(make_gateway):
    gw = make_gateway(max_tickets_per_client=3, max_tickets=4)
    query = raw.pb.CommandStatementQuery
    with flight.connect(gw.location) as first, flight.connect(gw.location) as second:
        unread = [first.get_flight_info(raw.descriptor(query(query=f"SELECT {i} AS n"))) for i in range(4)]
        unread += [second.get_flight_info(raw.descriptor(query(query=f"SELECT {i} AS n"))) for i in (4, 5)]
        assert len(gw.server.tickets) == 4
        assert [first.do_get(info.endpoints[0].ticket).read_all().column(0).to_pylist() for info in unread] == [
            [0], [1], [2], [3], [4], [5]]


def test_a_client_that_reads_its_results_is_never_refused_for_tickets(make_gateway):
    """Results already read give way to new ones: a BI tool running many queries stays under the per-client cap."""
    gw = make_gateway(max_tickets_per_client=3, max_tickets=4)
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        for i in range(12):
            cur.execute(f"SELECT {i} AS n")
            assert cur.fetchall() == [(i,)]
    with flightsql.connect(gw.location, autocommit=True) as other, other.cursor() as cur:
        cur.execute("SELECT 42 AS n")
        assert cur.fetchall() == [(42,)]
