"""What counting batches costs: the gateway's stream vs DuckDB's reader handed to Flight unchanged.

Usage: python benchmarks/stream_path_bench.py [--scale 1] [--repeat 5]
Runs both stream paths alternately on the same in-process gateway data and prints rows/s for each.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow.flight as flight

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nexus_flight.core.settings import ServerSettings  # noqa: E402
from nexus_flight.core.source import QueryLimits  # noqa: E402
from nexus_flight.server.app.gateway import Gateway  # noqa: E402
from nexus_flight.server.flight.server import FlightSqlServer  # noqa: E402

COUNTED = FlightSqlServer._stream


def direct(self, context, ticket):
    """The engine's reader straight to Flight: no counting, no mid-stream status mapping."""
    backend = self.service.sources.backend(ticket.plan.source)
    return flight.RecordBatchStream(backend.execute(ticket.plan, None, QueryLimits()).reader)


def scan(location: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        with flightsql.connect(location, autocommit=True) as conn, conn.cursor() as cur:
            started = time.perf_counter()
            cur.execute("SELECT * FROM lineitem")
            rows = cur.fetch_arrow_table().num_rows
            best = min(best, time.perf_counter() - started)
    return rows / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    gateway = Gateway(ServerSettings(port=0, data_dir=ROOT / "benchmarks" / ".data", demo_scale=args.scale)).start()
    try:
        for round_ in (1, 2):
            for name, stream in (("direct reader", direct), ("counting generator", COUNTED)):
                FlightSqlServer._stream = stream
                print(f"round {round_} {name:20s} {scan(gateway.location, args.repeat) / 1e6:.2f} M rows/s")
    finally:
        FlightSqlServer._stream = COUNTED
        gateway.shutdown()


if __name__ == "__main__":
    main()
