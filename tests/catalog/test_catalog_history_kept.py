"""Query history and the audit trail lose nothing a catalog outage or one unusual record would have cost.

Against real PostgreSQL catalogs: one this module stops and starts (an outage, then recovery), and the run's
shared one (text PostgreSQL cannot store as is: NUL, lone surrogates, names longer than their column).
"""

from __future__ import annotations

import hashlib
import time

import pytest

from nexus_flight.catalog.audit import AuditLog, AuditRecord, search_audit
from nexus_flight.catalog.history import QueryRecord, QueryRecorder, search_history
from nexus_flight.catalog.history_writer import HistoryWriter
from nexus_flight.catalog.models import AuditEvent, QueryHistory
from nexus_flight.catalog.record_journal import journal_of
from nexus_flight.catalog.store import CatalogStore
from tests.support.servers import PrivatePostgres, private_server


@pytest.fixture(scope="module")
def outage_pg():
    """A PostgreSQL of this module's own: the outage test stops and starts it."""
    with private_server(PrivatePostgres) as server:
        yield server


def test_records_written_while_the_catalog_is_down_land_once_it_is_back(outage_pg, keys):
    store = CatalogStore(f"postgresql+psycopg://{outage_pg.user}@{outage_pg.host}:{outage_pg.port}/"
                         f"{outage_pg.database}?connect_timeout=1", keys=keys)
    writer = HistoryWriter(QueryRecorder(store), window_seconds=0.05, retry_seconds=(0.1, 0.5))
    try:
        for i in range(3):
            writer(QueryRecord(f"SELECT {i}", "success"))
        assert writer.flush(10) and writer.written == 3
        outage_pg.stop()
        started = time.monotonic()
        for i in range(3, 8):
            writer(QueryRecord(f"SELECT {i}", "success"))
        assert time.monotonic() - started < 0.5  # queries ending meanwhile are not held up
        assert not writer.flush(2), "written although the catalog is down"
        assert (writer.written, writer.dropped, writer.pending) == (3, 0, 5)
        outage_pg.start()
        store.engine.dispose()  # the pool's connections died with the server (its pre-ping would also find out)
        assert writer.flush(30)
        assert (writer.written, writer.dropped) == (8, 0)
        assert sorted(r["sql_text"] for r in search_history(store, limit=None)) == [f"SELECT {i}" for i in range(8)]
    finally:
        writer.close()
        store.close()


def _outage_store(outage_pg, keys, data_dir) -> CatalogStore:
    return CatalogStore(f"postgresql+psycopg://{outage_pg.user}@{outage_pg.host}:{outage_pg.port}/"
                        f"{outage_pg.database}?connect_timeout=1", keys=keys, data_dir=data_dir)


def _history_sql(store: CatalogStore) -> list[str]:
    return sorted(r["sql_text"] for r in search_history(store, limit=None))


def test_records_beyond_what_is_held_go_to_the_journal_and_land_once_the_catalog_is_back(outage_pg, keys, tmp_path):
    store = _outage_store(outage_pg, keys, tmp_path)
    with store.session() as session:  # the module's catalog: only this test's rows
        session.execute(QueryHistory.__table__.delete())
    writer = HistoryWriter(QueryRecorder(store), max_pending=3, window_seconds=0.05, retry_seconds=(0.1, 0.5),
                           journal=journal_of(store, "history"))
    try:
        outage_pg.stop()
        started = time.monotonic()
        for i in range(20):
            writer(QueryRecord(f"SELECT {i}", "success"))
        assert time.monotonic() - started < 0.5  # journaling keeps queries from waiting too
        counts = writer.counts()
        assert (counts.dropped, counts.pending, counts.journaled) == (0, 3, 17)
        assert len(list((tmp_path / "journal").glob("history-*.jsonl"))) == 1
        outage_pg.start()
        store.engine.dispose()
        deadline = time.monotonic() + 30
        while writer.counts().journaled or writer.pending:
            assert time.monotonic() < deadline, writer.counts()
            time.sleep(0.1)
        assert _history_sql(store) == sorted(f"SELECT {i}" for i in range(20))
        assert writer.counts().dropped == 0
    finally:
        writer.close()
        store.close()
    assert not list((tmp_path / "journal").glob("*.jsonl"))  # an emptied journal is removed


