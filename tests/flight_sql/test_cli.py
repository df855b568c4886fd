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


def test_an_old_style_auth_table_is_refused_naming_the_setting(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text('[server.auth]\nmode = "basic"\nusername = "a"\n')
    result = subprocess.run(
        [sys.executable, "-m", "nexus_flight.server", "serve", "--config", str(config),
         "--data-dir", str(tmp_path / "d"), "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "server.auth.mode: unknown setting" in result.stderr and "Traceback" not in result.stderr


def test_with_authentication_on_serve_listens_beyond_loopback_and_requires_a_sign_in(tmp_path, demo_data_dir):
    import base64

    from adbc_driver_manager import ProgrammingError

    from nexus_flight.catalog.store import CatalogStore
    from nexus_flight.catalog.users import add_user
    from nexus_flight.catalog.vault import KeyRing, parse_key

    key = base64.b64encode(os.urandom(32)).decode()
    env = {**os.environ, "NEXUS_FLIGHT_MASTER_KEY": key}
    data = tmp_path / "d"
    store = CatalogStore(data_dir=data, keys=KeyRing(parse_key(key)))
    add_user(store, "ops", "ops-password-123", roles=["admin"])
    store.close()
    demo = next(demo_data_dir.glob("*.duckdb"))
    (data / demo.name).symlink_to(demo)
    config = tmp_path / "gateway.toml"
    config.write_text("[server]\nhost = \"0.0.0.0\"\n[server.auth]\nenabled = true\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nexus_flight.server", "serve", "--config", str(config), "--data-dir", str(data),
         "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("Nexus Flight listening on grpc://0.0.0.0:"), proc.stderr.read() if not line else line
        uri = "grpc://127.0.0.1:" + line.strip().rsplit(":", 1)[1]
        with pytest.raises(ProgrammingError, match="UNAUTHENTICATED"), \
                flightsql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
        with flightsql.connect(uri, db_kwargs={"username": "ops", "password": "ops-password-123"},
                               autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM nation")
            assert cur.fetchone() == (25,)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
