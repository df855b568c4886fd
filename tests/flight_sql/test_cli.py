"""The ``nexus-flight serve`` command: prints its URI when ready, serves, and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_uri_then_stops_on_signal(demo_data_dir, sig):
    proc = subprocess.Popen(
        [sys.executable, "-m", "nexus_flight.server", "serve", "--port", "0", "--data-dir", str(demo_data_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("Nexus Flight listening on grpc://127.0.0.1:")
        uri = line.split()[-1]
        with flightsql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM lineitem")
            assert cur.fetchone()[0] > 0
        proc.send_signal(sig)
        assert proc.wait(20) == 0
        assert "shutting down" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_non_loopback_without_auth_is_refused(demo_data_dir):
    result = subprocess.run(
        [sys.executable, "-m", "nexus_flight.server", "serve", "--host", "0.0.0.0", "--port", "0",
         "--data-dir", str(demo_data_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to bind 0.0.0.0" in result.stderr and "Traceback" not in result.stderr


def test_config_asking_for_client_authentication_is_refused_not_ignored(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text('[server.auth]\nmode = "basic"\nusername = "a"\npassword = "${env:NEXUS_TEST_PW}"\n')
    result = subprocess.run(
        [sys.executable, "-m", "nexus_flight.server", "serve", "--config", str(config),
         "--data-dir", str(tmp_path / "d"),
         "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "NEXUS_TEST_PW": "x"},
    )
    assert result.returncode == 2
    assert "server.auth.mode = 'basic' is not supported yet" in result.stderr