def test_records_of_a_gateway_stopped_during_an_outage_are_written_by_the_next_start(outage_pg, keys, tmp_path):
    store = _outage_store(outage_pg, keys, tmp_path)
    with store.session() as session:
        session.execute(QueryHistory.__table__.delete())
        session.execute(AuditEvent.__table__.delete())
    history = HistoryWriter(QueryRecorder(store), window_seconds=0.05, retry_seconds=(0.1, 0.5),
                            journal=journal_of(store, "history"))
    audit = AuditLog(store)
    history(QueryRecord("SELECT 'before'", "success", user="ann"))
    assert history.flush(10)
    outage_pg.stop()
    for i in range(5):
        history(QueryRecord(f"SELECT {i}", "success", user="ann", parameters=[[i, "x", None]],
                            phases_ms={"execute": 1.5}))
    audit(AuditRecord("auth_failure", "mallory", auth_method="password", detail={"reason": "wrong password"}))
    assert not history.flush(1)
    started = time.monotonic()
    history.close()
    audit.close()
    store.close()
    assert time.monotonic() - started < 8  # the stop does not wait on the catalog
    assert len(list((tmp_path / "journal").glob("*.jsonl"))) == 2
    outage_pg.start()

    later = _outage_store(outage_pg, keys, tmp_path)  # the next start, on the same data directory
    writer = HistoryWriter(QueryRecorder(later), journal=journal_of(later, "history"))
    later_audit = AuditLog(later)
    try:
        deadline = time.monotonic() + 30
        while list((tmp_path / "journal").glob("*.jsonl")):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        rows = {r["sql_text"]: r for r in search_history(later, limit=None)}
        assert sorted(rows) == sorted(["SELECT 'before'", *(f"SELECT {i}" for i in range(5))])
        assert rows["SELECT 3"]["user_name"] == "ann" and rows["SELECT 3"]["execute_ms"] == 1.5
        assert rows["SELECT 3"]["created_at"] < rows["SELECT 4"]["created_at"]
        [event] = search_audit(later, kind="auth_failure")
        assert event["actor"] == "mallory" and "wrong password" in event["detail"]
    finally:
        writer.close()
        later_audit.close()
        later.close()


def test_text_postgresql_cannot_store_as_is_is_recorded_with_the_rest_of_its_batch(pg_store):
    """A statement refused for a NUL (QV-010) is exactly what an attacker would send to take a batch down."""
    weird = [
        QueryRecord("SELECT 'a\x00b'", "rejected", error="QV-010 NUL at \x00", user="eve"),
        QueryRecord("SELECT 'x\udcffy'", "rejected", source="s" * 300, user="eve"),
        QueryRecord("SELECT 1", "success", user="eve\x00", correlation_id="c\x00"),
    ]
    batch = [QueryRecord("SELECT 'before'", "success"), *weird, QueryRecord("SELECT 'after'", "success")]
    writer = HistoryWriter(QueryRecorder(pg_store), window_seconds=5)
    try:
        for record in batch:
            writer(record)
        assert writer.flush(10)
        assert (writer.written, writer.dropped) == (5, 0)
    finally:
        writer.close()
    rows = {r["sql_sha256"]: r for r in search_history(pg_store, limit=None)}
    assert len(rows) == 5
    nul = rows[hashlib.sha256(b"SELECT 'a\x00b'").hexdigest()]  # the hash is the statement's own
    assert nul["sql_text"] == "SELECT 'a\ufffdb'" and nul["error_message"] == "QV-010 NUL at \ufffd"
    long_source = rows[hashlib.sha256("SELECT 'x\udcffy'".encode("utf-8", "surrogatepass")).hexdigest()]
    assert "\ufffd" in long_source["sql_text"] and len(long_source["source_name"]) == 255
    assert long_source["source_name"].endswith("...")


