"""Retention on a history the size a busy gateway keeps: the catalog stays writable and the gateway starts at once."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import String, cast, func, insert, literal, select

from nexus_flight.catalog.audit import AuditLog, AuditRecord, search_audit
from nexus_flight.catalog.config_file import load_config
from nexus_flight.catalog.history import QueryRecord, QueryRecorder, purge_history, record_query, search_history
from nexus_flight.catalog.models import QueryHistory
from nexus_flight.catalog.retention import RetentionKeeper, purge_older
from nexus_flight.catalog.runtime import start_catalog
from nexus_flight.catalog.store import CatalogStore
from tests.support.services import wait_until

OLD = datetime(2020, 1, 1, tzinfo=UTC)


def _fill_old_history(store: CatalogStore, rows: int) -> None:
    """``rows`` history rows from 2020, made by the catalog database itself (Python would take longer than the test)."""
    numbers = select(literal(1).label("i")).cte("numbers", recursive=True)
    numbers = numbers.union_all(select(numbers.c.i + 1).where(numbers.c.i < rows))
    made = select(
        (literal("old-") + cast(numbers.c.i, String)).label("id"),
        literal("SELECT 1").label("sql_text"),
        literal("0" * 64).label("sql_sha256"),
        literal("success").label("status"),
        literal(0).label("retry_count"),
        literal(OLD, QueryHistory.created_at.type).label("created_at"),
    )
    with store.session() as session:
        session.execute(
            insert(QueryHistory).from_select(["id", "sql_text", "sql_sha256", "status", "retry_count", "created_at"],
                                             made)
        )


def _history_rows(store: CatalogStore) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(QueryHistory)) or 0


def test_purge_takes_every_old_row_in_batches_and_keeps_the_new(store):
    """Ties on ``created_at`` across batch boundaries, on SQLite and PostgreSQL alike."""
    _fill_old_history(store, 23)
    record_query(store, QueryRecord("SELECT 2", "success"))
    assert purge_older(store, QueryHistory, 30, batch_rows=5) == 23
    assert [row["sql_text"] for row in search_history(store)] == ["SELECT 2"]
    assert purge_history(store, 30) == 0


def test_a_long_purge_leaves_sqlite_writable_for_the_history_under_way(sqlite_store):
    """SQLite has one write lock: one DELETE of every old row held it for the whole purge, and the gateway's history
    rows (and sign-ins, sessions, limits) waited behind it. Batches let a write in between two of them."""
    _fill_old_history(sqlite_store, 150_000)
    recorder = QueryRecorder(sqlite_store)
    waits: list[float] = []
    done = threading.Event()

    def write_history() -> None:
        while not done.is_set():
            started = time.perf_counter()
            recorder.write_many([QueryRecord("SELECT 3", "success", source="demo")])
            waits.append(time.perf_counter() - started)
            time.sleep(0.01)

    writer = threading.Thread(target=write_history)
    writer.start()
    try:
        started = time.perf_counter()
        keeper = RetentionKeeper(sqlite_store, history_days=30, audit_days=None)
        assert keeper.run_once() == {"query history": 150_000}
        purging = time.perf_counter() - started
    finally:
        done.set()
        writer.join()
    assert _history_rows(sqlite_store) == len(waits)  # every write landed, no old row stayed
    # A write waits one batch at most, not the purge: measured against the purge's own length on this machine.
    assert max(waits) < purging / 4, (max(waits), purging)


def test_the_gateway_starts_without_waiting_for_the_purge_and_stops_during_it(tmp_path, master_key, monkeypatch):
    """``start_catalog`` ran the first purge before returning, so a gateway that had not run for a while (or whose
    retention was just shortened) did not listen until every old row was gone."""
    from nexus_flight.catalog.vault import ENV_KEY

    monkeypatch.setenv(ENV_KEY, master_key)
    data = tmp_path / "data"
    store = CatalogStore(data_dir=data)
    _fill_old_history(store, 150_000)
    store.close()
    started = time.perf_counter()
    catalog = start_catalog(load_config(None, env={}, flags={"data_dir": data, "health_checks": False}))
    try:
        opened = time.perf_counter() - started
        assert wait_until(lambda: _history_rows(catalog.store) < 150_000, 30)
        stopping = time.perf_counter()
        catalog.retention.stop()
        stopped = time.perf_counter() - stopping
        left = _history_rows(catalog.store)
        catalog.retention.start()  # the rest goes at the next pass
        assert wait_until(lambda: _history_rows(catalog.store) == 0, 60)
        purging = time.perf_counter() - started
    finally:
        catalog.close()
    assert 0 < left < 150_000, left  # stopped between two batches, not after the purge
    assert opened < purging / 4 and stopped < purging / 4, (opened, stopped, purging)


def test_the_audit_trail_keeps_its_own_retention(store):
    now = datetime.now(UTC)
    AuditLog(store, background=False).write_many([
        AuditRecord("auth_failure", actor="old", created_at=now - timedelta(days=400)),
        AuditRecord("auth_failure", actor="recent", created_at=now - timedelta(days=40)),
    ])
    record_query(store, QueryRecord("SELECT 1", "success", created_at=now - timedelta(days=40)))
    assert RetentionKeeper(store, history_days=30, audit_days=365).run_once() == {"query history": 1,
                                                                                  "audit trail": 1}
    assert [row["actor"] for row in search_audit(store, limit=None)] == ["recent"] and search_history(store) == []


def test_a_catalog_that_cannot_be_reached_skips_the_pass(tmp_path, keys, caplog):
    """A pass while the catalog cannot be opened (here its directory gone) logs why and leaves the thread going."""
    store = CatalogStore(data_dir=tmp_path / "gone", keys=keys)
    store.engine.dispose()
    shutil.rmtree(tmp_path / "gone")
    try:
        keeper = RetentionKeeper(store, history_days=30, audit_days=365, interval_seconds=0.05).start()
        assert wait_until(lambda: caplog.text.count("audit trail retention skipped") >= 2, 10)
    finally:
        keeper.stop()
        store.close()
    assert "query history retention skipped: the gateway's catalog database cannot be reached" in caplog.text
