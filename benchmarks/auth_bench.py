"""What authentication, grants and policies add to a small query, and how many password sign-ins a gateway takes.

Usage: python benchmarks/auth_bench.py [--queries 2000] [--rounds 3] [--sign-ins 40]

Two gateways on the demo data in one process: one without authentication, one requiring it, where ``bob``
(role ``analyst``, granted ``demo.main.nation``) sends his bearer token on every call, so each query pays token
verification, the identity lookup and the grant check of every table and column it names. The same small query
(``SELECT n_name FROM nation WHERE n_nationkey = 7``, GetFlightInfo + DoGet through pyarrow.flight) runs on both,
the gateways taking turns round after round; the script prints p50 and p99 per query for each and the
difference. ``carol`` runs it on the same secured gateway under a row filter (``n_regionkey = {user.rk}``) and a
column mask (``n_comment``) on ``nation`` (bob holds a role the policies exempt), so her queries also pay the
policy rewrite and the validation of the rewritten SQL. Then password sign-ins (argon2id, one check at a time by
default) back to back: sign-ins per second.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.flight as flight

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flightsql import flightsql_pb2 as pb  # noqa: E402
from google.protobuf import any_pb2  # noqa: E402

from nexus_flight.catalog.grants import add_grant  # noqa: E402
from nexus_flight.catalog.policies import PolicySpec, add_policy  # noqa: E402
from nexus_flight.catalog.store import CatalogStore  # noqa: E402
from nexus_flight.catalog.users import add_role, add_user  # noqa: E402
from nexus_flight.catalog.vault import ENV_KEY  # noqa: E402
from nexus_flight.core.settings import AuthSettings, ServerSettings  # noqa: E402
from nexus_flight.server.app.gateway import Gateway  # noqa: E402
from nexus_flight.server.app.replicas import shared_sessions  # noqa: E402
from nexus_flight.server.app.security import start_security  # noqa: E402

QUERY = "SELECT n_name FROM nation WHERE n_nationkey = 7"
PASSWORD = "bob-battery-staple-9"


def _descriptor() -> flight.FlightDescriptor:
    packed = any_pb2.Any()
    packed.Pack(pb.CommandStatementQuery(query=QUERY))
    return flight.FlightDescriptor.for_command(packed.SerializeToString())


def _latencies(client: flight.FlightClient, options, n: int) -> list[float]:
    descriptor, times = _descriptor(), []
    for _ in range(n):
        started = time.perf_counter()
        info = client.get_flight_info(descriptor, options)
        client.do_get(info.endpoints[0].ticket, options).read_all()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=2000, help="queries per gateway per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sign-ins", type=int, default=40)
    args = parser.parse_args()
    os.environ.setdefault(ENV_KEY, base64.b64encode(os.urandom(32)).decode())
    data = ROOT / "benchmarks" / ".data"
    with tempfile.TemporaryDirectory() as tmp:
        store = CatalogStore(data_dir=Path(tmp))
        add_role(store, "analyst")
        add_role(store, "unfiltered")
        add_user(store, "bob", PASSWORD, roles=["analyst", "unfiltered"])
        add_user(store, "carol", PASSWORD, roles=["analyst"], attributes={"rk": 3})
        add_grant(store, "analyst", "demo", "main", "nation")
        add_policy(store, PolicySpec("by-region", "row_filter", "demo.main.nation",
                                     expression="n_regionkey = {user.rk}", exempt_roles=("unfiltered",)))
        add_policy(store, PolicySpec("no-comment", "column_mask", "demo.main.nation", column="n_comment",
                                     exempt_roles=("unfiltered",)))
        security = start_security(store, AuthSettings(enabled=True))
        # Tickets stay readable until idle for handle_ttl_seconds: room for every query of the run.
        settings = ServerSettings(port=0, data_dir=data, max_tickets=1_000_000, max_tickets_per_client=1_000_000)
        open_gw = Gateway(settings).start()
        # As `serve` does with its catalog: a signed-in session's options are read from the catalog on every call.
        secured = Gateway(settings, authenticator=security.authenticator, access=security.access,
                          sessions=shared_sessions(store)).start()
        try:
            plain, guarded = flight.FlightClient(open_gw.location), flight.FlightClient(secured.location)
            header = guarded.authenticate_basic_token("bob", PASSWORD)
            options = flight.FlightCallOptions(headers=[header])
            carol = flight.FlightCallOptions(headers=[guarded.authenticate_basic_token("carol", PASSWORD)])
            _latencies(plain, None, 200), _latencies(guarded, options, 200), _latencies(guarded, carol, 200)  # warm up
            runs: dict[str, list[float]] = {"no auth": [], "auth + grants": [], "+ policies": []}
            for _ in range(args.rounds):
                runs["no auth"] += _latencies(plain, None, args.queries)
                runs["auth + grants"] += _latencies(guarded, options, args.queries)
                runs["+ policies"] += _latencies(guarded, carol, args.queries)
            for name, times in runs.items():
                print(f"{name:14s} p50 {_pct(times, 50):.3f} ms  p99 {_pct(times, 99):.3f} ms  ({len(times)} queries)")
            for name in ("auth + grants", "+ policies"):
                print(f"added ({name}) p50 {_pct(runs[name], 50) - _pct(runs['no auth'], 50):+.3f} ms  "
                      f"p99 {_pct(runs[name], 99) - _pct(runs['no auth'], 99):+.3f} ms over no auth")
            started = time.perf_counter()
            for _ in range(args.sign_ins):
                guarded.authenticate_basic_token("bob", PASSWORD)
            elapsed = time.perf_counter() - started
            print(f"password sign-ins: {args.sign_ins / elapsed:.1f}/s ({elapsed / args.sign_ins * 1000:.1f} ms each)")
        finally:
            open_gw.shutdown()
            secured.shutdown()
            security.close()
            store.close()


if __name__ == "__main__":
    main()
