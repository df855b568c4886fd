"""Throughput under concurrency: Nexus Flight vs ROAPI vs BenoStreamDB-flight, 16 and 64 ADBC clients, one run.

Each client has its own ADBC Flight SQL connection and runs a mix of small queries back to back (a point lookup
on ``orders`` with a new key each time, a filter on ``nation``, a join of ``nation`` and ``region``, a text
predicate) for ``--seconds``; the servers take turns, each level twice, so the shared machine's load changes
fall on every server. Reported per server and level: queries per second, p50 and p99 latency, errors; and the
gateway's ratios to ROAPI (qps, p50, p99).

Clients run in ``--client-processes`` processes (threads inside them), so the clients' own Python does not
share one interpreter lock.

With ``--replicas N`` the gateway is also measured as N processes sharing one catalog behind nginx
(``deploy/nginx.conf``): the way to more than one process per port, since the Flight server binds its port alone.

Usage: python benchmarks/load_bench.py [--scale 1] [--seconds 30] [--levels 16,64] [--rounds 2]
       [--peers roapi,benostreamdb] [--replicas 2]
Data is generated locally with tpchgen-cli into benchmarks/.data (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.flight_sql_bench import start_roapi, wait_port  # noqa: E402
from nexus_flight.server.app.demo import demo_database, generate_parquet  # noqa: E402
from tests.support.services import free_port  # noqa: E402

TABLES = ("orders", "nation", "region")
MIX = (
    "SELECT o_orderkey, o_totalprice FROM orders WHERE o_orderkey = {key}",
    "SELECT * FROM nation WHERE n_nationkey < 5",
    "SELECT r_name, count(*) AS n FROM nation JOIN region ON n_regionkey = r_regionkey GROUP BY r_name",
    "SELECT count(*) AS n FROM nation WHERE n_name LIKE 'A%'",
)


def start_nexus(data_dir: Path, scale: float, env: dict[str, str] | None = None,
                log: str = "nexus-load.log") -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "nexus_flight.server", "--log-level", "WARNING", "serve", "--port", str(port),
               "--data-dir", str(data_dir), "--demo-scale", f"{scale:g}"]
    proc = subprocess.Popen(command, cwd=data_dir, stdout=open(data_dir / log, "w"), stderr=subprocess.STDOUT,
                            env=env)
    wait_port(port)
    return proc, f"grpc://127.0.0.1:{port}"


def start_replicas(data_dir: Path, scale: float, count: int) -> tuple[list[subprocess.Popen], str]:
    """``count`` gateways sharing one catalog and master key behind nginx (``deploy/nginx.conf``, round robin).

    Returns the processes (nginx last) and the proxy's location.
    """
    from nexus_flight.catalog.vault import generate_key
    from tests.operations.serving import nginx_config

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    env = {**os.environ, "NEXUS_FLIGHT_MASTER_KEY": generate_key()}
    for stale in data_dir.glob("catalog.db*"):  # sealed under an earlier run's key, which this run does not have
        stale.unlink()
    processes, upstreams = [], []
    for index in range(count):
        proc, uri = start_nexus(data_dir, scale, env, log=f"nexus-replica-{index}.log")
        processes.append(proc)
        upstreams.append(uri.removeprefix("grpc://"))
    prefix = data_dir / "nginx"
    prefix.mkdir(exist_ok=True)
    port = free_port()
    (prefix / "nginx.conf").write_text(nginx_config(upstreams, port, prefix))
    processes.append(subprocess.Popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                                       "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_port(port)
    return processes, f"grpc://127.0.0.1:{port}"


def start_benostreamdb(parquet_dir: Path, work: Path) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("benostreamdb-flight")
    if exe is None:
        raise RuntimeError("benostreamdb-flight is not installed (pip install benostreamdb-flight)")
    import adbc_driver_flightsql.dbapi as flightsql

    port = free_port()
    (work / "warehouse").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BSDB_FLIGHT_PORT": str(port), "BSDB_METRICS_PORT": str(free_port()),
           "BSDB_WAREHOUSE": str(work / "warehouse")}
    proc = subprocess.Popen([exe], env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    uri = f"grpc://127.0.0.1:{port}"
    with flightsql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        for name in TABLES:  # the same parquet files, registered as DataFusion external tables
            location = parquet_dir / f"{name}.parquet"
            cur.execute(f"CREATE EXTERNAL TABLE {name} STORED AS PARQUET LOCATION '{location}'")
            cur.fetch_arrow_table()
    return proc, uri


def _client_process(uri: str, threads: int, seconds: float, seed: int, out: multiprocessing.Queue) -> None:
    """``threads`` clients, each on its own connection, running the mix until the deadline."""
    import adbc_driver_flightsql.dbapi as flightsql

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def client(index: int) -> None:
        mine, failures = [], []
        with flightsql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
            try:
                for text in MIX:  # warm the connection
                    cur.execute(text.format(key=1))
                    cur.fetch_arrow_table()
            except Exception as exc:  # noqa: BLE001 - reported; the client still meets the others at the start
                failures.append("warm-up: " + type(exc).__name__ + ": " + str(exc).splitlines()[0][:120])
            start.wait()
            deadline = time.perf_counter() + seconds
            i = seed * 1000 + index
            while time.perf_counter() < deadline:
                i += 1
                sql = MIX[i % len(MIX)].format(key=1 + (i * 7919) % 6_000_000)
                began = time.perf_counter()
                try:
                    cur.execute(sql)
                    cur.fetch_arrow_table()
                    mine.append(time.perf_counter() - began)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    failures.append(type(exc).__name__ + ": " + str(exc).splitlines()[0][:120])
        with lock:
            latencies.extend(mine)
            errors.extend(failures)

    workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put((latencies, errors))


def run_level(uri: str, clients: int, seconds: float, processes: int) -> dict[str, float]:
    """Queries per second and latency percentiles of ``clients`` concurrent clients for ``seconds``."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    processes = min(processes, clients)
    shares = [clients // processes + (1 if k < clients % processes else 0) for k in range(processes)]
    children = [context.Process(target=_client_process, args=(uri, n, seconds, k, out))
                for k, n in enumerate(shares)]
    for child in children:
        child.start()
    latencies: list[float] = []
    errors: list[str] = []
    for _ in children:
        got, failed = out.get(timeout=seconds + 300)
        latencies += got
        errors += failed
    for child in children:
        child.join()
    latencies.sort()
    return {
        "qps": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan"),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--levels", default="16,64")
    parser.add_argument("--rounds", type=int, default=2, help="turns each server takes at each level")
    parser.add_argument("--peers", default="roapi,benostreamdb")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--replicas", type=int, default=0,
                        help="also serve through nginx in front of this many gateways sharing one catalog")
    args = parser.parse_args()

    data_dir = ROOT / "benchmarks" / ".data"
    parquet_dir = data_dir / f"parquet_sf{args.scale:g}"
    if not (parquet_dir / "orders.parquet").exists():
        generate_parquet(parquet_dir, args.scale)
    demo_database(data_dir, args.scale)

    servers: list[tuple[str, str]] = []
    processes: list[subprocess.Popen] = []
    try:
        home = data_dir / "load"
        home.mkdir(parents=True, exist_ok=True)
        shared = home / demo_database(data_dir, args.scale).name
        if not shared.exists():
            shared.symlink_to(demo_database(data_dir, args.scale))
        proc, uri = start_nexus(home, args.scale)
        processes.append(proc)
        servers.append(("nexus", uri))
        if args.replicas:
            replicas_home = data_dir / "load-replicas"
            replicas_home.mkdir(parents=True, exist_ok=True)
            link = replicas_home / shared.name
            if not link.exists():
                link.symlink_to(demo_database(data_dir, args.scale))
            started, uri = start_replicas(replicas_home, args.scale, args.replicas)
            processes.extend(started)
            servers.append((f"nexus x{args.replicas}", uri))
        peers = [p for p in args.peers.split(",") if p]
        if "roapi" in peers:
            proc, uri = start_roapi(parquet_dir, TABLES)
            processes.append(proc)
            servers.append(("roapi", uri))
        if "benostreamdb" in peers:
            proc, uri = start_benostreamdb(parquet_dir, data_dir / "benostreamdb")
            processes.append(proc)
            servers.append(("benostreamdb", uri))
        results: dict[str, dict[str, list[dict[str, float]]]] = {}
        for level in (int(n) for n in args.levels.split(",")):
            for round_ in range(args.rounds):
                turn = servers[round_ % len(servers):] + servers[: round_ % len(servers)]
                for name, uri in turn:
                    measured = run_level(uri, level, args.seconds, args.client_processes)
                    results.setdefault(name, {}).setdefault(str(level), []).append(measured)
                    print(f"{name:<14} {level:>3} clients  {measured['qps']:7.1f} qps  p50 {measured['p50_ms']:7.1f} ms"
                          f"  p99 {measured['p99_ms']:7.1f} ms  errors {measured['errors']}", flush=True)
        summary = _summary(results)
        print(json.dumps(summary, indent=2))
    finally:
        for proc in processes:
            proc.terminate()
        for proc in processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _summary(results: dict[str, dict[str, list[dict[str, float]]]]) -> dict[str, dict[str, float]]:
    """Per server and level: qps summed over rounds / rounds, worst p50 and p99; the gateways' ratios to ROAPI."""
    summary: dict[str, dict[str, float]] = {}
    for name, levels in results.items():
        for level, runs in levels.items():
            summary[f"{name}@{level}"] = {
                "qps": statistics.mean(r["qps"] for r in runs),
                "p50_ms": max(r["p50_ms"] for r in runs),
                "p99_ms": max(r["p99_ms"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
            }
    for key, row in list(summary.items()):
        name, level = key.split("@")
        peer = summary.get(f"roapi@{level}")
        if name.startswith("nexus") and peer:
            row["qps_vs_roapi"] = row["qps"] / peer["qps"]
            row["p50_vs_roapi"] = row["p50_ms"] / peer["p50_ms"]
            row["p99_vs_roapi"] = row["p99_ms"] / peer["p99_ms"]
    return summary


if __name__ == "__main__":
    main()
