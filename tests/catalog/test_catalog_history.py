"""Query history: recording, redaction, search, retention and the system-table view."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from nexus_flight.catalog.history import PHASES, QueryRecord, QueryRecorder, purge_history, record_query, search_history
from nexus_flight.catalog.redaction import SCRUBBER
from nexus_flight.catalog.system_tables import QUERY_HISTORY_SCHEMA, system_table
from nexus_flight.core.errors import NotFoundError


def test_a_record_keeps_every_field(store):
    store.add_source("src", "duckdb")
    record_id = QueryRecorder(store)(
        QueryRecord(
            sql="SELECT * FROM t WHERE a = ?",
            status="success",
            source="src",
            user="alice",
            parameters=[[42], [43]],
            rows=10,
            bytes=800,
            total_ms=12.5,
            phases_ms={p: float(i) for i, p in enumerate(PHASES)},
            correlation_id="corr-1",
            retry_count=1,
            table_version="snapshot-7",
        )
    )
    (row,) = search_history(store)
    assert row["id"] == record_id
    assert row["source_id"] == store.get_source("src").id
    assert row["sql_sha256"] == hashlib.sha256(b"SELECT * FROM t WHERE a = ?").hexdigest()
    assert row["parameters"] == [["***"], ["***"]]
    assert (row["rows"], row["bytes"], row["total_ms"]) == (10, 800, 12.5)
    assert [row[f"{p}_ms"] for p in PHASES] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert (row["correlation_id"], row["retry_count"], row["table_version"]) == ("corr-1", 1, "snapshot-7")
    assert row["created_at"].tzinfo is not None


def test_parameters_kept_only_when_asked(sqlite_store):
    record_query(sqlite_store, QueryRecord("SELECT ?", "success", parameters=[[1, "x"]]), record_parameters=True)
    assert search_history(sqlite_store)[0]["parameters"] == [[1, "x"]]


def test_every_status_and_filters(store):
    now = datetime.now(UTC)
    for i, status in enumerate(("success", "error", "timeout", "cancelled", "rejected")):
        record_query(
            store,
            QueryRecord(
                f"SELECT {i}",
                status,
                source="a" if i % 2 else "b",
                user=f"u{i % 2}",
                created_at=now - timedelta(hours=i),
            ),
        )
    assert len(search_history(store)) == 5
    assert [r["sql_text"] for r in search_history(store, limit=2)] == ["SELECT 0", "SELECT 1"]
    assert {r["status"] for r in search_history(store, source="a")} == {"error", "cancelled"}
    assert {r["status"] for r in search_history(store, user="u0")} == {"success", "timeout", "rejected"}
    assert [r["status"] for r in search_history(store, status="timeout")] == ["timeout"]
    assert len(search_history(store, since=now - timedelta(hours=2, minutes=30))) == 3
    with pytest.raises(ValueError, match="unknown query status"):
        record_query(store, QueryRecord("SELECT 1", "weird"))
    with pytest.raises(ValueError, match="unknown query phases"):
        record_query(store, QueryRecord("SELECT 1", "success", phases_ms={"parse": 1.0}))


def test_retention_deletes_old_rows(store):
    now = datetime.now(UTC)
    for days in (0, 5, 31, 90):
        record_query(store, QueryRecord(f"SELECT {days}", "success", created_at=now - timedelta(days=days)))
    assert purge_history(store, 30, now=now) == 2
    assert sorted(r["sql_text"] for r in search_history(store)) == ["SELECT 0", "SELECT 5"]


def test_error_text_echoing_a_known_secret_is_scrubbed(sqlite_store):
    sqlite_store.add_source("pg", "postgresql", {"host": "h", "database": "d"}, {"password": "echoed-Secret-991"})
    sqlite_store.source_spec("pg")  # opening the vault record teaches the scrubber the value
    record_query(
        sqlite_store,
        QueryRecord("SELECT 1", "error", source="pg", error="login failed for password echoed-Secret-991"),
    )
    assert search_history(sqlite_store)[0]["error_message"] == "login failed for password ***"
    assert SCRUBBER.scrub("x echoed-Secret-991 y") == "x *** y"


def test_history_as_an_arrow_table(store):
    record_query(store, QueryRecord("SELECT 1", "success", user="alice", parameters=[[1]], rows=1))
    table = system_table(store, "query_history")
    assert table.schema == QUERY_HISTORY_SCHEMA
    assert table.num_rows == 1
    row = table.to_pylist()[0]
    assert row["user_name"] == "alice" and json.loads(row["parameters"]) == [["***"]]
    assert table.schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    with pytest.raises(NotFoundError, match="did you mean 'sources'"):
        system_table(store, "source")


def test_log_scrubber_filters_known_secrets():
    import io
    import logging

    from nexus_flight.catalog.redaction import ScrubbingFilter, install_log_scrubber

    SCRUBBER.add("log-Secret-778899")
    logger = logging.getLogger("tests.catalog.scrub")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        install_log_scrubber(logger)
        install_log_scrubber(logger)
        assert sum(isinstance(f, ScrubbingFilter) for f in handler.filters) == 1
        logger.warning("engine said: bad password %s for user x", "log-Secret-778899")
        assert stream.getvalue() == "engine said: bad password *** for user x\n"
    finally:
        logger.removeHandler(handler)


def test_audit_retention_deletes_only_events_past_it(store):
    from nexus_flight.catalog.audit import AuditLog, AuditRecord, purge_audit, search_audit

    now = datetime.now(UTC)
    AuditLog(store, background=False).write_many([
        AuditRecord("auth_failure", actor="old", created_at=now - timedelta(days=400)),
        AuditRecord("auth_failure", actor="recent", created_at=now - timedelta(days=300)),
    ])
    assert purge_audit(store, 365) == 1
    assert [e["actor"] for e in search_audit(store, limit=None)] == ["recent"]
