"""1M rows from MariaDB: the MySQL backend (MariaDB Connector/C, binary protocol) against its peers in one run.

Run from the repository root:  python -m benchmarks.mysql_bench [--rows 1000000] [--repeat 3]
Starts a private MariaDB of its own (tests/support/servers.py; `tests/install-servers.sh` installs it).

Peers: the former path (DuckDB's MySQL scanner, pip duckdb-extension-mysql-scanner), pymysql with an unbuffered
cursor turned into Arrow, and connectorx when it is importable (pip install connectorx; it loads whole results).
"""

from __future__ import annotations

import argparse
import time

import pyarrow as pa
import pymysql

from nexus_flight.backends.mysql import MySQLBackend
from nexus_flight.core.source import QueryLimits
from tests.support.mysql_reader import READER, READER_PASSWORD, reader_spec
from tests.support.results import plan_for

DATABASE = "nexus_bench"


def prepare(server, rows: int) -> str:
    table = f"rows_{rows}"
    con = server.connect()
    with con.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        cur.execute(
            "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (DATABASE, table),
        )
        if cur.fetchone()[0] == 0:
            cur.execute(
                f"CREATE TABLE {DATABASE}.{table} (id BIGINT, price DECIMAL(12,2), name VARCHAR(64), ts DATETIME, "
                "flag BOOLEAN, qty INT)"
            )
            # MariaDB's sequence engine generates the rows on the server.
            cur.execute(
                f"INSERT INTO {DATABASE}.{table} SELECT seq, (seq % 100000) / 100, md5(seq), "
                f"TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND, seq % 2 = 0, seq % 50 "
                f"FROM {DATABASE}.seq_1_to_{rows}"
            )
    con.close()
    return table


def best(fn, repeat: int) -> tuple[float, int, pa.Schema]:
    times, n, schema = [], 0, None
    for _ in range(repeat):
        started = time.perf_counter()
        n, schema = fn()
        times.append(time.perf_counter() - started)
    return min(times), n, schema


def via_backend(backend: MySQLBackend, sql: str):
    execution = backend.execute(plan_for(backend, sql), None, QueryLimits())
    n = sum(batch.num_rows for batch in execution.reader)
    schema = execution.reader.schema
    execution.close()
    return n, schema


def duckdb_scanner(server):
    """The former path: a READ_ONLY attachment of DuckDB's MySQL scanner (None when the extension is missing)."""
    try:
        import duckdb
        import duckdb_extension_mysql_scanner
    except ImportError:
        return None
    from pathlib import Path

    path = (
        Path(duckdb_extension_mysql_scanner.__file__).parent
        / "extensions"
        / f"v{duckdb.__version__}"
        / "mysql_scanner.duckdb_extension"
    )
    db = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    db.execute(f"LOAD '{path}'")
    db.execute(
        f"ATTACH 'host={server.host} port={server.port} user={READER} password={READER_PASSWORD} "
        f"database={DATABASE}' AS m (TYPE mysql, READ_ONLY)"
    )
    return db


def via_scanner(db, sql: str):
    reader = db.cursor().execute(sql).to_arrow_reader(65536)
    return sum(b.num_rows for b in reader), reader.schema


def via_connectorx(server, sql: str):
    import connectorx

    uri = f"mysql://{READER}:{READER_PASSWORD}@{server.host}:{server.port}/{DATABASE}"
    table = connectorx.read_sql(uri, sql, return_type="arrow")
    return table.num_rows, table.schema


def via_pymysql(server, sql: str):
    con = pymysql.connect(
        host=server.host,
        port=server.port,
        user=READER,
        password=READER_PASSWORD,
        database=DATABASE,
        cursorclass=pymysql.cursors.SSCursor,
    )
    with con.cursor() as cur:
        cur.execute(sql)
        names = [d[0] for d in cur.description]
        n, schema = 0, None
        while rows := cur.fetchmany(65536):
            batch = pa.RecordBatch.from_pydict({name: [r[i] for r in rows] for i, name in enumerate(names)})
            schema = batch.schema
            n += len(rows)
    con.close()
    return n, schema


def via_gateway(location: str, sql: str):
    import adbc_driver_flightsql.dbapi as flightsql

    with flightsql.connect(location, autocommit=True) as con, con.cursor() as cur:
        cur.execute(sql)
        reader = cur.fetch_record_batch()
        return sum(batch.num_rows for batch in reader), reader.schema


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-gateway", action="store_true", help="skip the Flight SQL gateway measurement")
    args = parser.parse_args()
    from tests.support.servers import PrivateMariaDB, private_server

    with private_server(PrivateMariaDB) as server:
        measure(args, server)


def measure(args, server) -> None:
    table = prepare(server, args.rows)
    spec = reader_spec(server, DATABASE, name="bench")
    backend = MySQLBackend(spec)
    sql = f"SELECT * FROM {table}"
    results = {"backend reader": best(lambda: via_backend(backend, sql), args.repeat)}
    scanner = duckdb_scanner(server)
    if scanner is not None:
        results["DuckDB scanner (former)"] = best(lambda: via_scanner(scanner, f"SELECT * FROM m.{table}"), args.repeat)
    else:
        print("  (duckdb-extension-mysql-scanner not installed: skipped)")
    try:
        results["connectorx"] = best(lambda: via_connectorx(server, sql), args.repeat)
    except ImportError:
        print("  (connectorx not installed: skipped)")
    results["pymysql rows->Arrow"] = best(lambda: via_pymysql(server, sql), 1)
    backend.close()
    if not args.no_gateway:
        from nexus_flight.core.settings import ServerSettings
        from nexus_flight.server.app.gateway import Gateway

        gateway = Gateway(ServerSettings(port=0, demo_scale=None), [spec]).start()
        results["gateway (Flight SQL)"] = best(
            lambda: via_gateway(gateway.location, f"SELECT * FROM bench.{DATABASE}.{table}"), args.repeat
        )
        gateway.shutdown()
    base = results["backend reader"][0]
    print(
        f"MariaDB, {args.rows:,} rows x 6 columns (bigint, decimal(12,2), varchar, datetime, bool, int), "
        f"best of {args.repeat}"
    )
    for name, (seconds, n, schema) in results.items():
        assert n == args.rows, (name, n)
        price = schema.field("price").type
        print(
            f"  {name:<24} {seconds:7.3f} s  {n / seconds / 1e6:6.2f} M rows/s  "
            f"{seconds / base:5.2f}x backend  price: {price}"
        )


if __name__ == "__main__":
    main()
