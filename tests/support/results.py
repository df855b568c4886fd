"""Reading a backend's answer in tests: run a query to the end and release its execution."""

from __future__ import annotations

import pyarrow as pa

from backends.base import QueryLimits


def run(backend, sql, params=None, **limits) -> pa.Table:
    """Execute ``sql`` on ``backend`` (``limits`` are QueryLimits fields), read the whole result, close."""
    execution = backend.execute(sql, params, QueryLimits(**limits))
    try:
        return execution.reader.read_all()
    finally:
        execution.close()
