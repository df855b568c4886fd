"""Metadata of a PostgreSQL source with thousands of tables, the way BI tools ask for it, against psycopg.

Run from the repository root:  python -m benchmarks.metadata_bench [--tables 2000] [--repeat 3]
Starts a private PostgreSQL of its own (tests/support/servers.py; `tests/install-servers.sh` installs it) and a
served gateway (`nexus-flight serve`, first on PATH) with that database as a source. Times, through ADBC:
the first table listing (the gateway's snapshot of the source), then, repeated, the table listing and every
table's columns (``adbc_get_objects``: what DBeaver's navigator and ADBC's ``get_objects`` ask); and psycopg
reading the same columns from ``information_schema``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import psycopg

from tests.operations.serving import serve
from tests.support.servers import PrivatePostgres, private_server


def _objects(conn, depth: str) -> int:
    objects = conn.adbc_get_objects(depth=depth, catalog_filter="pg").read_all().to_pylist()
    return sum(len(s["db_schema_tables"]) for c in objects for s in c["catalog_db_schemas"])


def _best(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("CI", "true")
    with private_server(PrivatePostgres) as pg, tempfile.TemporaryDirectory() as home:
        with psycopg.connect(host=pg.host, port=pg.port, user=pg.user, dbname=pg.database, autocommit=True) as con:
            con.execute("CREATE SCHEMA wide")
            for i in range(args.tables):
                con.execute(f"CREATE TABLE wide.t{i} (id int PRIMARY KEY, a text, b numeric(12,2), c timestamptz, "
                            "d bigint)")
            con.execute(f"GRANT USAGE ON SCHEMA wide TO {pg.reader}")
            con.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA wide TO {pg.reader}")
            sql = ("SELECT table_name, column_name, data_type FROM information_schema.columns "
                   "WHERE table_schema = 'wide'")
            direct = _best(lambda: con.execute(sql).fetchall(), args.repeat)
        config = Path(home) / "gateway.toml"
        config.write_text(f'[[sources]]\nname = "pg"\ntype = "postgresql"\noptions = {{ host = "{pg.host}", '
                          f'port = {pg.port}, database = "{pg.database}", username = "{pg.reader}" }}\n')
        served = serve(Path(home) / "data", "--no-demo", "--config", str(config), seconds=120)
        try:
            with flightsql.connect(served.location, autocommit=True) as conn:
                first = _best(lambda: _objects(conn, "tables"), 1)
                listed = _best(lambda: _objects(conn, "tables"), args.repeat)
                columns = _best(lambda: _objects(conn, "columns"), args.repeat)
        finally:
            served.stop()
    print(f"{args.tables} tables × 5 columns: first listing (snapshot) {first:.2f} s; listing {listed:.3f} s; "
          f"every table's columns {columns:.3f} s; psycopg information_schema.columns {direct:.3f} s "
          f"(columns {columns / direct:.1f}× psycopg)")


if __name__ == "__main__":
    main()
