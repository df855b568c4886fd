"""The ADBC families' streaming execution: one query on one pooled connection, converted batch by batch.

PostgreSQL, SQLite, Snowflake and upstream Flight SQL all hand back an ADBC cursor whose
``fetch_record_batch()`` is a lazy ``RecordBatchReader``. ``AdbcExecution`` wraps that stream so that the
gateway never materializes a result: batches are converted one at a time (``result_types``), engine errors
raised mid-stream are mapped into the gateway's error tree, a cancel stops the statement in the engine
(``adbc_cancel``), and the connection goes back to its pool only once the stream is finished (or is discarded
when it was cancelled). A query's time limit is the query service's (``server/query/results.py``); an execution
that runs while planning (a schema read from the first rows) keeps its own deadline, the planning step's.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import pyarrow as pa

from nexus_flight.backends.base import Execution
from nexus_flight.backends.early_cancel import EarlyCancel
from nexus_flight.backends.limits import timeout_error
from nexus_flight.backends.pool import STATEMENT_ERRORS, ConnectionPool, close_quietly
from nexus_flight.backends.result_types import FieldRule, type_plan
from nexus_flight.backends.watchdog import WATCHDOG, Deadline
from nexus_flight.core.errors import GatewayError, QueryCancelledError

ErrorMapper = Callable[[], AbstractContextManager[None]]

Runner = Callable[[Any, "Sequence[Any] | None"], pa.RecordBatchReader]


class AdbcExecution(Execution):
    """One query on one borrowed connection, streamed lazily.

    ``cancel`` asks the engine to stop the statement (``adbc_cancel``, safe from any thread, also while the
    driver is still waiting for the first row). With ``planning_seconds`` (a planning step) a deadline does the
    same and reports ``QueryTimeoutError`` naming the planning limit. The connection returns to the pool when
    the stream ends cleanly, and is closed when
    the query was cancelled, failed mid-stream or was abandoned half-read. ``skip_rows`` leading rows of each
    parameter row's stream are the backend's own and are dropped.
    """

    def __init__(
        self,
        *,
        source: str,
        pool: ConnectionPool,
        run: Runner,
        parameter_rows: Sequence[Sequence[Any]] | None,
        rule: FieldRule | None,
        map_errors: ErrorMapper,
        described: pa.Schema | None,
        planning_seconds: float | None = None,
        batch_rows: int = 65_536,
        columns: Sequence[FieldRule | None] = (),
        skip_rows: int = 0,
    ) -> None:
        self._source = source
        self._pool = pool
        self._run = run
        self._rows: list[Sequence[Any] | None] = list(parameter_rows) if parameter_rows else [None]
        self._rule = rule
        self._columns = columns
        self._skip_rows = skip_rows
        self._map_errors = map_errors
        self._planning_seconds = planning_seconds
        self._batch_rows = batch_rows
        self._lock = threading.Lock()
        self._cursor: Any = None
        #: Held while the cursor is cancelled or closed: never both at once.
        self._cursor_lock = threading.Lock()
        self._finished = False
        self._cancelled = False
        self._timed_out = False
        #: PostgreSQL ignores a cancel while the connection runs nothing: repeated while a statement is sent.
        self._early_cancel = EarlyCancel(self._cancel_in_engine)
        self._item = pool.acquire()
        self._deadline: Deadline | None = None
        if planning_seconds is not None:
            self._deadline = WATCHDOG.schedule_method(planning_seconds, self._on_deadline)
        first: pa.RecordBatchReader | None = None
        try:
            if described is None:
                # The engine cannot describe without running: start now and take the stream's schema.
                first = self._start(self._rows[0])
                described = first.schema
            self._plan = type_plan(described, rule, columns)
        except BaseException as exc:
            self._finish(isinstance(exc, STATEMENT_ERRORS))
            raise
        self._reader = pa.RecordBatchReader.from_batches(self._plan.schema, self._batches(first))

    @property
    def reader(self) -> pa.RecordBatchReader:
        """The converted, lazy result stream."""
        return self._reader

    def _start(self, row: Sequence[Any] | None) -> pa.RecordBatchReader:
        with self._early_cancel.starting():
            with self._lock:
                if self._cancelled:
                    raise QueryCancelledError("the query was cancelled", source=self._source)
                previous, self._cursor = self._cursor, self._item.connection.cursor()
            if previous is not None:
                with self._cursor_lock:
                    close_quietly(previous)
            with self._errors():
                return self._run(self._cursor, row)

    def _batches(self, first: pa.RecordBatchReader | None) -> Iterator[pa.RecordBatch]:
        healthy = False
        try:
            for index, row in enumerate(self._rows):
                reader = first if index == 0 and first is not None else self._start(row)
                plan = type_plan(reader.schema, self._rule, self._columns)
                # Each parameter row may stream slightly different types: cast to what was announced.
                drifted = not plan.schema.equals(self._plan.schema)
                skip = self._skip_rows
                while True:
                    if self._cancelled:
                        # Drivers without a working cancel (SQLite) still stop at the next batch.
                        raise self._stopped_error()
                    with self._errors():
                        try:
                            batch = reader.read_next_batch()
                        except StopIteration:
                            break
                        batch = plan.convert(batch)
                        if drifted:
                            batch = batch.cast(self._plan.schema)
                    if skip:  # rows the backend put in front of each result (SQLite's type-fixing row)
                        dropped = min(skip, batch.num_rows)
                        batch, skip = batch.slice(dropped), skip - dropped
                    # Drivers size batches by bytes; clients want at most batch_rows per message.
                    for offset in range(0, max(batch.num_rows, 1), self._batch_rows):
                        yield batch.slice(offset, self._batch_rows)
            healthy = True
        except STATEMENT_ERRORS:
            healthy = not self._cancelled
            raise
        finally:
            self._finish(healthy)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            with self._map_errors():
                yield
        except GatewayError as exc:
            if self._timed_out or (self._cancelled and not isinstance(exc, QueryCancelledError)):
                raise self._stopped_error() from exc
            raise

    def _stopped_error(self) -> GatewayError:
        """Return the error of a stream we stopped: by the planning deadline, or by a cancel.

        Why a query was cancelled (a client, the server's time limit) is the query service's to tell.
        """
        if self._timed_out and self._planning_seconds is not None:
            return timeout_error(self._planning_seconds, self._source, "planning")
        return QueryCancelledError("the query was cancelled", source=self._source)

    def _on_deadline(self) -> None:
        self._timed_out = True
        # On the watchdog's thread, which fires every query's time limit: PostgreSQL's cancel request opens a
        # connection of its own and may block, so it is sent from a thread of its own.
        threading.Thread(target=self.cancel, name="planning-deadline-cancel", daemon=True).start()

    def cancel(self) -> None:
        """Ask the engine to stop the running statement (again while it may still be sent: ``early_cancel.py``)."""
        with self._lock:
            if self._finished:
                return
            self._cancelled = True
        self._cancel_in_engine()
        self._early_cancel.cancelled()

    def _cancel_in_engine(self) -> None:
        # A cancelled execution's connection is closed, never pooled: a late cancel reaches no other query. And a
        # cursor is never closed while a cancel uses it (the driver would cancel a statement it is freeing).
        with self._cursor_lock:
            with self._lock:
                cursor = None if self._finished else self._cursor
            if cursor is not None:
                with contextlib.suppress(Exception):
                    cursor.adbc_cancel()

    def _finish(self, healthy: bool) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
            cursor = self._cursor
        if self._deadline is not None:
            self._deadline.cancel()
        if cursor is not None:
            with self._cursor_lock:
                close_quietly(cursor)
        self._pool.release(self._item, healthy and not self._cancelled)

    def close(self) -> None:
        """Abandon the stream: cancel what still runs and drop the connection."""
        with self._lock:
            finished = self._finished
        if not finished:
            self.cancel()
            self._finish(False)
