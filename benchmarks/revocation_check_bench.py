"""What the per-call revocation check costs on a SQLite catalog.

Usage: python benchmarks/revocation_check_bench.py [--calls 20000]

Before each authenticated call a gateway asks its catalog's security generation whether users, keys, tokens or
grants changed (``IdentityCache.current``). Three cases, each timed call by call (p50, p99 in microseconds):
``quiet``, nothing written since the last call (one ``PRAGMA data_version``); ``busy``, another connection
committed an unrelated row (a query-history-sized write) before every call, so the counter's row is read too;
``changed``, a security change (a role's limits) before every call, so the snapshot is reloaded. The writes
are outside the timed part.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from nexus_flight.catalog.store import CatalogStore  # noqa: E402
from nexus_flight.catalog.users import add_role, add_user, update_role  # noqa: E402
from nexus_flight.catalog.vault import ENV_KEY  # noqa: E402
from nexus_flight.server.security.identities import IdentityCache  # noqa: E402


def _timed(cache: IdentityCache, calls: int, before=None) -> list[float]:
    times = []
    for _ in range(calls):
        if before is not None:
            before()
        started = time.perf_counter()
        cache.current()
        times.append((time.perf_counter() - started) * 1e6)
    return times


def main() -> None:
    """Run the three cases and print their p50 and p99."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    os.environ.setdefault(ENV_KEY, base64.b64encode(os.urandom(32)).decode())
    with tempfile.TemporaryDirectory() as tmp:
        store = CatalogStore(data_dir=tmp)
        add_role(store, "analyst")
        for i in range(20):
            add_user(store, f"user{i}", "a-long-enough-password-1", roles=["analyst"])
        cache = IdentityCache(store, refresh_seconds=300)
        with store.engine.begin() as conn:
            conn.execute(text("CREATE TABLE unrelated (id INTEGER PRIMARY KEY, body TEXT)"))

        def unrelated_write() -> None:
            with store.engine.begin() as conn:
                conn.execute(text("INSERT INTO unrelated (body) VALUES (:b)"), {"b": "x" * 400})

        counter = iter(range(10**9))
        cases = {
            "quiet": (args.calls, None),
            "busy": (args.calls // 10, unrelated_write),
            "changed": (args.calls // 100,
                        lambda: update_role(store, "analyst", limits={"max_rows": next(counter) + 1})),
        }
        for name, (calls, before) in cases.items():
            times = sorted(_timed(cache, calls, before))
            print(f"{name:8} calls={calls:6} p50={statistics.median(times):8.1f} us "
                  f"p99={times[int(len(times) * 0.99)]:8.1f} us")
        store.close()


if __name__ == "__main__":
    main()
