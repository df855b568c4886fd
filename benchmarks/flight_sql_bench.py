"""Nexus Flight vs ROAPI (a Rust Flight SQL server) vs DuckDB in-process, on the same TPC-H data, in one run.

Measures, through the same ADBC Flight SQL client for both servers:
- full-scan throughput: ``SELECT * FROM lineitem`` (rows/s),
- TPC-H Q1 latency (best of N),
- small-query latency: p50/p99 over 300 sequential ``SELECT ... WHERE o_orderkey = k`` (a point lookup, a new
  text each time) and over 300 of ``SELECT * FROM nation WHERE n_nationkey < 5`` (the same text each time), the
  servers taking turns query by query,
- the validator's share of the point lookup: routing and validating its text in-process (a cache miss, as each
  lookup's text is new), against that query's p50 through the gateway.

With ``--before-python``, a second gateway runs the same measurements in the same run: an earlier checkout's,
served by that checkout's own interpreter (a virtualenv with it installed), e.g. to show a change's effect on
the per-query path against the same ROAPI.

Usage: python benchmarks/flight_sql_bench.py [--scale 1] [--repeat 5] [--small 300] [--small-only]
       [--before-python /tmp/before/.venv/bin/python]
Data is generated locally with tpchgen-cli into benchmarks/.data (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nexus_flight.server.app.demo import demo_database, generate_parquet  # noqa: E402
from tests.support.services import free_port, port_open  # noqa: E402

Q1 = (ROOT / "benchmarks" / "tpch" / "q01.sql").read_text()


def wait_port(port: int, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open("127.0.0.1", port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def start_nexus(data_dir: Path, scale: float, python: str = sys.executable) -> tuple[subprocess.Popen, str]:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [python, "-m", "nexus_flight.server", "--log-level", "WARNING", "serve", "--port", str(port),
         "--data-dir", str(data_dir), "--demo-scale", f"{scale:g}"],
        cwd=data_dir, stdout=open(data_dir / "nexus.log", "w"), stderr=subprocess.STDOUT,
    )
    wait_port(port)
    return proc, f"grpc://127.0.0.1:{port}"


def start_roapi(
    parquet_dir: Path, names: tuple[str, ...] = ("lineitem", "orders", "nation")
) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("roapi")
    if exe is None:
        raise RuntimeError("roapi is not installed (pip install roapi)")
    port, http, pg = free_port(), free_port(), free_port()
    tables = []
    for name in names:
        tables += ["-t", f"{name}={parquet_dir / (name + '.parquet')}"]
    proc = subprocess.Popen(
        [exe, "--addr-flight-sql", f"127.0.0.1:{port}", "--addr-http", f"127.0.0.1:{http}",
         "--addr-postgres", f"127.0.0.1:{pg}", *tables],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc, f"grpc://127.0.0.1:{port}"


def flight_run(uri: str, sql: str) -> tuple[float, int]:
    with flightsql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute(sql)
        table = cur.fetch_arrow_table()
        return time.perf_counter() - started, table.num_rows


def best(fn, repeat: int) -> tuple[float, int]:
    results = [fn() for _ in range(repeat)]
    return min(r[0] for r in results), results[0][1]


def small_queries(run_one, count: int) -> list[float]:
    """Seconds each of ``count`` sequential calls of ``run_one`` took (a different key each time)."""
    times = []
    for i in range(count):
        started = time.perf_counter()
        run_one(1 + (i * 7919) % 6_000_000)
        times.append(time.perf_counter() - started)
    return times


def percentiles(times: list[float], prefix: str = "") -> dict[str, float]:
    """p50 and p99 of ``times``, in milliseconds."""
    ordered = sorted(times)
    return {f"{prefix}p50_ms": statistics.median(ordered) * 1000,
            f"{prefix}p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000}


POINT = "SELECT o_orderkey, o_totalprice FROM orders WHERE o_orderkey = {key}"
NATION = "SELECT * FROM nation WHERE n_nationkey < 5"


def interleaved_small(servers: list[tuple[str, str]], count: int) -> dict[str, dict[str, float]]:
    """Small-query percentiles per server; the servers take turns query by query, the first one rotating.

    Taking turns spreads the shared machine's load changes over every server instead of charging them to
    whichever ran during a busy second.
    """
    connections = [flightsql.connect(uri, autocommit=True) for _, uri in servers]
    try:
        cursors = [conn.cursor() for conn in connections]
        times: dict[str, dict[str, list[float]]] = {name: {"": [], "nation_": []} for name, _ in servers}
        for prefix, text in (("", POINT), ("nation_", NATION)):
            for cur in cursors:  # warm each connection
                cur.execute(text.format(key=1))
                cur.fetch_arrow_table()
            for i in range(count):
                sql = text.format(key=1 + (i * 7919) % 6_000_000)
                for k in range(len(servers)):
                    j = (i + k) % len(servers)
                    started = time.perf_counter()
                    cursors[j].execute(sql)
                    cursors[j].fetch_arrow_table()
                    times[servers[j][0]][prefix].append(time.perf_counter() - started)
        for cur in cursors:
            cur.close()
        return {name: {**percentiles(t[""]), **percentiles(t["nation_"], "nation_")} for name, t in times.items()}
    finally:
        for conn in connections:
            conn.close()


def validator_ms(count: int, text=lambda i: POINT.format(key=10_000_000 + i)) -> float:
    """p50 of routing and validating in-process: the point lookup, each text new (a cache miss), by default."""
    from nexus_flight.core.source import SourceProfile
    from nexus_flight.server.query.sql.routing import route

    sources = {"demo": SourceProfile("duckdb", engine="duckdb")}
    times = []
    for i in range(count):
        sql = text(i)
        started = time.perf_counter()
        route(sql, sources=sources, session_catalog=None, default_source="demo")
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def validators(count: int) -> dict[str, float]:
    """The validator's p50 for a new point-lookup text each time, and for the repeated nation query."""
    return {"validator_p50_ms": validator_ms(count), "nation_validator_p50_ms": validator_ms(count, lambda i: NATION)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--small-only", action="store_true", help="skip the scan and Q1 (small queries only)")
    parser.add_argument("--before-python", help="interpreter of an earlier checkout: its gateway is measured too")
    parser.add_argument("--validator-only", action="store_true", help="print the validator's p50s (ms) and stop")
    args = parser.parse_args()
    if args.validator_only:
        print(json.dumps(validators(args.small)))
        return

    data_dir = ROOT / "benchmarks" / ".data"
    parquet_dir = data_dir / f"parquet_sf{args.scale:g}"
    if not (parquet_dir / "lineitem.parquet").exists():
        generate_parquet(parquet_dir, args.scale)
    db_path = demo_database(data_dir, args.scale)

    local_copy = data_dir / "local.duckdb"
    shutil.copy(db_path, local_copy)
    local = duckdb.connect(str(local_copy), read_only=True)

    results: dict[str, dict] = {}
    nexus, nexus_uri = start_nexus(data_dir, args.scale)
    servers = [("nexus", nexus_uri)]
    processes = [nexus]
    if args.before_python:
        before_dir = data_dir / "before"  # its own catalog; the demo database file is shared, read-only
        before_dir.mkdir(exist_ok=True)
        shared = before_dir / db_path.name
        if not shared.exists():
            shared.symlink_to(db_path)
        before, before_uri = start_nexus(before_dir, args.scale, args.before_python)
        servers.append(("nexus_before", before_uri))
        processes.append(before)
    roapi, roapi_uri = start_roapi(parquet_dir)
    processes.append(roapi)
    servers.append(("roapi", roapi_uri))
    try:
        scan = "SELECT * FROM lineitem"
        results |= interleaved_small(servers, args.small)
        for name, uri in servers:
            if not args.small_only:
                seconds, rows = best(lambda u=uri: flight_run(u, scan), args.repeat)
                q1, _ = best(lambda u=uri: flight_run(u, Q1), args.repeat)
                results[name] |= {"scan_s": seconds, "scan_rows_per_s": rows / seconds, "q1_s": q1}

        def local_one(key: int) -> None:
            local.execute(POINT.format(key=key)).to_arrow_table()

        results["duckdb_in_process"] = percentiles(small_queries(local_one, args.small))
        if not args.small_only:
            scan_local, rows = best(lambda: _local(local, scan), args.repeat)
            q1_local, _ = best(lambda: _local(local, Q1), args.repeat)
            results["duckdb_in_process"] |= {"scan_s": scan_local, "scan_rows_per_s": rows / scan_local,
                                             "q1_s": q1_local}
        results["nexus"] |= validators(args.small)
        if args.before_python:  # the earlier checkout's validator, in its own interpreter
            out = subprocess.run([args.before_python, __file__, "--validator-only", "--small", str(args.small)],
                                 check=True, capture_output=True, text=True, cwd=data_dir).stdout
            results["nexus_before"] |= json.loads(out.strip().splitlines()[-1])
    finally:
        for proc in processes:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                print(f"{proc.args[0]} did not stop within 30 s of SIGTERM", file=sys.stderr)
                proc.kill()
        local.close()
        os.remove(local_copy)

    n, r, d = results["nexus"], results["roapi"], results["duckdb_in_process"]
    ratios = _small_ratios(n, r)
    if "nexus_before" in results:
        ratios |= {f"before_{k}": v for k, v in _small_ratios(results["nexus_before"], r).items()}
    if not args.small_only:
        ratios |= {
            "scan_throughput_vs_roapi": n["scan_rows_per_s"] / r["scan_rows_per_s"],
            "q1_vs_duckdb_in_process": n["q1_s"] / d["q1_s"],
            "q1_vs_roapi": n["q1_s"] / r["q1_s"],
        }
    print(json.dumps({"scale": args.scale, "results": results, "ratios": ratios}, indent=2))


def _small_ratios(n: dict, r: dict) -> dict[str, float]:
    """A gateway's small-query times against ROAPI's, and the validator's share of them."""
    return {
        "small_p50_vs_roapi": n["p50_ms"] / r["p50_ms"],
        "small_p99_vs_roapi": n["p99_ms"] / r["p99_ms"],
        "nation_p50_vs_roapi": n["nation_p50_ms"] / r["nation_p50_ms"],
        "nation_p99_vs_roapi": n["nation_p99_ms"] / r["nation_p99_ms"],
        "validator_share_of_small_p50": n["validator_p50_ms"] / n["p50_ms"],
        "validator_share_of_nation_p50": n["nation_validator_p50_ms"] / n["nation_p50_ms"],
    }


def _local(con, sql: str) -> tuple[float, int]:
    started = time.perf_counter()
    table = con.execute(sql).to_arrow_table()
    return time.perf_counter() - started, table.num_rows


if __name__ == "__main__":
    main()
