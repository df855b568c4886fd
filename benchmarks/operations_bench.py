"""Faults an operator meets, measured: malformed requests, long operator chains, killed clients.

1. The same 2,000 malformed Flight requests (``tests/operations/fuzz.py``, seed 20260115) sent to the gateway and to
   ROAPI (DataFusion's Flight SQL server over the same TPC-H parquet tables): per-request latency and how many got
   an unspecific status (INTERNAL, UNKNOWN) or none within 5 s.
2. ``SELECT 1 + 1 + … + 1``: DuckDB's own time to run it (in-process, no gateway) against the gateway's answer time
   (refused at more than ``max_operator_depth`` = 256 operators).
3. Server RSS after rounds of five clients SIGKILLed mid-stream (the gateway runs in this process).

Run from the repository root::

    python benchmarks/operations_bench.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import collections
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402
import grpc  # noqa: E402

from nexus_flight.core.settings import ServerSettings  # noqa: E402
from nexus_flight.server.app.gateway import Gateway  # noqa: E402
from tests.operations.fuzz import SPECIFIC, requests  # noqa: E402
from tests.operations.test_killed_clients import _kill_readers, _rss_mb  # noqa: E402
from tests.support.flightsql_upstreams import running_roapi  # noqa: E402

TABLES = ("nation", "region", "customer", "orders", "lineitem", "part", "partsupp", "supplier")


def malformed(location: str, count: int) -> dict:
    """Latency percentiles (ms) and unspecific or slow answers for ``count`` malformed requests."""
    samples, unspecific, codes = [], 0, collections.Counter()
    with grpc.insecure_channel(location.removeprefix("grpc://")) as channel:
        for request in requests(seed=20_260_115, count=count):
            began = time.perf_counter()
            code, _ = request.send(channel, timeout=5)
            samples.append((time.perf_counter() - began) * 1e3)
            codes[code.name] += 1
            unspecific += code is not grpc.StatusCode.OK and code not in SPECIFIC
    samples.sort()
    return {"p50": statistics.median(samples), "p99": samples[int(len(samples) * 0.99)], "max": samples[-1],
            "unspecific": unspecific, "deadline": codes["DEADLINE_EXCEEDED"], "total_s": sum(samples) / 1e3}


def operator_chain(gateway: Gateway) -> list[tuple[int, float, float]]:
    """(terms, DuckDB's own seconds, the gateway's seconds) for chains of ``+``."""
    import adbc_driver_flightsql.dbapi as flightsql

    rows = []
    engine = duckdb.connect()
    with flightsql.connect(gateway.location, autocommit=True) as conn, conn.cursor() as cur:
        for terms in (100, 200, 256, 400, 850):
            sql = "SELECT " + " + ".join(["1"] * terms)
            began = time.perf_counter()
            engine.execute(sql).fetchall()
            own = time.perf_counter() - began
            began = time.perf_counter()
            try:
                cur.execute(sql)
                cur.fetchall()
            except Exception:  # refused: max_operator_depth
                pass
            rows.append((terms, own, time.perf_counter() - began))
    return rows


def killed_rounds(gateway: Gateway, rounds: int = 4) -> list[float]:
    """Server RSS (MB) after each round of five readers killed mid-stream."""
    events: list = []
    gateway.service.observers.append(events.append)
    sizes = []
    for round_ in range(1, rounds + 1):
        _kill_readers(gateway.location, 5)
        while len(events) < 5 * round_:
            time.sleep(0.05)
        sizes.append(_rss_mb())
    return sizes


def main() -> None:
    """Run the three measurements and print Markdown tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    logging.disable(logging.ERROR)
    from tests.conftest import _cache_dir

    parquet = _cache_dir() / "tpch-sf0.01"  # what the tests generate (tpch_dir); ROAPI is left out without it
    parquet = parquet if all((parquet / f"{t}.parquet").exists() for t in TABLES) else None
    with tempfile.TemporaryDirectory() as data:
        gateway = Gateway(ServerSettings(port=0, data_dir=Path(data))).start()
        try:
            print("| server | p50 ms | p99 ms | max ms | unspecific | no answer in 5 s | total s |")
            print("|---|---|---|---|---|---|---|")
            peers = [("Nexus Flight", gateway.location)]
            results = {"Nexus Flight": malformed(gateway.location, args.requests)}
            if parquet is not None:
                with running_roapi({t: parquet / f"{t}.parquet" for t in TABLES}) as roapi:
                    peers.append(("ROAPI", roapi))
                    results["ROAPI"] = malformed(roapi, args.requests)
            for name, _ in peers:
                r = results[name]
                print(f"| {name} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.0f} | {r['unspecific']} | "
                      f"{r['deadline']} | {r['total_s']:.1f} |")
            print("\n| terms | DuckDB in-process s | gateway s |")
            print("|---|---|---|")
            for terms, own, through in operator_chain(gateway):
                print(f"| {terms} | {own:.3f} | {through:.3f} |")
            sizes = killed_rounds(gateway)
            print("\nRSS after each round of 5 killed readers (MB): " + ", ".join(f"{s:.0f}" for s in sizes))
        finally:
            gateway.shutdown()


if __name__ == "__main__":
    main()
