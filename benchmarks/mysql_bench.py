"""1M rows from MariaDB: the MySQL backend (DuckDB's scanner) vs connectorx, raw scanner, pymysql → Arrow.

Run from the repository root:  python -m benchmarks.mysql_bench [--rows 1000000] [--repeat 3]
Starts a private MariaDB of its own (tests/support/servers.py; `tests/install-servers.sh` installs it).
connectorx is optional (pip install connectorx); it is measured when importable.
"""

from __future__ import annotations

import argparse
import time

import duckdb
import pyarrow as pa
import pymysql

from backends.base import QueryLimits, SourceSpec
from backends.mysql import MySQLBackend, scanner_path


def prepare(server, rows: int) -> str:
    table = f"rows_{rows}"
    con = server.connect()
    with con.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS nexus_bench")
        cur.execute(
            "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
            "'nexus_bench' AND TABLE_NAME = %s",
            (table,),
        )
        exists = cur.fetchone()[0] == 1
    con.close()
    if not exists:
        db = duckdb.connect(
            config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        db.execute(f"LOAD '{scanner_path()}'")
        db.execute(f"ATTACH '{attach_string(server)}' AS m (TYPE mysql)")
        db.execute(
            f"CREATE TABLE m.{table} (id BIGINT, price DECIMAL(12,2), name VARCHAR(64), ts "
            f"TIMESTAMP, flag BOOLEAN, "
            "qty INTEGER)"
        )
        db.execute(
            f"INSERT INTO m.{table} SELECT i, (i % 100000) / 100, md5(i::VARCHAR), "
            f"TIMESTAMP '2024-01-01' + to_seconds(i), i % 2 = 0, (i % 50)::INTEGER FROM "
            f"range(1, {rows + 1}) t(i)"
        )
        db.close()
    return table


def attach_string(server) -> str:
    return f"host={server.host} port={server.port} user={server.user} database=nexus_bench"


def best(fn, repeat: int) -> tuple[float, int, pa.Schema]:
    times, n, schema = [], 0, None
    for _ in range(repeat):
        started = time.perf_counter()
        n, schema = fn()
        times.append(time.perf_counter() - started)
    return min(times), n, schema


def via_backend(backend: MySQLBackend, sql: str):
    execution = backend.execute(sql, None, QueryLimits())
    n = sum(batch.num_rows for batch in execution.reader)
    schema = execution.reader.schema
    execution.close()
    return n, schema


def via_raw_scanner(db, sql: str):
    reader = db.cursor().execute(sql).to_arrow_reader(65536)
    return sum(b.num_rows for b in reader), reader.schema


def via_connectorx(server, sql: str):
    import connectorx

    table = connectorx.read_sql(f"mysql://root@{server.host}:{server.port}/nexus_bench", sql, return_type="arrow")
    return table.num_rows, table.schema


def via_pymysql(server, sql: str):
    con = pymysql.connect(
        host=server.host, port=server.port, user="root", database="nexus_bench", cursorclass=pymysql.cursors.SSCursor
    )
    with con.cursor() as cur:
        cur.execute(sql)
        names = [d[0] for d in cur.description]
        batches, n = [], 0
        while rows := cur.fetchmany(65536):
            batches.append(
                pa.RecordBatch.from_pydict({name: [r[i] for r in rows] for i, name in enumerate(names)})
            )
            n += len(rows)
    con.close()
    return n, batches[0].schema


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
    backend = MySQLBackend(SourceSpec("bench", "mysql", server.options("nexus_bench")))
    raw = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    raw.execute(f"LOAD '{scanner_path()}'")
    raw.execute(
        f"ATTACH '{attach_string(server)}' AS m (TYPE mysql, READ_ONLY)"
    )
    results = {
        "backend reader": best(lambda: via_backend(backend, f"SELECT * FROM {table}"), args.repeat),
        "raw DuckDB scanner": best(lambda: via_raw_scanner(raw, f"SELECT * FROM m.{table}"), args.repeat),
    }
    try:
        results["connectorx"] = best(lambda: via_connectorx(server, f"SELECT * FROM {table}"), args.repeat)
    except ImportError:
        print("  (connectorx not installed: skipped)")
    results["pymysql rows->Arrow"] = best(lambda: via_pymysql(server, f"SELECT * FROM {table}"), 1)
    backend.close()
    if not args.no_gateway:
        from server.app import Gateway
        from server.config import ServerConfig

        spec = SourceSpec("my", "mysql", server.options("nexus_bench"))
        gateway = Gateway(ServerConfig(port=0, demo_scale=None, sources=(spec,))).start()
        results["gateway (Flight SQL)"] = best(
            lambda: via_gateway(gateway.location, f"SELECT * FROM my.nexus_bench.{table}"), args.repeat
        )
        gateway.shutdown()
    base = results["backend reader"][0]
    print(
        f"MariaDB, {args.rows:,} rows x 6 columns (bigint, decimal(12,2), varchar, "
        f"datetime, bool, int), best of "
        f"{args.repeat}"
    )
    for name, (seconds, n, schema) in results.items():
        assert n == args.rows, (name, n)
        price = schema.field("price").type
        print(
            f"  {name:<22} {seconds:7.3f} s  {n / seconds / 1e6:6.2f} M rows/s  "
            f"{seconds / base:5.2f}x backend  price: {price}"
        )


if __name__ == "__main__":
    main()
