"""CPU of one small query on the DuckDB engine's query path, in process: instance, cursor, run, release.

What the gateway's DuckDB adapter spends beside the Flight calls for each query (``DuckDBEngine.execute`` on the
demo database, the load benchmark's nation query, read to the end). Run it with two installs of the gateway to
compare them (each prints its interpreter): the thread's CPU per query, min and median of 5 rounds of 300.

Usage: python benchmarks/duckdb_cursor_bench.py [--database benchmarks/.data/cpu/tpch_sf1.duckdb]
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

from nexus_flight.backends.duckdb_engine import DuckDBEngine
from nexus_flight.core.source import QueryLimits

SQL = "SELECT * FROM nation WHERE n_nationkey < 5"
DEFAULT = Path(__file__).resolve().parent / ".data" / "cpu" / "tpch_sf1.duckdb"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default=str(DEFAULT), help="a demo database (cpu_per_query.py makes one)")
    args = parser.parse_args()
    engine = DuckDBEngine("demo", args.database, memory_limit="512MB")
    limits = QueryLimits(timeout_seconds=30)
    # Installs before the shared cursor have no ``validated`` flag: every query there took a fresh cursor.
    judged = {"validated": True} if "validated" in inspect.signature(engine.execute).parameters else {}

    def one() -> None:
        execution = engine.execute(SQL, None, limits, **judged)
        execution.reader.read_all()
        execution.close()

    for _ in range(50):
        one()
    rounds = []
    for _ in range(5):
        started = time.thread_time()
        for _ in range(300):
            one()
        rounds.append((time.thread_time() - started) / 300 * 1e3)
    rounds.sort()
    print(f"{sys.executable}: CPU per query {rounds[0]:.3f} ms min, {rounds[2]:.3f} ms median")
    engine.close()


if __name__ == "__main__":
    main()
