"""The memory limit: a query that needs more fails with an error naming the limit; the server keeps serving."""

from __future__ import annotations

import shutil

import adbc_driver_flightsql.dbapi as flightsql
import pytest

from backends.base import SourceSpec


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
