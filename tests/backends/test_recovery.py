"""Recovery after a server restart, on a private PostgreSQL cluster this module starts and restarts."""

from __future__ import annotations

import pytest

from nexus_flight.backends.postgres import PostgresBackend
from nexus_flight.core.errors import BackendUnavailableError
from nexus_flight.core.source import QueryLimits, SourceSpec
from tests.support.results import plan_for
from tests.support.servers import PrivatePostgres, private_server


@pytest.fixture(scope="module")
def private_pg():
    """A PostgreSQL of this module's own: the tests stop and start it."""
    with private_server(PrivatePostgres) as server:
        yield server


def one(backend) -> list:
    execution = backend.execute(plan_for(backend, "SELECT 1 AS x"), None, QueryLimits())
    try:
        return execution.reader.read_all().column("x").to_pylist()
    finally:
        execution.close()


def test_recovers_after_restart(private_pg):
    start, stop = private_pg.start, private_pg.stop
    spec = SourceSpec("restarted", "postgres", private_pg.options(pool_recycle_seconds=0))
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
    start, stop = private_pg.start, private_pg.stop
    with PostgresBackend(SourceSpec("restarted", "postgres", private_pg.options())) as backend:
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
