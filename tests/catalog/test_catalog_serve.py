"""``nexus-flight serve --config`` with catalog sources, then ``history`` and ``sources``: as processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from tests.catalog.conftest import new_key_text
from tests.support.services import free_port, port_open

SECRET = "serve-Secret-Token-5150"


@pytest.fixture
def served_by_cli(tmp_path):
    data = tmp_path / "data"
    db = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE items AS SELECT range AS id FROM range(7)")
    con.close()
    port = free_port()
    config = tmp_path / "nexus-flight.toml"
    config.write_text(f"""
[server]
port = {port}
data_dir = "{data}"
default_source = "shop"

[[sources]]
name = "shop"
type = "duckdb"
options = {{ path = "{db}" }}

[[sources]]
name = "peer"
type = "flightsql"
auth_type = "jwt"
options = {{ uri = "grpc://127.0.0.1:1" }}
secrets = {{ token = "${{env:PEER_TOKEN}}" }}
""")
    env = {**os.environ, "PEER_TOKEN": SECRET, "NEXUS_FLIGHT_MASTER_KEY": new_key_text()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nexus_flight.server", "serve", "--config", str(config), "--no-demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"gateway did not start: {proc.stdout.read()}")
        time.sleep(0.05)
    yield port, data, env, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def test_serve_with_a_config_file_records_history(served_by_cli):
    import adbc_driver_flightsql.dbapi as flightsql

    port, data, env, proc = served_by_cli
    with flightsql.connect(f"grpc://127.0.0.1:{port}", autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM items")
        assert cur.fetchone()[0] == 7
        conn.adbc_current_catalog = "system"
        cur.execute("SELECT name, config FROM sources ORDER BY name")
        sources = dict(cur.fetchall())
        cur.close()
    assert json.loads(sources["peer"])["token"] == "***"
    _wait_for_history(data, env)
    history_out = run_cli(["history", "--data-dir", str(data), "--json"], env)
    rows = json.loads(history_out)
    assert any(r["source_name"] == "shop" and r["status"] == "success" and "items" in r["sql_text"] for r in rows)
    listing = run_cli(["sources", "list", "--data-dir", str(data)], env)
    assert listing.splitlines()[0].split()[:2] == ["NAME", "TYPE"]
    assert SECRET not in listing + history_out
    catalog_bytes = b"".join(p.read_bytes() for p in data.iterdir() if p.is_file())
    assert SECRET.encode() not in catalog_bytes
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "listening on grpc://127.0.0.1" in output and "shutting down" in output and SECRET not in output


def run_cli(argv, env):
    """``nexus-flight`` in-process through the server's own parser (the catalog commands wired into it)."""
    import contextlib
    import io

    from nexus_flight.server.app.cli import main

    out = io.StringIO()
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out):
            assert main(argv) == 0
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return out.getvalue()


def _wait_for_history(data, env, timeout=20.0):
    """The server records a query when its stream ends, just after the client has the last batch."""
    from nexus_flight.catalog.history import search_history
    from nexus_flight.catalog.store import CatalogStore
    from nexus_flight.catalog.vault import KeyRing

    store = CatalogStore(data_dir=data, keys=KeyRing.from_environment(env, use_keyring=False))
    try:
        deadline = time.monotonic() + timeout
        while not search_history(store, source="shop", status="success"):
            assert time.monotonic() < deadline, "the query never reached the history"
            time.sleep(0.05)
    finally:
        store.close()
