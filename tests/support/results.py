"""Reading a backend's answer in tests: plan SQL for it, run it to the end through the pipeline's result stream."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

from nexus_flight.core.errors import QueryCancelledError
from nexus_flight.core.plan import QueryPlan, plan_sql
from nexus_flight.core.source import QueryLimits
from nexus_flight.server.query.results import ResultStream


def plan_for(backend, sql: str) -> QueryPlan:
    """A plan of ``sql`` for ``backend`` (no validator: tests drive the backend directly)."""
    return plan_sql(sql, backend.dialect, backend.name)


def stream_of(execution, **limits) -> ResultStream:
    """The result stream the query service would put around ``execution`` (its time limit, caps, stops)."""
    return ResultStream(execution, None, QueryLimits(**limits))


def run(backend, sql, params=None, **limits) -> pa.Table:
    """Execute ``sql`` on ``backend`` (``limits`` are QueryLimits fields), read the whole result, close.

    The result streams as the gateway streams it: the server's time limit and the classification of a stopped
    query are the pipeline's (``server/query/results.py``), not the adapter's.
    """
    stream = stream_of(backend.execute(plan_for(backend, sql), params, QueryLimits(**limits)), **limits)
    try:
        stream.start()
        return pa.Table.from_batches(list(stream), stream.execution.reader.schema)
    finally:
        stream.close()


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


def held_then_cancelled(execution, held: threading.Event, seconds: float = 15) -> None:
    """Cancel ``execution`` while its reading thread is held in the gap before the engine has the statement.

    ``held`` is set by the caller's stand-in for a step inside that gap (which then waits a moment, as a busy
    server's scheduler may hold the thread). The read must end with QueryCancelledError within ``seconds``:
    otherwise the cancel was lost and the statement runs on. The execution is closed either way.
    """
    from nexus_flight.core.errors import QueryCancelledError

    thread, errors = read_in_background(execution)
    try:
        assert held.wait(10)
        execution.cancel()
        thread.join(seconds)
        assert not thread.is_alive(), "the cancel was lost: the statement still runs"
        assert errors and isinstance(errors[0], QueryCancelledError), errors
    finally:
        execution.close()
        thread.join(120)


def late(step, held: threading.Event, seconds: float = 0.3):
    """``step``, first setting ``held`` and waiting ``seconds`` (a thread held inside a gap)."""

    def held_step(*args, **kwargs):
        held.set()
        time.sleep(seconds)
        return step(*args, **kwargs)

    return held_step


def cancel_after_first_batch(execution) -> None:
    """Read one non-empty batch, cancel, check that the rest of the stream raises QueryCancelledError, close.

    The execution streams as the gateway streams it: batches the engine computed before it saw the cancel are
    not sent.
    """
    stream = stream_of(execution)
    batches = iter(stream)
    assert next(batches).num_rows > 0
    stream.stop()
    with pytest.raises(QueryCancelledError):
        for _ in batches:
            pass
    stream.close()
