"""Each failure a client can cause arrives with the status that names it, and leaves one history row."""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pytest

from nexus_flight.core.source import SourceSpec

SLOW = "SELECT count(*) FROM range(100000000000) a"  # runs for minutes unless interrupted


def _status(message: str) -> str:
    """The gRPC status ADBC reports after the message: "... (DeadlineExceeded; DoGet: ...)"."""
    return message.rsplit("(", 1)[1].split(";")[0]


def _fail(gateway, sql: str) -> tuple[str, list]:
    """Run ``sql`` through ADBC; return the error text and the query events it left."""
    events: list = []
    gateway.service.observers.append(events.append)
    try:
        with flightsql.connect(gateway.location, autocommit=True) as conn, conn.cursor() as cur:
            with pytest.raises(adbc_driver_manager.Error) as failure:
                cur.execute(sql)
                cur.fetch_arrow_table()
    finally:
        gateway.service.observers.remove(events.append)
    return str(failure.value), events


def test_duckdb_query_stopped_by_the_server_timeout_is_deadline_exceeded_naming_the_limit(make_gateway):
    message, events = _fail(make_gateway(query_timeout_seconds=0.5), SLOW)
    assert _status(message) == "DeadlineExceeded", message
    assert "query_timeout=0.5s" in message
    assert [e.status for e in events] == ["timeout"]


@pytest.mark.parametrize("catalog", ["nosuch", "Gone"])
def test_unknown_source_in_a_three_part_name_is_not_found_naming_the_known_catalogs(make_gateway, tpch_dir, catalog):
    files = SourceSpec("files", "files", {"tables": [{"name": "nation", "location": str(tpch_dir / "nation.parquet")}]})
    message, events = _fail(make_gateway(sources=(files,)), f"SELECT * FROM {catalog}.main.nation")
    assert _status(message) == "NotFound", message
    assert f"unknown catalog '{catalog}'; known catalogs: demo, files" in message
    assert [e.status for e in events] == ["error"]


def test_a_query_naming_two_sources_is_refused_once_with_one_history_row(make_gateway, tpch_dir):
    files = SourceSpec("files", "files", {"tables": [{"name": "nation", "location": str(tpch_dir / "nation.parquet")}]})
    message, events = _fail(
        make_gateway(sources=(files,)),
        "SELECT * FROM demo.main.nation n JOIN files.main.nation m ON n.n_nationkey = m.n_nationkey",
    )
    assert "names 2 sources (demo, files)" in message
    assert len(events) == 1, [(e.status, e.error_code) for e in events]


def test_unknown_postgres_table_is_not_found_and_recorded_as_an_error(make_gateway, postgres_server):
    pg = SourceSpec("pg", "postgres", postgres_server.options())
    message, events = _fail(make_gateway(sources=(pg,), demo_scale=None), "SELECT * FROM public.no_such_table")
    assert _status(message) == "NotFound", message
    assert 'relation "public.no_such_table" does not exist' in message
    assert [e.status for e in events] == ["error"]


def test_a_source_refusing_the_gateways_credentials_is_unavailable_naming_the_source(make_gateway, postgres_server):
    """UNAUTHENTICATED would tell the client its own login failed: the source's login is the gateway's problem.

    The private cluster trusts every login, so a role that does not exist stands for rejected credentials.
    """
    options = {"host": postgres_server.host, "port": postgres_server.port, "database": "test", "username": "ghost"}
    pg = SourceSpec("pg", "postgres", options, {"password": "wrong"})
    message, events = _fail(make_gateway(sources=(pg,), demo_scale=None), "SELECT 1")
    assert _status(message) == "Unavailable", message
    assert "source=pg" in message and "credentials" in message
    assert "wrong" not in message
    assert len(events) == 1
