"""The gateway-wide memory budget: a query starts only when its memory limit fits in what is left.

Each query holds a ``Reservation`` of its per-query ``memory_limit`` from the moment it is admitted until its
stream ends, fails, is cancelled or is abandoned by its client (``RunningQuery.finish``). A query whose limit does
not fit waits, first come first served, in a bounded queue; a full queue or a wait past the timeout fails with a
retryable UNAVAILABLE naming the budget. The sum of the reservations never exceeds the budget, so neither does the
memory the running queries may hold.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque

from nexus_flight.core.errors import RetryLaterError


class Reservation:
    """Memory held for one query; ``release`` gives it back, once, however often it is called."""

    def __init__(self, budget: MemoryBudget | None, nbytes: int) -> None:
        self._budget = budget
        self.nbytes = nbytes

    def release(self) -> None:
        """Give the memory back to the budget (only the first call counts)."""
        budget, self._budget = self._budget, None
        if budget is not None:
            budget._give_back(self.nbytes)


class MemoryBudget:
    """Admission by memory: reservations of per-query limits within a total.

    Args:
        total_bytes: The budget; None admits every query at once (reservations are still counted).
        queue_size: Most queries waiting for room at once; one more is refused at once.
        timeout_seconds: How long a query waits for room before it is refused.

    """

    def __init__(self, total_bytes: int | None, queue_size: int = 64, timeout_seconds: float = 30.0) -> None:
        self.total = total_bytes
        self.queue_size = queue_size
        self.timeout_seconds = timeout_seconds
        self._used = 0
        self._cond = threading.Condition()
        self._queue: deque[int] = deque()
        self._tickets = itertools.count()

    @property
    def used(self) -> int:
        """Bytes reserved by running queries."""
        return self._used

    @property
    def queued(self) -> int:
        """Queries waiting for room."""
        return len(self._queue)

    def admit(self, nbytes: int, source: str | None = None) -> Reservation:
        """Reserve ``nbytes`` for one query, waiting in the queue for room if needed.

        A limit larger than the whole budget is held to the budget: such a query runs alone.

        Raises:
            RetryLaterError: the queue is full, or no room was made within the timeout (UNAVAILABLE).

        """
        with self._cond:
            if self.total is None:
                self._used += nbytes
                return Reservation(self, nbytes)
            nbytes = min(nbytes, self.total)
            if not self._queue and self._used + nbytes <= self.total:
                self._used += nbytes
                return Reservation(self, nbytes)
            if len(self._queue) >= self.queue_size:
                raise self._refusal(nbytes, source, f"{len(self._queue)} queries already wait for memory "
                                    f"(admission_queue_size={self.queue_size})")
            ticket = next(self._tickets)
            self._queue.append(ticket)
            deadline = time.monotonic() + self.timeout_seconds
            try:
                while self._queue[0] != ticket or self._used + nbytes > self.total:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise self._refusal(nbytes, source, f"no room was made within {self.timeout_seconds:g} s "
                                            f"(admission_timeout_seconds={self.timeout_seconds:g})")
                    self._cond.wait(remaining)
                self._used += nbytes
                return Reservation(self, nbytes)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may fit now

    def _give_back(self, nbytes: int) -> None:
        with self._cond:
            self._used -= nbytes
            self._cond.notify_all()

    def _refusal(self, nbytes: int, source: str | None, why: str) -> RetryLaterError:
        total = self.total or 0
        return RetryLaterError(
            f"the gateway's memory budget is in use: this query's memory limit ({_mb(nbytes)}) does not fit in "
            f"what is left of memory_budget={_mb(total)} ({_mb(total - self._used)} free), and {why}; retry "
            "later, or lower the query's memory_limit",
            retry_after_seconds=1.0, source=source,
        )


def _mb(nbytes: int) -> str:
    return f"{nbytes / 2**20:.0f} MiB"
