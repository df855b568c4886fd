"""What the family benchmarks share: the best time of a few runs, and reading a result through each route."""

from __future__ import annotations

import time
from collections.abc import Callable

from backends.base import QueryLimits


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
    execution = backend.execute(sql, None, QueryLimits())
    n = sum(batch.num_rows for batch in execution.reader)
    execution.close()
    return n


def via_gateway(location: str, sql: str) -> int:
    """Stream ``sql`` through a gateway with the ADBC Flight SQL client; the rows read."""
    import adbc_driver_flightsql.dbapi as flightsql

    with flightsql.connect(location, autocommit=True) as con, con.cursor() as cur:
        cur.execute(sql)
        return sum(batch.num_rows for batch in cur.fetch_record_batch())
