"""Recovery after a server restart, on a private PostgreSQL cluster this module starts (initdb + pg_ctl)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile

import pytest

from backends.base import QueryLimits, SourceSpec
from backends.errors import BackendUnavailableError
from backends.postgres import PostgresBackend
from tests.support.services import free_port, missing


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        missing(f"PostgreSQL's {name}")
    return found[-1]


def _as_postgres(args: list[str]) -> list[str]:
    # initdb refuses to run as root: run the server tools as the postgres user when we are root.
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            missing("runuser (to start PostgreSQL as the postgres user)")
        return [runuser, "-u", "postgres", "--", *args]
    return args


@pytest.fixture(scope="module")
def private_pg():
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    root = tempfile.mkdtemp(prefix="nexus-pg-")
    data = os.path.join(root, "data")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    subprocess.run(_as_postgres([initdb, "-D", data, "-A", "trust", "-U", "postgres"]), check=True, capture_output=True)
    port = free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"

    def start():
        subprocess.run(
            _as_postgres([pg_ctl, "-D", data, "-o", options, "-w", "-l", os.path.join(root, "log"), "start"]),
            check=True,
            capture_output=True,
        )

    def stop():
        subprocess.run(_as_postgres([pg_ctl, "-D", data, "-m", "fast", "-w", "stop"]), check=True, capture_output=True)

    start()
    yield port, start, stop
    subprocess.run(_as_postgres([pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"]), capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def one(backend) -> list:
    execution = backend.execute("SELECT 1 AS x", None, QueryLimits())
    try:
        return execution.reader.read_all().column("x").to_pylist()
    finally:
        execution.close()


def test_recovers_after_restart(private_pg):
    port, start, stop = private_pg
    spec = SourceSpec("restarted", "postgres", {"port": port, "database": "postgres", "pool_recycle_seconds": 0})
    with PostgresBackend(spec) as backend:
        assert one(backend) == [1]
        stop()
        with pytest.raises(BackendUnavailableError) as info:
            backend.ping()
        assert info.value.details["source"] == "restarted"
        start()
        # The pooled connection died with the server: pre-ping replaces it without the caller noticing.
        backend.ping()
        assert one(backend) == [1]


def test_health_check_recovers_with_the_default_pool_settings(private_pg):
    # Without pre-ping on every borrow, the first call after a restart may hit the dead pooled connection;
    # it is then dropped, so the health checker's next ping (and every query after it) succeeds.
    port, start, stop = private_pg
    with PostgresBackend(SourceSpec("restarted", "postgres", {"port": port, "database": "postgres"})) as backend:
        assert one(backend) == [1]
        stop()
        start()
        failures = 0
        for _ in range(3):
            try:
                backend.ping()
                break
            except BackendUnavailableError:
                failures += 1
        assert failures <= 1
        assert one(backend) == [1]