def test_a_record_the_catalog_refuses_costs_only_itself():
    """A stand-in recorder that refuses one record (no real catalog refuses one any more: ``catalog.storable``)."""
    written: list[str] = []

    class Picky:
        def write_many(self, records):
            if any(r.sql == "SELECT 'refused'" for r in records):
                raise ValueError("refused")
            written.extend(r.sql for r in records)

    writer = HistoryWriter(Picky(), window_seconds=5)
    for sql in ("SELECT 1", "SELECT 'refused'", "SELECT 2"):
        writer(QueryRecord(sql, "success"))
    assert writer.flush(10)
    assert written == ["SELECT 1", "SELECT 2"] and (writer.written, writer.dropped) == (2, 1)
    writer.close()


def test_a_sign_in_failure_named_with_a_nul_is_audited_with_the_others(pg_store):
    """Basic credentials may carry any user name: its failure is recorded, and so are the failures around it."""
    log = AuditLog(pg_store)
    try:
        for actor in ("mallory", "mal\x00lory", "m" * 400):
            log(AuditRecord("auth_failure", actor=actor, auth_method="password", detail={"reason": "wrong password"}))
        assert log.flush(10)
    finally:
        log.close()
    actors = sorted(e["actor"] for e in search_audit(pg_store, kind="auth_failure"))
    assert actors == sorted(["mallory", "mal\ufffdlory", "m" * 252 + "..."])


def test_through_adbc_a_nul_statement_leaves_every_query_in_the_history(pg_url, keys, tmp_path):
    """The attack end to end: statements carrying a NUL (raw Flight SQL commands: ADBC's C strings end at a NUL),
    refused QV-010, between ordinary queries from the ADBC client."""
    import adbc_driver_flightsql.dbapi as flightsql
    import duckdb
    import pyarrow as pa
    import pyarrow.flight as flight
    from flightsql import flightsql_pb2 as pb

    from nexus_flight.catalog.directory import CatalogSourceDirectory, history_observer
    from nexus_flight.core.settings import ServerSettings
    from nexus_flight.server.app.gateway import Gateway
    from tests.support import flightsql_raw as raw

    path = tmp_path / "sales.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE orders AS SELECT range AS id FROM range(5)")
    store = CatalogStore(pg_url, keys=keys)
    store.add_source("sales", "duckdb", {"path": str(path)})
    history = history_observer(store)
    gateway = Gateway(ServerSettings(port=0, data_dir=tmp_path, demo_scale=None),
                      sources=CatalogSourceDirectory(store, default="sales", refresh_seconds=0),
                      observers=[history]).start()
    try:
        client = flight.connect(gateway.location)
        with flightsql.connect(gateway.location, autocommit=True) as conn, conn.cursor() as cur:
            for i in range(3):
                cur.execute(f"SELECT count(*) + {i} AS n FROM orders")
                assert cur.fetchall() == [(5 + i,)]
                with pytest.raises(pa.ArrowInvalid, match="QV-010"):  # INVALID_ARGUMENT
                    client.get_flight_info(raw.descriptor(pb.CommandStatementQuery(query=f"SELECT {i} AS n\x00")))
        client.close()
        assert history.flush(10)
        rows = search_history(store, limit=None)
        assert sorted((r["status"], r["sql_text"]) for r in rows) == sorted(
            [("success", f"SELECT count(*) + {i} AS n FROM orders") for i in range(3)]
            + [("rejected", f"SELECT {i} AS n\ufffd") for i in range(3)])
    finally:
        gateway.shutdown()
        history.close()
        store.close()


def test_an_engine_message_postgresql_cannot_store_as_is_still_marks_the_source(pg_store, tmp_path):
    """A source's failure (and its stale schema's) carries the engine's own message, whatever bytes it holds."""
    import duckdb

    from nexus_flight.catalog.health import record_failure
    from nexus_flight.catalog.schema_cache import cached_schema, mark_stale, save_schema

    with duckdb.connect(str(tmp_path / "sales.duckdb")) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    pg_store.add_source("sales", "duckdb", {"path": str(tmp_path / "sales.duckdb")})
    save_schema(pg_store, "sales", {"schemas": {}})
    record_failure(pg_store, "sales", "engine said \x00 then stopped")
    mark_stale(pg_store, "sales", "engine said \x00 again")
    source = pg_store.get_source("sales")
    assert source.status == "error" and source.last_error == "engine said \ufffd then stopped"
    assert cached_schema(pg_store, "sales").stale
