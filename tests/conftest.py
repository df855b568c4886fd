"""Fixtures shared by every test: the demo data and running gateways."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Shared helpers that assert: their failures get pytest's explanations too.
pytest.register_assert_rewrite("tests.support.results")

from nexus_flight.core.settings import ServerSettings  # noqa: E402
from nexus_flight.server.app.gateway import Gateway  # noqa: E402
from tests.support.servers import PrivateMariaDB, PrivatePostgres, private_server, reap_abandoned  # noqa: E402
from tests.support.services import require_command  # noqa: E402
from tests.support.tpch import TPCH_TABLES  # noqa: E402
from tests.support.warehouses import (  # noqa: E402, F401 - fixtures
    bigquery_emulator,
    bigquery_tpch,
    clickhouse_server,
    clickhouse_tpch,
)


def pytest_sessionstart(session) -> None:
    """Stop the private servers of earlier runs that were killed before they could stop them."""
    reap_abandoned()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PrivatePostgres]:
    """This run's own PostgreSQL (superuser ``postgres``, trust auth, database ``test``), started on first use."""
    with private_server(PrivatePostgres) as server:
        yield server


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[PrivateMariaDB]:
    """This run's own MariaDB (``root`` without a password, database ``test``), started on first use."""
    with private_server(PrivateMariaDB) as server:
        yield server


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nexus-flight"


@pytest.fixture(scope="session")
def tpch_dir() -> Path:
    """TPC-H sf0.01 parquet files, generated once into the cache directory."""
    target = _cache_dir() / "tpch-sf0.01"
    if not all((target / f"{t}.parquet").exists() for t in TPCH_TABLES):
        tool = require_command("tpchgen-cli")
        # Generated aside and renamed into place: a run started meanwhile never reads half-written files.
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="tpch-", dir=target.parent))
        subprocess.run([tool, "parquet", "-s", "0.01", f"--output-dir={staging}"], check=True, capture_output=True)
        try:
            staging.rename(target)
        except OSError:  # another run got there first
            shutil.rmtree(staging, ignore_errors=True)
    return target


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory) -> Path:
    """A data directory holding the generated TPC-H sf0.01 demo database (built once per session)."""
    path = tmp_path_factory.mktemp("data")
    from nexus_flight.server.app.demo import demo_database

    demo_database(path, 0.01)
    return path


@pytest.fixture(scope="session")
def gateway(demo_data_dir) -> Iterator[Gateway]:
    """The gateway serving the demo catalog on a free port, ready when yielded."""
    gw = Gateway(ServerSettings(port=0, data_dir=demo_data_dir)).start()
    yield gw
    gw.shutdown()


@pytest.fixture
def make_gateway(demo_data_dir) -> Iterator[Callable[..., Gateway]]:
    """Start extra gateways (other sources, validator off, short timeouts); all are stopped after the test.

    ``sources`` are served besides the demo (``sources=(SourceSpec(...),)``); other keyword arguments are
    ``ServerSettings`` fields, e.g. ``demo_scale=None``.
    """
    started: list[Gateway] = []

    def start(sources=None, **overrides) -> Gateway:
        settings = ServerSettings(**{"port": 0, "data_dir": demo_data_dir, **overrides})
        gw = Gateway(settings, sources).start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.shutdown()


@pytest.fixture
def adbc(gateway):
    """An ADBC Flight SQL DB-API connection to the demo gateway."""
    import adbc_driver_flightsql.dbapi as flightsql

    conn = flightsql.connect(gateway.location, autocommit=True)
    yield conn
    conn.close()
