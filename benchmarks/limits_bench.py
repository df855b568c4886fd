"""Limits and floods against served gateways, in one run: the small-query p50 with authentication on against ROAPI's
and an open gateway's, rate-limit accuracy, handshake throughput, and failed-sign-in floods against an
authenticated user's small queries.

Usage: python benchmarks/limits_bench.py [--scale 1] [--small 300] [--window 10] [--flood-clients 8]

Three servers run as processes of their own: ``nexus-flight serve`` requiring authentication (``bob`` granted the
demo catalog, ``rated`` held to 600 queries a minute with a burst of 10), ``nexus-flight serve`` without it, and
ROAPI over the same data as parquet.

- small queries, as ``flight_sql_bench.py`` runs them: a point lookup on ``orders`` (a new text each time) and
  ``SELECT * FROM nation WHERE n_nationkey < 5`` (the same text), through one ADBC connection each (bob signs in
  with user name and password, then sends his bearer token), the servers taking turns query by query;
- rate-limit accuracy: two pyarrow.flight clients of ``rated`` send queries as fast as they can for ``--window``
  seconds; admitted against the configured burst + rate × window;
- handshake throughput: password sign-ins (Basic in the Handshake, an argon2id check each) from 1 and 4 clients,
  and authenticated calls carrying a bearer token (``ListActions``) from 4 clients;
- floods: ``--flood-clients`` threads in another process send wrong passwords from one address, wrong passwords
  from a new address each time (``x-forwarded-for``, which the gateway is told to trust: each attempt then costs
  an argon2 check, nothing is locked out), or garbage bearer tokens; bob's small-query p50/p99 is measured with
  and without each flood, the phases alternating.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow.flight as flight

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.flight_sql_bench import NATION, POINT, percentiles, start_roapi, wait_port  # noqa: E402
from nexus_flight.catalog.vault import ENV_KEY  # noqa: E402
from tests.support.services import free_port  # noqa: E402

BOB_PASSWORD = "bob-battery-staple-9"
RATE_PER_MINUTE, BURST = 600, 10
FLOODS = ("wrong password, one address", "wrong password, new address each", "garbage bearer token")


def _catalog(data_dir: Path) -> None:
    from nexus_flight.catalog.grants import add_grant
    from nexus_flight.catalog.store import CatalogStore
    from nexus_flight.catalog.users import add_role, add_user

    store = CatalogStore(data_dir=data_dir)
    add_role(store, "analyst")
    add_grant(store, "analyst", "demo")
    add_user(store, "bob", BOB_PASSWORD, roles=["analyst"])
    add_user(store, "rated", BOB_PASSWORD, roles=["analyst"],
             limits={"queries_per_minute": RATE_PER_MINUTE, "query_burst": BURST})
    store.close()


def _serve(data_dir: Path, demo: Path, scale: float, config: str) -> tuple[subprocess.Popen, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / demo.name).symlink_to(demo)
    (data_dir / "gateway.toml").write_text(config)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nexus_flight.server", "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--demo-scale", f"{scale:g}", "--config", str(data_dir / "gateway.toml")],
        cwd=data_dir, stdout=open(data_dir / "nexus.log", "w"), stderr=subprocess.STDOUT,
    )
    wait_port(port)
    return proc, f"grpc://127.0.0.1:{port}"


SECURE = """
[server]
log_level = "WARNING"
max_tickets_per_client = 1000000   # the rate clients plan queries they may not run (a refused DoGet keeps its ticket)

