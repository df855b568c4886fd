"""Reading a backend's answer in tests: run a query to the end and release its execution."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from nexus_flight.core.errors import QueryCancelledError
from nexus_flight.core.source import QueryLimits


def run(backend, sql, params=None, **limits) -> pa.Table:
    """Execute ``sql`` on ``backend`` (``limits`` are QueryLimits fields), read the whole result, close."""
    execution = backend.execute(sql, params, QueryLimits(**limits))
    try:
        return execution.reader.read_all()
    finally:
        execution.close()


def read_in_background(execution) -> tuple[threading.Thread, list[Exception]]:
    """Start reading the whole result on a thread; the list collects what the reading raised."""
    errors: list[Exception] = []

    def consume() -> None:
        try:
            execution.reader.read_all()
        except Exception as exc:  # noqa: BLE001 - recorded for the caller's assertion
            errors.append(exc)

    thread = threading.Thread(target=consume)
    thread.start()
    return thread, errors


def cancel_after_first_batch(execution) -> None:
    """Read one non-empty batch, cancel, check that the rest of the stream raises QueryCancelledError, close."""
    assert execution.reader.read_next_batch().num_rows > 0
    execution.cancel()
    with pytest.raises(QueryCancelledError):
        for _ in execution.reader:
            pass
    execution.close()
