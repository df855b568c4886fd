"""What the family benchmarks share: the best time of a few runs, and reading a result through each route."""

from __future__ import annotations

import time
from collections.abc import Callable

from nexus_flight.core.source import QueryLimits
from tests.support.results import plan_for


def best(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    """The fastest of ``repeat`` runs of ``fn`` (which returns a row count), with that count."""
    times, n = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - started)
    return min(times), n


def via_backend(backend, sql: str) -> int:
    """Stream ``sql`` through a backend's reader to the end; the rows read."""
    execution = backend.execute(plan_for(backend, sql), None, QueryLimits())
    n = sum(batch.num_rows for batch in execution.reader)
    execution.close()
    return n


def via_gateway(location: str, sql: str) -> int:
    """Stream ``sql`` through a gateway with the ADBC Flight SQL client; the rows read."""
    import adbc_driver_flightsql.dbapi as flightsql

    with flightsql.connect(location, autocommit=True) as con, con.cursor() as cur:
        cur.execute(sql)
        return sum(batch.num_rows for batch in cur.fetch_record_batch())


def alternating(runs: dict[str, Callable[[], int]], repeat: int) -> dict[str, tuple[float, int]]:
    """Each route's best time and row count, the routes taking turns round after round (so that a busy moment of
    a shared machine hits every route alike)."""
    times: dict[str, list[float]] = {label: [] for label in runs}
    counts: dict[str, int] = {}
    for _ in range(repeat):
        for label, run in runs.items():
            seconds, counts[label] = best(run, 1)
            times[label].append(seconds)
    return {label: (min(times[label]), counts[label]) for label in runs}


def report(title: str, results: dict[str, tuple[float, int]], rows: int, base: str) -> None:
    """Print each route's time, rate and ratio to ``base``; every route must have read ``rows`` rows."""
    print(title)
    for label, (seconds, n) in results.items():
        assert n == rows, (label, n)
        print(f"  {label:<32} {seconds:7.3f} s  {rows / seconds / 1e6:6.3f} M rows/s  "
              f"{seconds / results[base][0]:5.2f}x {base}")
