"""A process racing others for one principal's rate tokens or running slots in a shared catalog.

Run as ``python -m tests.support.limit_race URL SECONDS``: once connected it prints ``ready`` and waits for a line
on its input (so that every racer starts at once), races for tokens for ``SECONDS``, then for slots as long, and
prints a JSON line of what it got.

- tokens: takes tokens of a bucket of 50 that refills once in 11 days, as fast as it can: every racer together
  must get exactly 50.
- slots: takes a slot under ``max_concurrent_queries = 2``; each time it holds one it counts the live rows of
  the principal itself (a plain SELECT, another connection) before giving it back: no racer may ever see more
  than 2.
"""

from __future__ import annotations

import json
import os
import sys
import time

from sqlalchemy import func, make_url, select

from nexus_flight.catalog.limit_rows import CatalogLimitRows, limits_engine
from nexus_flight.catalog.models import RunningSlot

KEY = "user:racer"
BURST = 50
LIMIT = 2


def race_tokens(rows: CatalogLimitRows, until: float) -> dict:
    taken = refused = 0
    while time.time() < until:
        if rows.take_token(KEY, 1e-6, BURST, time.time()) == 0.0:
            taken += 1
        else:
            refused += 1
    return {"taken": taken, "refused": refused}


def race_slots(rows: CatalogLimitRows, until: float) -> dict:
    held = refused = most = 0
    live = select(func.count()).select_from(RunningSlot).where(RunningSlot.accounting_key == KEY)
    replica = f"racer-{os.getpid()}"
    while time.time() < until:
        slot = os.urandom(16).hex()
        now = time.time()
        if rows.hold(slot, KEY, "demo", replica, LIMIT, None, now, now + 60) is not None:
            refused += 1
            continue
        held += 1
        time.sleep(0.001)  # held a moment, as a query holds it: the others find the limit reached
        with rows.engine.connect() as connection:
            most = max(most, connection.execute(live).scalar())
        rows.release([slot])
    return {"held": held, "refused": refused, "most": most}


def main() -> None:
    url, seconds = sys.argv[1], float(sys.argv[2])
    rows = CatalogLimitRows(limits_engine(make_url(url)))
    with rows.engine.connect():  # connected before the start
        pass
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.time()
    tokens = race_tokens(rows, started + seconds)
    slots = race_slots(rows, started + 2 * seconds)
    print(json.dumps({**tokens, **slots}), flush=True)
    rows.close()


if __name__ == "__main__":
    main()
