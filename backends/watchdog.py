"""One thread that fires deadlines, instead of a sleeping timer thread per query."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable

log = logging.getLogger(__name__)

#: How many deadlines are scheduled between two sweeps of cancelled ones out of the heap.
_COMPACT_EVERY = 4096


class Deadline:
    """A scheduled callback; ``cancel`` makes sure it never fires."""

    __slots__ = ("when", "callback", "cancelled", "fired")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False
        #: True once the deadline passed and its callback ran (or is running).
        self.fired = False

    def cancel(self) -> None:
        """Forget the callback (and what it references) so it neither fires nor keeps objects alive."""
        self.cancelled = True
        self.callback = _noop


def _noop() -> None:
    return None


class Watchdog:
    """Runs callbacks at their deadlines on a single daemon thread."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def schedule(self, seconds: float, callback: Callable[[], None]) -> Deadline:
        """Call ``callback`` after ``seconds`` unless the returned deadline is cancelled first."""
        deadline = Deadline(time.monotonic() + seconds, callback)
        with self._cond:
            order = next(self._counter)
            if order % _COMPACT_EVERY == 0 and len(self._heap) >= _COMPACT_EVERY:
                # Cancelled deadlines leave the heap only when their time comes; a busy server cancels almost
                # all of them (queries end before their timeout), so drop them now and then.
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (deadline.when, order, deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nexus-watchdog", daemon=True)
                self._thread.start()
            if self._heap[0][2] is deadline:
                # Only an earlier deadline changes how long the thread sleeps: waking it for every query's
                # (later) timeout would cost the request path the interpreter lock each time.
                self._cond.notify()
        return deadline

    def schedule_method(self, seconds: float, method: Callable[[], None]) -> Deadline:
        """Call the bound ``method`` after ``seconds``, holding its object weakly.

        An execution's deadline must not keep the execution alive until its timeout; once the object is gone,
        the deadline does nothing.
        """
        ref = weakref.WeakMethod(method)
        return self.schedule(seconds, lambda: (bound := ref()) and bound())

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                _, _, deadline = heapq.heappop(self._heap)
            if not deadline.cancelled:
                deadline.fired = True
                try:
                    deadline.callback()
                except Exception:  # a failing callback must not stop every other deadline
                    log.exception("deadline callback failed")


WATCHDOG = Watchdog()
