"""Server CPU per query: Nexus Flight vs ROAPI vs DuckDB in-process, for each of the load benchmark's queries.

Throughput on a machine whose cores are all busy is its cores divided by the CPU each query costs, so this is the
figure that says how far a server can go: the server process's CPU time (every thread: gRPC, Python, the engine)
over a run of queries, divided by their number. Four ADBC clients run each query kind in turn (the point lookup
with a new key each time, as in ``load_bench.py``); DuckDB runs the same texts in-process on the demo database as
the floor (what the engine alone spends). CPU time is less sensitive to a busy machine than latency or qps.

Usage: python benchmarks/cpu_per_query.py [--queries 600] [--peers roapi]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import adbc_driver_flightsql.dbapi as flightsql  # noqa: E402
import duckdb  # noqa: E402

from benchmarks.flight_sql_bench import start_roapi  # noqa: E402
from benchmarks.load_bench import MIX, TABLES, start_nexus  # noqa: E402
from nexus_flight.server.app.demo import demo_database, generate_parquet  # noqa: E402

KINDS = ("point lookup", "nation filter", "nation-region join", "text predicate")
CLIENTS = 4


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def texts(kind: int, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [MIX[kind].format(key=rng.randint(1, 6_000_000)) for _ in range(count)]


def run_clients(uri: str, kind: int, count: int) -> None:
    def client(seed: int) -> None:
        with flightsql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
            for sql in texts(kind, count // CLIENTS, seed):
                cur.execute(sql)
                cur.fetch_arrow_table()

    workers = [threading.Thread(target=client, args=(seed,)) for seed in range(CLIENTS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def server_ms(pid: int, uri: str, kind: int, count: int) -> float:
    run_clients(uri, kind, CLIENTS * 25)  # warm-up: connections, caches, the engine's first reads
    before = cpu_seconds(pid)
    run_clients(uri, kind, count)
    return (cpu_seconds(pid) - before) * 1e3 / count


def in_process_ms(database: Path, kind: int, count: int) -> float:
    with duckdb.connect(str(database), read_only=True) as con:
        for sql in texts(kind, 25, 99):
            con.execute(sql).to_arrow_table()
        before = time.process_time()
        for sql in texts(kind, count, 7):
            con.execute(sql).to_arrow_table()
        return (time.process_time() - before) * 1e3 / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=600, help="queries per kind and server")
    parser.add_argument("--peers", default="roapi")
    args = parser.parse_args()
    data_dir = ROOT / "benchmarks" / ".data"
    parquet_dir = data_dir / "parquet_sf1"
    if not (parquet_dir / "orders.parquet").exists():
        generate_parquet(parquet_dir, 1)
    database = demo_database(data_dir, 1)
    home = data_dir / "cpu"
    home.mkdir(parents=True, exist_ok=True)
    if not (home / database.name).exists():
        (home / database.name).symlink_to(database)
    processes = []
    try:
        proc, uri = start_nexus(home, 1, log="nexus-cpu.log")
        processes.append(proc)
        servers = [("nexus", proc.pid, uri)]
        if "roapi" in args.peers.split(","):
            proc, uri = start_roapi(parquet_dir, TABLES)
            processes.append(proc)
            servers.append(("roapi", proc.pid, uri))
        print(f"server CPU per query, ms ({args.queries} queries per kind, {CLIENTS} ADBC clients)")
        print(f"{'query':<20}" + "".join(f"{name:>10}" for name, _, _ in servers) + f"{'duckdb':>10}  nexus/roapi")
        for kind, label in enumerate(KINDS):
            measured = [server_ms(pid, uri, kind, args.queries) for _, pid, uri in servers]
            floor = in_process_ms(database, kind, args.queries)
            ratio = f"{measured[0] / measured[1]:10.2f}" if len(measured) > 1 else ""
            print(f"{label:<20}" + "".join(f"{ms:10.2f}" for ms in measured) + f"{floor:10.2f}  {ratio}", flush=True)
    finally:
        for proc in processes:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
