"""Ctrl-C and SIGTERM drain the served gateway; a second signal ends it at once; start-up errors say what to do."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
import pytest

from tests.operations.serving import LONG_QUERY, SHORT_QUERY, serve, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def data_dir(tmp_path, demo_data_dir):
    """A data directory of its own (its catalog) holding the session's demo database."""
    for demo in demo_data_dir.glob("tpch_*.duckdb"):
        (tmp_path / demo.name).symlink_to(demo)
    return tmp_path


def _run(location: str, sql: str, outcome: dict) -> None:
    conn = flightsql.connect(location, autocommit=True)
    cur = conn.cursor()
    try:
        cur.execute(sql)
        outcome["rows"] = cur.fetchall()
    except Exception as exc:
        outcome["error"] = str(exc)
    finally:  # closing talks to the server, which may be gone by now: only the query's outcome counts
        with contextlib.suppress(Exception):
            cur.close()
        with contextlib.suppress(Exception):
            conn.close()


def _start_query(location: str, sql: str) -> tuple[threading.Thread, dict]:
    outcome: dict = {}
    thread = threading.Thread(target=_run, args=(location, sql, outcome), daemon=True)
    thread.start()
    return thread, outcome


def _wait_until_running(served) -> None:
    """Wait until the served gateway runs the query (a loaded machine may take many seconds to get there)."""
    wait_for(lambda: "nexus_active_queries 1.0" in urllib.request.urlopen(served.http + "/metrics").read().decode(),
             seconds=60)


def _ready(http: str) -> int:
    try:
        return urllib.request.urlopen(http + "/readyz", timeout=5).status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_sigterm_refuses_new_queries_lets_the_running_one_finish_then_exits(data_dir):
    served = serve(data_dir, "--http-port", "0", "--log-format", "json", "--drain-seconds", "60")
    try:
        assert _ready(served.http) == 200
        running, outcome = _start_query(served.location, SHORT_QUERY)
        _wait_until_running(served)
        served.signal(signal.SIGTERM)
        wait_for(lambda: any("draining" in line for line in served.out))
        assert _ready(served.http) == 503
        refused: dict = {}
        _run(served.location, "SELECT 1", refused)
        assert "UNAVAILABLE" in refused["error"] or "Unavailable" in refused["error"], refused
        assert "shutting down (SIGTERM received)" in refused["error"]
        running.join(30)
        assert "rows" in outcome, outcome
        assert int(outcome["rows"][0][0]) == sum(i % 7 for i in range(7)) * (300_000_000 // 7) + sum(range(6))
        assert served.wait(30) == 0
    finally:
        served.stop()
    # One JSON line per query: ids, principal, source, status, timings; never the SQL text.
    records = [json.loads(line) for line in served.err if line.startswith("{")]
    queries = [r for r in records if r["logger"] == "nexus_flight.queries"]
    finished = [q for q in queries if q["status"] == "success"]
    assert len(finished) == 1, queries
    assert {"query_id", "correlation_id", "principal", "source", "timings_ms", "sql_sha256"} <= finished[0].keys()
    assert finished[0]["source"] == "demo" and finished[0]["rows"] == 1
    assert not any("range(300000000)" in line for line in served.err)


def test_at_the_drain_deadline_running_queries_are_cancelled_and_the_process_exits(data_dir):
    served = serve(data_dir, "--drain-seconds", "1", "--http-port", "0")
    try:
        running, outcome = _start_query(served.location, LONG_QUERY)
        _wait_until_running(served)
        began = time.monotonic()
        served.signal(signal.SIGINT)
        assert served.wait(20) == 0
        assert time.monotonic() - began < 10
        running.join(10)
        assert "CANCELLED" in outcome.get("error", "") or "cancel" in outcome.get("error", "").lower(), outcome
        assert any("cancelled 1 running query" in line for line in served.out), served.out
    finally:
        served.stop()


def test_a_second_signal_exits_at_once(data_dir):
    served = serve(data_dir, "--drain-seconds", "600", "--http-port", "0")
    try:
        _start_query(served.location, LONG_QUERY)
        _wait_until_running(served)
        served.signal(signal.SIGINT)
        wait_for(lambda: any("draining" in line for line in served.out))
        began = time.monotonic()
        served.signal(signal.SIGINT)
        assert served.wait(5) == 130
        assert time.monotonic() - began < 3
        assert any("exiting now" in line for line in served.err), served.err
    finally:
        served.stop()


def test_a_port_in_use_is_named_with_what_to_do(data_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(["nexus-flight", "serve", "--data-dir", str(data_dir), "--port", str(port)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "--port" in result.stderr
    assert "Server did not start properly" not in result.stderr


def test_a_tls_key_that_is_not_the_certificates_is_named(data_dir, tmp_path):
    for name in ("a", "b"):
        key, cert = tmp_path / f"{name}.key", tmp_path / f"{name}.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=localhost", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    result = subprocess.run(["nexus-flight", "serve", "--data-dir", str(data_dir), "--port", "0",
                             "--tls-cert", str(tmp_path / "a.crt"), "--tls-key", str(tmp_path / "b.key")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"the TLS key {tmp_path / 'b.key'} is not the private key of the certificate {tmp_path / 'a.crt'}" in (
        result.stderr)
    assert "--tls-key" in result.stderr


def test_a_query_admitted_just_before_the_drain_is_let_finish(make_gateway):
    """A query admitted a moment before the drain, its stream not registered yet, finishes like a running one.

    The real gateway and DuckDB, the drain as a signal runs it; only the moment is forced: the query's thread is
    held after admission, before its stream is registered, while the drain begins. A drain that counted only
    registered streams saw nothing running and cancelled the query at once.
    """
    import pyarrow.flight as flight
    from flightsql import flightsql_pb2 as pb

    from nexus_flight.server.app.lifecycle import drain
    from tests.support import flightsql_raw as raw
    from tests.support.held_queries import hold_after_admission, read_ticket_in_background

    gw = make_gateway()
    held, go_on = hold_after_admission(gw)
    client = flight.connect(gw.location)
    info = client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(query="SELECT 42 AS x")))
    worker, outcome = read_ticket_in_background(client, info.endpoints[0].ticket)
    drained: dict = {}
    try:
        assert held.wait(10)
        drainer = threading.Thread(target=lambda: drained.update(left=drain(gw, 10, "SIGTERM", say=print)))
        drainer.start()
        drainer.join(0.5)
        assert drainer.is_alive(), "the drain did not wait for the query being started"
    finally:
        go_on.set()
        worker.join(10)
        client.close()
    drainer.join(10)
    assert "error" not in outcome and outcome["table"].column("x").to_pylist() == [42], outcome
    assert drained == {"left": 0}
