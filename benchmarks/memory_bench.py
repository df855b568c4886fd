"""Server memory under load: RSS of a ``nexus-flight serve`` process while clients stream, read slowly, overrun.

The server runs as its own process (``nexus-flight serve`` with a TOML file serving one DuckDB database of
``--rows`` rows: ``i BIGINT, s VARCHAR`` (an md5 text)); its RSS is sampled from ``/proc/<pid>/status`` every
20 ms. Four scenarios, one after the other on the same server:

(a) one client streams every row as fast as it reads (``SELECT i, s FROM t``);
(b) one client reads one batch a second for ``--slow-seconds`` seconds, then cancels;
(c) 16 clients at once each run a grouping that needs about 4x the per-query ``memory_limit`` (DuckDB spills it);
(d) 64 clients at once each run 20 small queries.

For each: the server's RSS before, the peak growth over it, errors by kind, and for (a) the bound the gateway
claims (2 x batch size x batches in flight + 32 MB). Run from the repository root::

    python benchmarks/memory_bench.py [--rows 10000000] [--memory-limit 64MB] [--slow-seconds 30]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow.flight as flight
from flightsql import flightsql_pb2 as pb
from google.protobuf import any_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.memory import PeakRss  # noqa: E402

BATCH_ROWS = 65_536


def ticket(client: flight.FlightClient, sql: str) -> flight.Ticket:
    wrapper = any_pb2.Any()
    wrapper.Pack(pb.CommandStatementQuery(query=sql))
    info = client.get_flight_info(flight.FlightDescriptor.for_command(wrapper.SerializeToString()))
    return info.endpoints[0].ticket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: Path, database: Path, memory_limit: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    config = workdir / "gateway.toml"
    config.write_text(
        f'[server]\nmemory_limit = "{memory_limit}"\nhealth_checks = false\nbatch_rows = {BATCH_ROWS}\n'
        f'admission_timeout_seconds = 120\nmemory_budget = "auto"\n\n'
        f'[[sources]]\nname = "bench"\ntype = "duckdb"\noptions = {{ path = "{database}" }}\n'
    )
    exe = shutil.which("nexus-flight") or str(Path(sys.executable).parent / "nexus-flight")
    log = (workdir / "server.log").open("wb")  # a pipe nobody reads would block the server's logging
    process = subprocess.Popen(
        [exe, "serve", "--config", str(config), "--port", str(port), "--no-demo", "--data-dir", str(workdir)],
        stdout=log, stderr=log,
    )
    location = f"grpc://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            flight.connect(location).do_get(ticket(flight.connect(location), "SELECT 1 AS one")).read_all()
            return process, location
        except flight.FlightError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not start: {(workdir / 'server.log').read_text()[-2000:]}")


def scenario_fast(location: str, pid: int) -> dict:
    client = flight.connect(location)
    rows = 0
    batch_bytes = 0
    with PeakRss(pid) as sample:
        began = time.perf_counter()
        reader = client.do_get(ticket(client, "SELECT i, s FROM bench.main.t"))
        for chunk in reader:
            rows += chunk.data.num_rows
            batch_bytes = max(batch_bytes, chunk.data.nbytes)
        seconds = time.perf_counter() - began
    return {"rows": rows, "seconds": seconds, "batch_mb": batch_bytes / 2**20, "before": sample.before,
            "growth": sample.growth}


def scenario_slow(location: str, pid: int, seconds: int) -> dict:
    client = flight.connect(location)
    with PeakRss(pid) as sample:
        reader = client.do_get(ticket(client, "SELECT i, s FROM bench.main.t"))
        for _ in range(seconds):
            reader.read_chunk()
            time.sleep(1)
        reader.cancel()
    return {"before": sample.before, "growth": sample.growth}


def scenario_overrun(location: str, pid: int, clients: int, rows: int) -> dict:
    # Grouping distinct md5 strings: ~60 bytes of hash table per row, about 4x a 64MB limit at 4M rows.
    groups = min(rows, 4_000_000)
    sql = (f"SELECT count(*) AS n FROM (SELECT s, count(*) AS c FROM bench.main.t WHERE i < {groups} GROUP BY s) "
           "WHERE c = 1")

    def one(_: int) -> str:
        client = flight.connect(location)
        n = client.do_get(ticket(client, sql)).read_all()["n"][0].as_py()
        return "ok" if n == groups else f"wrong answer {n}"

    return run_clients(pid, clients, one)


def scenario_small(location: str, pid: int, clients: int, each: int) -> dict:
    def one(k: int) -> list[str]:
        client = flight.connect(location)
        kinds = []
        for j in range(each):
            got = client.do_get(ticket(client, f"SELECT s FROM bench.main.t WHERE i = {k * each + j}")).read_all()
            kinds.append("ok" if got.num_rows == 1 else "wrong answer")
        return kinds

    return run_clients(pid, clients, one)


def run_clients(pid: int, clients: int, work) -> dict:
    """Run ``work(k)`` for ``clients`` clients at once; outcomes by kind, seconds and the server's RSS growth."""
    outcomes: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def one(k: int) -> None:
        try:
            got = work(k)
        except flight.FlightError as exc:
            got = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        with lock:
            outcomes.update([got] if isinstance(got, str) else got)

    with PeakRss(pid) as sample:
        began = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, range(clients)))
        seconds = time.perf_counter() - began
    return {"outcomes": dict(outcomes), "seconds": seconds, "before": sample.before, "growth": sample.growth}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--memory-limit", default="64MB")
    parser.add_argument("--slow-seconds", type=int, default=30)
    parser.add_argument("--scenarios", default="abcd", help="which of a, b, c, d to run (default all)")
    args = parser.parse_args()
    mb = 2**20
    with tempfile.TemporaryDirectory(prefix="nexus-memory-bench-") as tmp:
        workdir = Path(tmp)
        database = workdir / "bench.duckdb"
        with duckdb.connect(str(database)) as con:
            con.execute(f"CREATE TABLE t AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range({args.rows})")
        process, location = start_server(workdir, database, args.memory_limit)
        try:
            if "a" in args.scenarios:
                a = scenario_fast(location, process.pid)
                bound = 2 * a["batch_mb"] * 2 + 32  # two batches in flight: the engine's and the one being written
                print(f"(a) fast stream: {a['rows']:,} rows in {a['seconds']:.1f} s; "
                      f"RSS before {a['before'] / mb:.0f} MiB, peak growth {a['growth'] / mb:.0f} MiB; "
                      f"batch {a['batch_mb']:.1f} MiB, bound {bound:.0f} MiB")
            if "b" in args.scenarios:
                b = scenario_slow(location, process.pid, args.slow_seconds)
                print(f"(b) 1 batch/s for {args.slow_seconds} s: RSS before {b['before'] / mb:.0f} MiB, "
                      f"peak growth {b['growth'] / mb:.0f} MiB")
            if "c" in args.scenarios:
                c = scenario_overrun(location, process.pid, 16, args.rows)
                print(f"(c) 16 clients x grouping ~4x memory_limit={args.memory_limit}: {c['outcomes']} in "
                      f"{c['seconds']:.1f} s; RSS before {c['before'] / mb:.0f} MiB, "
                      f"peak growth {c['growth'] / mb:.0f} MiB")
            if "d" in args.scenarios:
                d = scenario_small(location, process.pid, 64, 20)
                print(f"(d) 64 clients x 20 small queries: {d['outcomes']} in {d['seconds']:.1f} s; RSS before "
                      f"{d['before'] / mb:.0f} MiB, peak growth {d['growth'] / mb:.0f} MiB")
            print(f"server alive at the end: {process.poll() is None}")
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
