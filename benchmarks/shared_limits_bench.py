"""What counting principals' limits in the shared catalog adds to a query, for a limited and an unlimited principal.

Usage: python benchmarks/shared_limits_bench.py [--scale 0.01] [--queries 300] [--calls 2000]

1. The limiter's own path per query (``charge`` at planning, ``admit`` at the run spending the planning's credit,
   ``release`` at its end; no query), in this process, ``--calls`` times: an unlimited principal and a limited
   one (a rate and concurrency limits it never reaches), the counts in memory (a gateway alone), in a SQLite
   catalog and in a PostgreSQL catalog (a private cluster on this machine, started as the tests start theirs);
   and, alone, the one step of it that spends the credit (``credit_spend``).
2. End to end: ``nexus-flight serve`` on a SQLite catalog, another on a PostgreSQL catalog, and a third on the same
   PostgreSQL catalog with ``limit_counts = "process"`` (a gateway alone, counting in its process), each with
   ``free`` (no limits) and ``limited`` (``queries_per_minute`` 10^6, ``max_concurrent_queries`` and its
   per-source twin 8: never refused) running ``SELECT * FROM nation WHERE n_nationkey < 5`` through ADBC, the users
   and the servers taking turns query by query, ``--queries`` each. ``limited`` − ``free`` is what the limits
   cost per query.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.flight_sql_bench import NATION, percentiles, wait_port  # noqa: E402
from benchmarks.limits_bench import BOB_PASSWORD, _adbc, _timed  # noqa: E402
from nexus_flight.catalog.vault import ENV_KEY  # noqa: E402
from tests.support.services import free_port  # noqa: E402

LIMITED = {"queries_per_minute": 1_000_000, "query_burst": 1_000_000, "max_concurrent_queries": 8,
           "max_concurrent_queries_per_source": 8}


def limiter_path(url: str | None, calls: int) -> dict[str, dict[str, float]]:
    """The limiter's per-query path, p50/p99 in microseconds, for ``free`` and ``limited``."""
    from sqlalchemy import make_url

    from nexus_flight.catalog.limit_rows import CatalogLimitRows, limits_engine
    from nexus_flight.server.query.principal import Principal
    from nexus_flight.server.query.principal_limits import PrincipalLimiter
    from nexus_flight.server.query.shared_limit_counts import SharedCounts

    counts = SharedCounts(CatalogLimitRows(limits_engine(make_url(url)))) if url else None
    limiter = PrincipalLimiter(counter=counts)
    results = {}
    try:
        for name, limits in (("free", {"max_rows": 1000}), ("limited", LIMITED)):
            principal = Principal(name=name, authenticated=True, limits=limits)
            times = []
            for i in range(calls + 50):
                started = time.perf_counter()
                limiter.admit(principal, "demo", prepaid=limiter.charge(principal)).release()
                if i >= 50:  # warmed up
                    times.append(time.perf_counter() - started)
            results[name] = _micros(times)
        principal = Principal(name="spender", authenticated=True, limits=LIMITED)
        credits = [limiter.charge(principal) for _ in range(calls)]
        until = time.time() + 3600
        times = []
        for credit in credits:
            started = time.perf_counter()
            assert limiter.counter.spend(credit, until)
            times.append(time.perf_counter() - started)
        results["credit_spend"] = _micros(times)
    finally:
        if counts is not None:
            counts.close()
    return results


def _micros(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"p50_us": statistics.median(ordered) * 1e6, "p99_us": ordered[int(len(ordered) * 0.99) - 1] * 1e6}


def _users(url: str) -> None:
    from nexus_flight.catalog.grants import add_grant
    from nexus_flight.catalog.store import CatalogStore
    from nexus_flight.catalog.users import add_role, add_user

    store = CatalogStore(url)
    add_role(store, "analyst")
    add_grant(store, "analyst", "demo")
    add_user(store, "free", BOB_PASSWORD, roles=["analyst"])
    add_user(store, "limited", BOB_PASSWORD, roles=["analyst"], limits=LIMITED)
    store.close()


def _serve(data_dir: Path, demo: Path, scale: float, url: str, counts: str) -> tuple[subprocess.Popen, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / demo.name).symlink_to(demo)
    config = data_dir / "gateway.toml"
    config.write_text(f'[server]\ncatalog_url = "{url}"\nlog_level = "WARNING"\nhealth_checks = false\n'
                      f'limit_counts = "{counts}"\n[server.auth]\nenabled = true\n')
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nexus_flight.server", "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--demo-scale", f"{scale:g}", "--config", str(config)],
        cwd=data_dir, stdout=open(data_dir / "nexus.log", "w"), stderr=subprocess.STDOUT,
    )
    wait_port(port)
    return proc, f"grpc://127.0.0.1:{port}"


def end_to_end(servers: dict[str, str], count: int) -> dict[str, dict[str, float]]:
    """Nation-query p50/p99 per (server, user), taking turns query by query (the first one rotating)."""
    connections = {(server, user): _adbc(uri, user) for server, uri in servers.items() for user in ("free", "limited")}
    try:
        cursors = [(key, conn.cursor()) for key, conn in connections.items()]
        times: dict[tuple[str, str], list[float]] = {key: [] for key in connections}
        for _, cur in cursors:
            _timed(cur, NATION)
        for i in range(count):
            for k in range(len(cursors)):
                key, cur = cursors[(i + k) % len(cursors)]
                times[key].append(_timed(cur, NATION))
        return {f"{server}/{user}": percentiles(t) for (server, user), t in times.items()}
    finally:
        for conn in connections.values():
            conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    from nexus_flight.server.app.demo import demo_database
    from tests.support.servers import PrivatePostgres

    os.environ.setdefault(ENV_KEY, base64.b64encode(os.urandom(32)).decode())
    demo = demo_database(ROOT / "benchmarks" / ".data", args.scale)
    postgres = PrivatePostgres()
    postgres.start()
    processes: list[subprocess.Popen] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            urls = {"sqlite": f"sqlite:///{tmp}/path/catalog.db",
                    "postgresql": f"postgresql+psycopg://{postgres.user}@{postgres.host}:{postgres.port}/"
                                  f"{postgres.database}"}
            (Path(tmp) / "path").mkdir()
            for url in urls.values():
                _users(url)
            results = {"limiter_path": {"memory": limiter_path(None, args.calls),
                                        **{name: limiter_path(url, args.calls) for name, url in urls.items()}}}
            servers = {}
            for name, url, counts in (*((name, url, "catalog") for name, url in urls.items()),
                                      ("postgresql-process", urls["postgresql"], "process")):
                proc, uri = _serve(Path(tmp) / name, demo, args.scale, url, counts)
                processes.append(proc)
                servers[name] = uri
            e2e = end_to_end(servers, args.queries)
            results["end_to_end"] = e2e
            results["limited_minus_free_p50_ms"] = {
                name: e2e[f"{name}/limited"]["p50_ms"] - e2e[f"{name}/free"]["p50_ms"] for name in servers}
    finally:
        for proc in processes:
            proc.terminate()
            proc.wait(30)
        postgres.destroy()
    print(json.dumps({"scale": args.scale, "queries": args.queries, "calls": args.calls, **results}, indent=2))


if __name__ == "__main__":
    main()
