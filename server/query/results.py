"""The stream's policy, in one place: time limit, cancel, byte-sized batches, counting, caps, and what went wrong.

Every result leaves the gateway through a ``ResultStream`` over the adapter's ``Execution``. Adapters only start
the query, honour the batch size they are given, map their engine's own errors, and stop when ``cancel`` is
called; everything else is decided here, the same way for every family:

- the server's time limit: one deadline per query on the shared watchdog, which cancels the execution;
- cancellation, by the client (CancelFlightInfo, a client that goes away) or by the deadline, remembered with
  its reason: batches the engine computed after a stop are not sent;
- batches cut by bytes to fit the clients' message limit (``batch_sizing.py``), conformed to the announced
  schema, counted (rows, bytes, time to the first batch) for history and metrics;
- the query's memory limit on what the gateway buffers for it: an engine batch larger than ``memory_limit``
  fails the query, naming the limit (the stream holds one engine batch at a time);
- the configured caps on a result's rows and bytes (``max_result_rows``, ``max_result_bytes``): the batch that
  would cross one is not sent, and the query stops with an error naming the cap;
- THE answer to "cancelled, timed out or failed?" (``outcome``): a stop the gateway made wins over whatever
  the engine said when it was interrupted; otherwise the adapter's mapped error, or a generic mapping.

Reading the engine's reader releases the GIL while the engine works; this loop holds it only to add a few
numbers per batch (64k rows), which costs nothing measurable next to serializing the batch
(benchmarks/RESULTS.md), and batches are not copied.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

import pyarrow as pa

from nexus_flight.backends.base import Execution
from nexus_flight.backends.limits import timeout_error
from nexus_flight.backends.watchdog import WATCHDOG, Deadline
from nexus_flight.core.errors import (
    BackendError,
    BackendUnavailableError,
    GatewayError,
    InvalidQueryError,
    LimitExceededError,
    QueryCancelledError,
    QueryTimeoutError,
)
from nexus_flight.core.source import QueryLimits
from nexus_flight.server.query.batch_sizing import within_message_limit


class _Stopped(QueryCancelledError):
    """What the stream raises itself when a batch arrives after a stop (``outcome`` then words the stop)."""


class Stop(Enum):
    """Why the gateway stopped a query."""

    CANCELLED = "cancelled"
    TIMED_OUT = "timed out"


def outcome(exc: BaseException, stop: Stop | None, limits: QueryLimits, source: str | None = None) -> GatewayError:
    """The one answer to "cancelled, timed out or failed?" for a query that raised ``exc``.

    A stop the gateway made explains the failure, whatever the interrupted engine said (an interrupt, a
    closed connection, a half-read stream); without one, the adapter's mapped error stands, and anything
    else is classified by its kind with the engine's first line of text.
    """
    if stop is Stop.TIMED_OUT:
        return time_limit_error(limits, source)
    if stop is Stop.CANCELLED:
        if isinstance(exc, QueryCancelledError) and not isinstance(exc, _Stopped):
            return exc  # the engine's own words for the interrupt ("[duckdb] query interrupted")
        return QueryCancelledError("the query was cancelled: interrupted in its engine", source=source)
    if isinstance(exc, GatewayError):
        return exc
    text = str(exc).split(". Detail:")[0].strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    if isinstance(exc, OSError | pa.ArrowIOError):
        return BackendUnavailableError(text, source=source)
    if isinstance(exc, pa.ArrowInvalid | pa.ArrowTypeError):
        return InvalidQueryError(text, source=source)
    if isinstance(exc, pa.ArrowCancelled):
        return QueryCancelledError(text, source=source)
    return BackendError(text, source=source)


def time_limit_error(limits: QueryLimits, source: str | None = None, when: str = "") -> QueryTimeoutError:
    """The error of a query stopped at its time limit, naming the limit (the caller's, if it lowered the server's).

    ``when`` says where the query was (e.g. "while it waited for memory"); by default it was running.
    """
    if "timeout_seconds" not in limits.lowered_by_caller and not when:
        return timeout_error(limits.timeout_seconds, source)
    limit = (f"the caller's time limit (max_query_seconds={limits.timeout_seconds:g})"
             if "timeout_seconds" in limits.lowered_by_caller
             else f"the server's time limit (query_timeout={limits.timeout_seconds:g}s)")
    return QueryTimeoutError(f"the query ran past {limit} {when + ' ' if when else ''}and was stopped", source=source)


@dataclass
class StreamStats:
    """What passed through a stream, for history and metrics."""

    rows: int = 0
    bytes: int = 0
    first_batch_ms: float | None = None


class ResultStream:
    """One query's result on its way to a client: started, limited, counted, stopped and classified here.

    Args:
        execution: The adapter's execution (not started yet: its ``reader`` starts it).
        schema: The schema the client was told about; batches are conformed to it (None: the reader's).
        limits: The server's limits (time, message size, caps).
        source: The source's name, for error context.
        started: When the query's time began (``time.monotonic()``; None: now): its time limit runs from there.

    """

    def __init__(
        self, execution: Execution, schema: pa.Schema | None, limits: QueryLimits, source: str | None = None,
        started: float | None = None,
    ) -> None:
        self.execution = execution
        self._announced = schema
        self.limits = limits
        self.source = source
        self.stats = StreamStats()
        #: The error the stream ended with (None: not ended, or ended well).
        self.error: GatewayError | None = None
        self._stop: Stop | None = None
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        # The time limit runs from when the query began (its wait for admission counts), not from now.
        left = limits.timeout_seconds - (time.monotonic() - started if started is not None else 0.0)
        self._deadline: Deadline | None = WATCHDOG.schedule(max(0.0, left), self._timed_out)
        self._reader: pa.RecordBatchReader | None = None
        self._closed = False
        #: The engine's last batch was handed over (a call that ends otherwise without an error lost its client).
        self.complete = False

    @property
    def schema(self) -> pa.Schema:
        """The schema of the batches: the announced one, else the engine's (which starts the query)."""
        if self._announced is not None:
            return self._announced
        if self._reader is None:
            self.start()
        assert self._reader is not None
        return self._reader.schema

    @property
    def stopped(self) -> Stop | None:
        """Why the gateway stopped the query, if it did."""
        return self._stop

    def start(self) -> None:
        """Start the query and wait for its first batch (an aggregation computes here).

        Raises:
            GatewayError: the query failed to start, or was stopped meanwhile (``outcome``).

        """
        try:
            self._reader = self.execution.reader
        except Exception as exc:
            raise self._failed(exc) from None

    def stop(self, reason: Stop = Stop.CANCELLED) -> None:
        """Stop the query in the engine; the first reason given is the one reported. Safe to call repeatedly."""
        if self._stopping(reason):
            self.execution.cancel()

    def _stopping(self, reason: Stop) -> bool:
        """Note why the query stops (the first reason counts); False once the stream is closed."""
        with self._lock:
            if self._closed:
                return False
            if self._stop is None:
                self._stop = reason
            return True

    def _timed_out(self) -> None:
        # On the watchdog's thread, which fires every query's time limit: the reason is noted here, but the engine's
        # cancel may block (a KILL or a cancel request is a connection of its own), so it runs on a thread of its own.
        if self._stopping(Stop.TIMED_OUT):
            threading.Thread(target=self.execution.cancel, name="time-limit-cancel", daemon=True).start()

    def stop_error(self) -> GatewayError | None:
        """The error of the gateway's stop, if it stopped the query (the client may have seen none: it had gone)."""
        if self._stop is None:
            return None
        return outcome(_Stopped("stopped"), self._stop, self.limits, self.source)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        """Yield the batches in the announced schema, sized for one message each, counted and capped.

        Raises:
            GatewayError: the engine failed, the query was stopped, or a cap was reached (``outcome``).

        """
        if self._reader is None:
            self.start()
        reader = self._reader
        assert reader is not None  # start() set it or raised
        schema = self.schema
        conform = not reader.schema.equals(schema)
        stats, limits = self.stats, self.limits
        max_rows, max_bytes = limits.max_result_rows, limits.max_result_bytes
        try:
            for batch in within_message_limit(_held_within(reader, limits.memory_limit_bytes),
                                              limits.max_message_bytes):
                if self._stop is not None:  # what the engine computed before it saw the stop is not sent
                    raise _Stopped("stopped")
                if stats.first_batch_ms is None:
                    stats.first_batch_ms = (time.perf_counter() - self._started) * 1000.0
                if max_rows is not None and stats.rows + batch.num_rows > max_rows:
                    raise _cap("rows", max_rows, "max_result_rows", limits)
                if max_bytes is not None and stats.bytes + batch.nbytes > max_bytes:
                    raise _cap("bytes", max_bytes, "max_result_bytes", limits)
                stats.rows += batch.num_rows
                stats.bytes += batch.nbytes
                # Clients require the stream's schema to equal the announced one (nullability, types).
                yield _conformed(batch, schema) if conform else batch
            self.complete = True
        except LimitExceededError as exc:
            self.execution.cancel()
            self.error = exc.with_context(source=self.source)
            raise self.error from None
        except Exception as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: BaseException) -> GatewayError:
        self.error = outcome(exc, self._stop, self.limits, self.source)
        self.error.with_context(source=self.source)
        return self.error

    def close(self) -> None:
        """Cancel the deadline and release the engine's resources (once)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            deadline, self._deadline = self._deadline, None
        if deadline is not None:
            deadline.cancel()
        self.execution.close()
        self._reader = None
        self.execution.drop_stream()


def _held_within(reader: pa.RecordBatchReader, memory_limit: int | None) -> Iterator[pa.RecordBatch]:
    """The engine's batches, refusing one larger than the query's memory limit.

    The stream holds one engine batch at a time (the next is read only when the client took the last one's
    pieces), so the largest batch is what the gateway buffers for the query besides the engine's own memory.
    """
    for batch in reader:
        held = batch.get_total_buffer_size()  # a slice holds its parent's buffers
        if memory_limit is not None and held > memory_limit:
            raise LimitExceededError(
                f"one batch of the result holds {held / 2**20:.1f} MiB, more than the query's memory limit "
                f"(memory_limit={memory_limit / 2**20:.0f} MiB): select fewer or narrower columns, or ask the "
                "operator to raise memory_limit"
            )
        yield batch


#: The caller's limit (``catalog/limits.py``) behind each server cap it can lower.
_CALLER_LIMIT = {"max_result_rows": "max_rows", "max_result_bytes": "max_bytes"}


def _cap(what: str, limit: int, name: str, limits: QueryLimits) -> LimitExceededError:
    whose = "the server's"
    if name in limits.lowered_by_caller:
        whose, name = "the caller's", _CALLER_LIMIT[name]
    return LimitExceededError(
        f"the result has more than {limit} {what}, {whose} limit ({name}={limit}): the first rows were "
        "sent; add a filter or a LIMIT, or ask the operator to raise the limit"
    )


def _conformed(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    # Asked of the batches, not of the reader: an upstream may announce no columns for a result without rows.
    if batch.schema.names != schema.names:
        raise _changed(schema, batch.schema)
    try:
        return batch.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise _changed(schema, batch.schema) from None


def _changed(announced: pa.Schema, now: pa.Schema) -> InvalidQueryError:
    """The result no longer has the columns announced when the statement was prepared (the source changed since)."""
    def columns(schema: pa.Schema) -> str:
        shown = ", ".join(f"{f.name}: {f.type}" for f in list(schema)[:8])
        return shown + (f", … ({len(schema)} columns)" if len(schema) > 8 else "")

    return InvalidQueryError(f"the statement's result changed since it was prepared (announced {columns(announced)}; "
                             f"now {columns(now)}): prepare it again")
