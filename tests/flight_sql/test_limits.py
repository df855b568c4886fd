"""Limits: a query over the memory limit or a result cap fails with an error naming it; the server keeps serving."""

from __future__ import annotations

import shutil

import adbc_driver_flightsql.dbapi as flightsql
import pytest

from nexus_flight.core.source import SourceSpec


def test_query_over_the_memory_limit_names_the_limit(make_gateway, demo_data_dir, tmp_path):
    path = tmp_path / "small.duckdb"
    shutil.copy(next(demo_data_dir.glob("tpch_sf0_01.duckdb")), path)
    source = SourceSpec(name="tight", kind="duckdb", options={"path": str(path), "memory_limit": "8MB", "threads": 1})
    gw = make_gateway(sources=(source,))
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        # list() aggregates cannot spill to disk: the whole column must fit in memory.
        with pytest.raises(flightsql.ProgrammingError) as info:
            cur.execute("SELECT list(l_comment || l_comment || l_comment) FROM tight.main.lineitem")
            cur.fetchall()
        message = str(info.value)
        assert "memory_limit=8MB" in message and "INVALID_ARGUMENT" in message and "Traceback" not in message
        cur.execute("SELECT count(*) FROM tight.main.nation")
        assert cur.fetchone()[0] == 25


def test_server_validation_limits_apply_to_every_source(make_gateway):
    gw = make_gateway(max_query_length=200, max_joins=1)
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(flightsql.ProgrammingError, match="QV-009"):
            cur.execute("SELECT 1 AS x" + " " * 300)
        with pytest.raises(flightsql.ProgrammingError, match="QV-008"):
            cur.execute("SELECT 1 FROM nation JOIN region ON n_regionkey = r_regionkey JOIN customer ON true")
        cur.execute("SELECT count(*) FROM nation JOIN region ON n_regionkey = r_regionkey")
        assert cur.fetchone()[0] == 25


def test_result_caps_stop_the_query_after_the_rows_they_allow(make_gateway):
    """The batch that would cross max_result_rows is not sent: the client gets INVALID_ARGUMENT naming the cap."""
    gw = make_gateway(max_result_rows=10_000, batch_rows=4_096)
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(flightsql.ProgrammingError) as info:
            cur.execute("SELECT * FROM lineitem")
            cur.fetch_arrow_table()
        message = str(info.value)
        assert "max_result_rows=10000" in message and "INVALID_ARGUMENT" in message
        cur.execute("SELECT * FROM lineitem LIMIT 10000")  # at the cap, not over it
        assert cur.fetch_arrow_table().num_rows == 10_000
    gw = make_gateway(max_result_bytes=1_000)
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(flightsql.ProgrammingError, match="max_result_bytes=1000"):
            cur.execute("SELECT * FROM nation")
            cur.fetch_arrow_table()


def test_validation_limits_from_the_configuration_file(tmp_path):
    from nexus_flight.catalog.config_file import load_config

    path = tmp_path / "gateway.toml"
    path.write_text("[server]\nmax_query_length = 5000\nmax_joins = 8\n")
    server = load_config(path).server
    assert (server.max_query_length, server.max_joins, server.max_nesting) == (5000, 8, 64)