[server.auth]
enabled = true
client_address_header = "x-forwarded-for"
failure_delay_seconds = {failure_delay}
"""


def _adbc(uri: str, user: str | None = None):
    kwargs = {"username": user, "password": BOB_PASSWORD} if user else {}
    return flightsql.connect(uri, db_kwargs=kwargs, autocommit=True)


def _timed(cur, sql: str = NATION) -> float:
    """Seconds one query took, through to its last batch."""
    started = time.perf_counter()
    cur.execute(sql)
    cur.fetch_arrow_table()
    return time.perf_counter() - started


def small_queries(servers: dict[str, tuple[str, str | None]], count: int) -> dict[str, dict[str, float]]:
    """Small-query p50/p99 per server, taking turns query by query (the first one rotating)."""
    connections = {name: _adbc(uri, user) for name, (uri, user) in servers.items()}
    try:
        cursors = [(name, conn.cursor()) for name, conn in connections.items()]
        times: dict[str, dict[str, list[float]]] = {name: {"": [], "nation_": []} for name in servers}
        for prefix, text in (("", POINT), ("nation_", NATION)):
            for _, cur in cursors:
                _timed(cur, text.format(key=1))
            for i in range(count):
                sql = text.format(key=1 + (i * 7919) % 6_000_000)
                for k in range(len(cursors)):
                    name, cur = cursors[(i + k) % len(cursors)]
                    times[name][prefix].append(_timed(cur, sql))
        return {name: {**percentiles(t[""]), **percentiles(t["nation_"], "nation_")} for name, t in times.items()}
    finally:
        for conn in connections.values():
            conn.close()


def _query(client: flight.FlightClient, options: flight.FlightCallOptions) -> None:
    from flightsql import flightsql_pb2 as pb
    from google.protobuf import any_pb2

    packed = any_pb2.Any()
    packed.Pack(pb.CommandStatementQuery(query="SELECT n_name FROM nation WHERE n_nationkey = 7"))
    info = client.get_flight_info(flight.FlightDescriptor.for_command(packed.SerializeToString()), options)
    client.do_get(info.endpoints[0].ticket, options).read_all()


def rate_accuracy(uri: str, window: float, clients: int = 2) -> dict[str, float]:
    """Queries of ``rated`` admitted in ``window`` seconds, from ``clients`` clients sending without pause."""
    admitted, refused = [0] * clients, [0] * clients
    client = flight.FlightClient(uri)
    options = flight.FlightCallOptions(headers=[client.authenticate_basic_token("rated", BOB_PASSWORD)])
    start = time.monotonic() + 0.2
    end = start + window

    def run(i: int) -> None:
        mine = flight.FlightClient(uri)
        while time.monotonic() < start:
            time.sleep(0.001)
        while time.monotonic() < end:
            try:
                _query(mine, options)
                admitted[i] += 1
            except flight.FlightUnavailableError:
                refused[i] += 1

    _threads(run, clients)
    expected = BURST + RATE_PER_MINUTE / 60 * window
    return {"window_s": window, "admitted": sum(admitted), "refused": sum(refused), "expected": expected,
            "admitted_vs_expected": sum(admitted) / expected}


def _threads(run, count: int) -> None:
    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def handshakes(uri: str, seconds: float = 3.0) -> dict[str, float]:
    """Password sign-ins per second from 1 and 4 clients; bearer-token calls per second from 4."""
    results = {}
    token = flight.FlightClient(uri).authenticate_basic_token("bob", BOB_PASSWORD)
    for name, clients, call in (
        ("password_sign_ins_per_s_1_client", 1, lambda c: c.authenticate_basic_token("bob", BOB_PASSWORD)),
        ("password_sign_ins_per_s_4_clients", 4, lambda c: c.authenticate_basic_token("bob", BOB_PASSWORD)),
        ("bearer_calls_per_s_4_clients", 4,
         lambda c: list(c.list_actions(flight.FlightCallOptions(headers=[token])))),
    ):
        counts = [0] * clients
        end = time.monotonic() + seconds

        def run(i: int, call=call, counts=counts, end=end) -> None:
            client = flight.FlightClient(uri)
            while time.monotonic() < end:
                try:
                    call(client)
                    counts[i] += 1
                except flight.FlightUnavailableError:  # the sign-in queue is full: retried
                    pass

        _threads(run, clients)
        results[name] = sum(counts) / seconds
    return results


def flood(uri: str, kind: int, clients: int, stop_file: Path) -> None:
    """Send failing sign-ins of one kind from ``clients`` threads until ``stop_file`` exists; print the count."""
    sent = [0] * clients

    def run(i: int) -> None:
        client = flight.FlightClient(uri)
        rng = random.Random(i)
        while not stop_file.exists():
            try:
                if kind == 2:
                    headers = [(b"authorization", f"Bearer {secrets.token_urlsafe(48)}".encode())]
                    list(client.list_actions(flight.FlightCallOptions(headers=headers)))
                else:
                    headers = []
                    if kind == 1:
                        address = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                        headers = [(b"x-forwarded-for", address.encode())]
                    client.authenticate_basic_token(f"user{rng.randrange(10**6)}", "wrong-password",
                                                    flight.FlightCallOptions(headers=headers))
            except flight.FlightError:
                pass
            sent[i] += 1

    print("flooding", flush=True)
    _threads(run, clients)
    print(sum(sent), flush=True)


def under_flood(uri: str, clients: int, count: int, rounds: int = 2) -> dict[str, dict[str, float]]:
    """Bob's small-query p50/p99 without a flood and during each kind of flood, the phases alternating."""
    results: dict[str, dict[str, float]] = {}
    with _adbc(uri, "bob") as conn, conn.cursor() as cur:
        _timed(cur)
        quiet: list[float] = []
        for kind, name in enumerate(FLOODS):
            loud: list[float] = []
            sent = elapsed = 0.0
            for _ in range(rounds):
                quiet += [_timed(cur) for _ in range(count)]
                with tempfile.TemporaryDirectory() as tmp:
                    stop = Path(tmp) / "stop"
                    proc = subprocess.Popen([sys.executable, __file__, "--flood", uri, "--kind", str(kind),
                                             "--flood-clients", str(clients), "--stop-file", str(stop)],
                                            stdout=subprocess.PIPE, text=True)
                    assert proc.stdout.readline().strip() == "flooding"
                    time.sleep(1.0)  # the flood under way
                    started = time.monotonic()
                    loud += [_timed(cur) for _ in range(count)]
                    stop.touch()
                    elapsed += time.monotonic() - started + 1.0
                    sent += int(proc.communicate(timeout=60)[0].strip())
            results[name] = {**percentiles(loud), "failed_sign_ins_per_s": sent / elapsed}
        results["no flood"] = percentiles(quiet)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--flood-clients", type=int, default=8)
    parser.add_argument("--failure-delay", type=float, default=0.2,
                        help="the secured gateway's failure_delay_seconds (0: failures answered at once)")
    parser.add_argument("--flood", help=argparse.SUPPRESS)
    parser.add_argument("--kind", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stop-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        flood(args.flood, args.kind, args.flood_clients, args.stop_file)
        return

    from nexus_flight.server.app.demo import demo_database, generate_parquet

    os.environ.setdefault(ENV_KEY, base64.b64encode(os.urandom(32)).decode())
    data = ROOT / "benchmarks" / ".data"
    parquet_dir = data / f"parquet_sf{args.scale:g}"
    if not (parquet_dir / "lineitem.parquet").exists():
        generate_parquet(parquet_dir, args.scale)
    demo = demo_database(data, args.scale)
    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            secure_dir, open_dir = Path(tmp) / "secure", Path(tmp) / "open"
            secure_dir.mkdir()
            _catalog(secure_dir)
            secure, secure_uri = _serve(secure_dir, demo, args.scale, SECURE.format(failure_delay=args.failure_delay))
            plain, plain_uri = _serve(open_dir, demo, args.scale, '[server]\nlog_level = "WARNING"\n')
            roapi, roapi_uri = start_roapi(parquet_dir)
            processes += [secure, plain, roapi]
            results = {"small": small_queries({"nexus_auth": (secure_uri, "bob"), "nexus_no_auth": (plain_uri, None),
                                               "roapi": (roapi_uri, None)}, args.small)}
            results["rate"] = rate_accuracy(secure_uri, args.window)
            results["handshakes"] = handshakes(secure_uri)
            results["floods"] = under_flood(secure_uri, args.flood_clients, args.small // 2)
        finally:
            for proc in processes:
                proc.terminate()
                proc.wait(30)
    small, floods = results["small"], results["floods"]
    results["ratios"] = {
        "auth_point_p50_vs_roapi": small["nexus_auth"]["p50_ms"] / small["roapi"]["p50_ms"],
        "auth_point_p50_vs_no_auth": small["nexus_auth"]["p50_ms"] / small["nexus_no_auth"]["p50_ms"],
        "auth_nation_p50_vs_roapi": small["nexus_auth"]["nation_p50_ms"] / small["roapi"]["nation_p50_ms"],
        "auth_nation_p50_vs_no_auth": small["nexus_auth"]["nation_p50_ms"] / small["nexus_no_auth"]["nation_p50_ms"],
        **{f"p50 during {name} vs none": floods[name]["p50_ms"] / floods["no flood"]["p50_ms"] for name in FLOODS},
        **{f"p99 during {name} vs none": floods[name]["p99_ms"] / floods["no flood"]["p99_ms"] for name in FLOODS},
    }
    print(json.dumps({"scale": args.scale, "failure_delay_seconds": args.failure_delay, **results}, indent=2))


if __name__ == "__main__":
    main()
