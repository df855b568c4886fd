"""A cancel that arrives while a query is still being sent to its engine, repeated until the engine has it.

Engines stop only the statement they are running: DuckDB forgets an interrupt sent to a cursor with no query
running, and PostgreSQL ignores a cancel request while the connection is idle. An execution checks "cancelled?"
before it starts its statement, but between that check and the engine beginning the statement there is a gap (on
a busy server, a thread may wait there for milliseconds). A cancel landing in the gap would be lost, and a
statement that computes its whole result before the first batch (an aggregation) would run on to the server's
time limit. So while the start is in progress, the engine's cancel is sent again every ``INTERVAL_SECONDS`` (or
the family's own interval: a MySQL-family cancel is a connection of its own).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

INTERVAL_SECONDS = 0.02


class EarlyCancel:
    """Repeats ``stop_in_engine`` after a cancel for as long as ``starting()`` is in progress.

    ``stop_in_engine`` must be safe to call at any time from another thread, and do nothing once the execution
    has let its connection or cursor go (the execution's own cancel is). It may block (a cancel request is a
    connection of its own), so it is repeated on a thread of the cancel's own, never the watchdog's, whose
    other deadlines (every query's time limit) must not wait for it.
    """

    def __init__(self, stop_in_engine: Callable[[], None], interval_seconds: float = INTERVAL_SECONDS) -> None:
        self._stop_in_engine = stop_in_engine
        self._interval = interval_seconds
        self._lock = threading.Lock()
        self._idle = threading.Event()  # set while no start is in progress
        self._idle.set()
        self._repeating = False

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """While the engine is being given the statement (and, for a blocking start, computes it)."""
        with self._lock:
            self._idle.clear()
        try:
            yield
        finally:
            with self._lock:
                self._idle.set()

    def cancelled(self) -> None:
        """The execution was cancelled (its engine told once already): tell it again while it is starting."""
        with self._lock:
            if self._idle.is_set() or self._repeating:
                return
            self._repeating = True
        threading.Thread(target=self._repeat, name="early-cancel", daemon=True).start()

    def _repeat(self) -> None:
        try:
            while not self._idle.wait(self._interval):
                self._stop_in_engine()
        finally:
            with self._lock:
                self._repeating = False
