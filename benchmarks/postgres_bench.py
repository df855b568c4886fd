"""1M rows from PostgreSQL: the backend's stream vs direct ADBC vs psycopg rows → Arrow.

Run from the repository root:  python -m benchmarks.postgres_bench [--rows 1000000] [--repeat 3]
Starts a private PostgreSQL of its own (tests/support/servers.py; `tests/install-servers.sh` installs it).
"""

from __future__ import annotations

import argparse
import time

import adbc_driver_postgresql.dbapi as pg
import pyarrow as pa

from nexus_flight.backends.postgres import PostgresBackend
from nexus_flight.core.source import QueryLimits, SourceSpec
from tests.support.results import plan_for


def prepare(uri: str, rows: int) -> str:
    table = f"nexus_bench.rows_{rows}"
    with pg.connect(uri, autocommit=True) as con, con.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS nexus_bench")
        cur.execute(f"SELECT to_regclass('{table}') IS NOT NULL")
        if not cur.fetchone()[0]:
            cur.execute(
                f"CREATE TABLE {table} AS SELECT g::bigint AS id, (g % 100000) / "
                f"100.0::numeric(12,2) AS price, "
                "md5(g::text) AS name, timestamptz '2024-01-01' + g * interval '1 second' AS ts, "
                "g % 2 = 0 AS flag, (g % 50)::int AS qty FROM generate_series(1, "
                f"{rows}) g"
            )
            cur.execute(f"ALTER TABLE {table} ALTER COLUMN price TYPE numeric(12,2)")
    return table


def best(fn, repeat: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - started)
    return min(times), n


def via_backend(backend: PostgresBackend, sql: str) -> int:
    execution = backend.execute(plan_for(backend, sql), None, QueryLimits())
    n = sum(batch.num_rows for batch in execution.reader)
    execution.close()
    return n


def via_adbc(con, sql: str) -> int:
    with con.cursor() as cur:
        cur.execute(sql)
        return sum(batch.num_rows for batch in cur.fetch_record_batch())


def via_psycopg(dsn: str, sql: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as con, con.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall()
        names = [d.name for d in cur.description]
    table = pa.Table.from_pydict({name: [r[i] for r in rows] for i, name in enumerate(names)})
    return table.num_rows


def via_gateway(location: str, sql: str) -> int:
    import adbc_driver_flightsql.dbapi as flightsql

    with flightsql.connect(location, autocommit=True) as con, con.cursor() as cur:
        cur.execute(sql)
        return sum(batch.num_rows for batch in cur.fetch_record_batch())


def via_gateway_concurrent(location: str, sql: str, clients: int) -> list[float]:
    """``clients`` clients each reading the query at once; returns each one's latency."""
    from concurrent.futures import ThreadPoolExecutor

    def one(_):
        started = time.perf_counter()
        via_gateway(location, sql)
        return time.perf_counter() - started

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(clients)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-gateway", action="store_true", help="skip the Flight SQL gateway measurements")
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    from tests.support.servers import PrivatePostgres, private_server

    with private_server(PrivatePostgres) as server:
        measure(args, server)


def measure(args, server) -> None:
    table = prepare(server.uri(), args.rows)
    sql = f"SELECT * FROM {table}"
    backend = PostgresBackend(SourceSpec("bench", "postgres", server.options()))
    via_backend(backend, f"SELECT * FROM {table} LIMIT 10")  # open the pooled connection first
    direct = pg.connect(server.uri(), autocommit=True)  # connections open on both sides: only streaming is timed
    results = {
        "backend reader": best(lambda: via_backend(backend, sql), args.repeat),
        "direct ADBC": best(lambda: via_adbc(direct, sql), args.repeat),
        "psycopg rows->Arrow": best(lambda: via_psycopg(server.dsn(), sql), max(1, args.repeat - 1)),
    }
    backend.close()
    direct.close()
    gateway = None
    if not args.no_gateway:
        from nexus_flight.core.settings import ServerSettings
        from nexus_flight.core.source import SourceSpec as Spec
        from nexus_flight.server.app.gateway import Gateway

        gateway = Gateway(
            ServerSettings(port=0, demo_scale=None), [Spec("pg", "postgres", server.options())]
        ).start()
        results["gateway (Flight SQL)"] = best(
            lambda: via_gateway(gateway.location, f"SELECT * FROM pg.{table}"), args.repeat
        )
    base = results["direct ADBC"][0]
    print(
        f"PostgreSQL, {args.rows:,} rows x 6 columns (bigint, numeric(12,2), text, "
        f"timestamptz, bool, int), best of "
        f"{args.repeat}"
    )
    for name, (seconds, n) in results.items():
        assert n == args.rows, (name, n)
        print(
            f"  {name:<22} {seconds:7.3f} s  {n / seconds / 1e6:6.2f} M rows/s  "
            f"{seconds / base:5.2f}x direct ADBC"
        )
    print(
        f"  psycopg / backend: {results['psycopg rows->Arrow'][0] / results['backend reader'][0]:.1f}x slower"
    )
    if gateway is not None:
        small = f"SELECT * FROM pg.{table} WHERE id <= 10000"
        started = time.perf_counter()
        latencies = sorted(via_gateway_concurrent(gateway.location, small, args.clients))
        wall = time.perf_counter() - started
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"  {args.clients} concurrent clients x 10,000 rows through the gateway (pool_size=8): "
            f"{args.clients * 10_000 / wall / 1e6:.2f} M rows/s total, p50 "
            f"{latencies[len(latencies) // 2]:.3f} s, "
            f"p99 {p99:.3f} s"
        )
        gateway.shutdown()


if __name__ == "__main__":
    main()
