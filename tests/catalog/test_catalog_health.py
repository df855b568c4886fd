"""Lifecycle and health checks against a private PostgreSQL that the tests stop and start again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nexus_flight.catalog.connect import ping_backend
from nexus_flight.catalog.health import BACKOFF_SECONDS, MAX_TRIES, HealthChecker, check_source, next_delay
from nexus_flight.core.errors import ConfigError
from tests.support.servers import PrivatePostgres, private_server
from tests.support.services import free_port, port_open, wait_until


@pytest.fixture(scope="module")
def private_pg():
    """A PostgreSQL of this module's own: the tests stop and start it."""
    with private_server(PrivatePostgres) as server:
        yield server


#: The real probe: the postgres family's backend opens and pings the source.
pg_probe = ping_backend


class FakeClock:
    def __init__(self):
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def pg_source(sqlite_store, private_pg):
    private_pg.start() if not _up(private_pg) else None
    sqlite_store.add_source(
        "pg",
        "postgresql",
        {"host": "127.0.0.1", "port": private_pg.port, "username": private_pg.reader, "database": "postgres"},
    )
    return sqlite_store


def _up(server):
    return port_open("127.0.0.1", server.port)


def test_backoff_schedule():
    assert [next_delay(n) for n in range(1, 8)] == [30, 60, 120, 300, 600, 600, 600]
    assert BACKOFF_SECONDS == (30, 60, 120, 300, 600) and MAX_TRIES == 10


def test_draft_to_active_then_backoff_then_give_up_then_manual_recovery(pg_source, private_pg, caplog):
    store, clock = pg_source, FakeClock()
    caplog.set_level("INFO")
    assert check_source(store, "pg", pg_probe, clock=clock).status == "active"
    private_pg.stop()
    checker = HealthChecker(store, pg_probe, clock=clock, active_interval=60)
    assert checker.run_once() == {}  # checked just now: not due
    clock.advance(60)
    assert checker.run_once() == {"pg": "error"}
    info = store.get_source("pg")
    assert info.health_failures == 1 and info.next_check_at == clock.now + timedelta(seconds=30)
    assert "status active -> error" in caplog.text
    delays = []
    while True:
        info = store.get_source("pg")
        if info.next_check_at is None:
            break
        wait = (info.next_check_at - clock.now).total_seconds()
        clock.advance(wait - 1)
        assert checker.run_once() == {}  # one second early: not yet
        clock.advance(1)
        assert checker.run_once() == {"pg": "error"}
        delays.append(wait)
    assert delays == [30, 60, 120, 300, 600, 600, 600, 600, 600]
    assert store.get_source("pg").health_failures == MAX_TRIES
    assert "giving up" in caplog.text
    private_pg.start()
    clock.advance(86_400)
    assert checker.run_once() == {}  # gave up: only a manual test brings it back
    info = check_source(store, "pg", pg_probe, clock=clock)
    assert (info.status, info.health_failures, info.last_error) == ("active", 0, None)


def test_background_checker_follows_a_real_outage(pg_source, private_pg, caplog):
    store = pg_source
    caplog.set_level("INFO", logger="nexus_flight.catalog.store")
    assert check_source(store, "pg", pg_probe).status == "active"
    checker = HealthChecker(store, pg_probe, schedule=(0.05, 0.1), active_interval=0.05, poll_seconds=0.02)
    checker.start()
    try:
        private_pg.stop()
        _wait_for(lambda: store.get_source("pg").status == "error")
        # Refused once it is down; while it stops, PostgreSQL itself answers that it is shutting down.
        error = store.get_source("pg").last_error.lower()
        assert any(sign in error for sign in ("connection", "refused", "shutting down", "terminat")), error
        private_pg.start()
        _wait_for(lambda: store.get_source("pg").status == "active")
    finally:
        checker.stop()
    assert "source pg status active -> error" in caplog.text
    assert "source pg status error -> active" in caplog.text


def test_disabled_sources_are_not_tested(pg_source):
    pg_source.set_status("pg", "inactive")
    with pytest.raises(ConfigError, match="^DS-011: .*disabled"):
        check_source(pg_source, "pg", pg_probe)
    assert HealthChecker(pg_source, pg_probe, active_interval=0).due() == []


def test_a_failing_draft_goes_to_error(sqlite_store):
    port = free_port()  # nothing listens here
    sqlite_store.add_source(
        "nowhere",
        "postgresql",
        {"host": "127.0.0.1", "port": port, "username": "postgres", "database": "postgres"},
    )
    info = check_source(sqlite_store, "nowhere", pg_probe)
    assert info.status == "error" and info.health_failures == 1 and info.last_error.startswith("[postgres]")


def _wait_for(condition, timeout=20.0):
    if not wait_until(condition, timeout):
        raise AssertionError("condition not reached in time")


def test_a_source_no_retry_can_mend_is_not_retried(sqlite_store):
    """DS-010: no backend serves the type's family, so the checker does not come back to it; a change does."""
    clock = FakeClock()
    sqlite_store.add_source("ora", "oracle", {"host": "127.0.0.1", "username": "scott"})
    sqlite_store.add_source("nowhere", "postgresql",
                            {"host": "127.0.0.1", "port": free_port(), "username": "postgres", "database": "postgres"})
    for name in ("ora", "nowhere"):
        check_source(sqlite_store, name, pg_probe, clock=clock)
    ora = sqlite_store.get_source("ora")
    assert ora.status == "error" and ora.next_check_at is None and ora.last_error.startswith("DS-010: ")
    assert "not re-checked" in ora.last_error and "sources test" in ora.last_error
    checker = HealthChecker(sqlite_store, pg_probe, clock=clock, active_interval=0)
    clock.advance(24 * 3600)
    assert checker.due() == ["nowhere"]  # the unreachable one is retried on its schedule; oracle never
    sqlite_store.update_source("ora", options={"host": "db.example", "username": "scott"})
    assert sqlite_store.get_source("ora").status == "draft"  # changed: back to be tested again
