"""One sequential ADBC client against a served gateway: p50 latency and the server's CPU per query for one kind.

The load mix's point lookup (kind 0, a new text each time) or nation filter (kind 1, the same text: GetFlightInfo
and DoGet of a statement ADBC prepared once). The server is ``nexus-flight serve`` on the demo database of
``cpu_per_query.py`` (run that once first), started by whichever interpreter runs this, so two installs taking
turns compare two versions of the code. ``--auth``: the gateway requires sign-in and the client signs in as a user
granted the demo catalog (as ``limits_bench.py``'s ``bob``), so every call carries a bearer token. ``--profile``
records the run with py-spy (raw stacks of the threads holding the interpreter lock) to a file.

Usage: python benchmarks/sequential_cpu.py KIND QUERIES [--auth] [--profile OUT]
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import adbc_driver_flightsql.dbapi as flightsql  # noqa: E402

from benchmarks.cpu_per_query import cpu_seconds  # noqa: E402
from benchmarks.limits_bench import BOB_PASSWORD, SECURE, _catalog, _serve  # noqa: E402
from benchmarks.load_bench import MIX, start_nexus  # noqa: E402
from nexus_flight.catalog.vault import ENV_KEY  # noqa: E402

HOME = ROOT / "benchmarks" / ".data" / "cpu"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", type=int, choices=range(len(MIX)))
    parser.add_argument("queries", type=int)
    parser.add_argument("--auth", action="store_true", help="sign in (a bearer token on every call)")
    parser.add_argument("--profile", help="py-spy raw output file")
    args = parser.parse_args()
    secure = tempfile.TemporaryDirectory() if args.auth else None
    if secure is not None:
        os.environ.setdefault(ENV_KEY, base64.b64encode(os.urandom(32)).decode())
        home = Path(secure.name)
        _catalog(home)
        proc, uri = _serve(home, next(HOME.glob("tpch_*.duckdb")).resolve(), 1, SECURE.format(failure_delay=0.2))
    else:
        proc, uri = start_nexus(HOME, 1, log="nexus-sequential.log")
    rng = random.Random(1)
    sign_in = {"username": "bob", "password": BOB_PASSWORD} if args.auth else {}
    try:
        with flightsql.connect(uri, db_kwargs=sign_in, autocommit=True) as conn, conn.cursor() as cur:
            for _ in range(50):  # warm: plans cached, idle query instances open
                cur.execute(MIX[args.kind].format(key=rng.randint(1, 6_000_000)))
                cur.fetch_arrow_table()
            spy = None
            if args.profile:
                spy = subprocess.Popen(["py-spy", "record", "-p", str(proc.pid), "-r", "400", "-f", "raw", "-o",
                                        args.profile, "--nonblocking", "--gil"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
                time.sleep(1.5)
            cpu_before, started, latencies = cpu_seconds(proc.pid), time.perf_counter(), []
            for _ in range(args.queries):
                begun = time.perf_counter()
                cur.execute(MIX[args.kind].format(key=rng.randint(1, 6_000_000)))
                cur.fetch_arrow_table()
                latencies.append(time.perf_counter() - begun)
            elapsed, cpu = time.perf_counter() - started, cpu_seconds(proc.pid) - cpu_before
            if spy is not None:
                spy.send_signal(2)
                spy.wait(30)
        latencies.sort()
        kind = f"{args.kind}{' signed in' if args.auth else ''}"
        print(f"{sys.executable}: kind {kind}: {args.queries / elapsed:.1f} q/s, "
              f"p50 {latencies[len(latencies) // 2] * 1e3:.2f} ms, server CPU {cpu / args.queries * 1e3:.2f} ms/query")
    finally:
        proc.terminate()
        proc.wait(30)
        if secure is not None:
            secure.cleanup()


if __name__ == "__main__":
    main()
