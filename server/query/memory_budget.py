"""The gateway-wide memory budget: a query starts only when its memory limit fits in what is left.

Each query holds a ``Reservation`` of its per-query ``memory_limit`` from the moment it is admitted until its
stream ends, fails, is cancelled or is abandoned by its client (``RunningQuery.finish``). A query whose limit does
not fit waits, first come first served, in a bounded queue; a full queue or a wait past the timeout fails with a
retryable UNAVAILABLE naming the budget, and a waiting query whose client cancels it (or goes away, or whose
gateway drains) leaves the queue at once. Memory kept between queries (idle DuckDB instances: ``IdleMemory``)
counts too: once a query is admitted, idle memory is trimmed until reservations and idle memory together fit, so
neither ever exceeds the budget.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from nexus_flight.core.errors import GatewayError, RetryLaterError

#: How often a waiting query looks at whether it should stop waiting (a cancel also wakes it at once).
_POLL_SECONDS = 0.1


class IdleMemory(Protocol):
    """Memory the process keeps between queries (idle engine instances), and the means to give it back."""

    def held(self) -> int:
        """Bytes held now."""
        ...

    def most(self) -> int:
        """The most that can be held now, known without asking the engines (``held`` may ask them)."""
        ...

    def trim(self, nbytes: int) -> int:
        """Let go of at least ``nbytes`` if that much is held (what cannot be let go stays); return bytes freed."""
        ...


class _NoIdleMemory:
    def held(self) -> int:
        return 0

    def most(self) -> int:
        return 0

    def trim(self, nbytes: int) -> int:
        return 0


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
        idle: Memory kept between queries, trimmed to make room (none by default).

    """

    def __init__(self, total_bytes: int | None, queue_size: int = 64, timeout_seconds: float = 30.0,
                 idle: IdleMemory | None = None) -> None:
        self.total = total_bytes
        self.queue_size = queue_size
        self.timeout_seconds = timeout_seconds
        self.idle_memory: IdleMemory = idle or _NoIdleMemory()
        self._used = 0
        self._cond = threading.Condition()
        self._queue: deque[int] = deque()
        self._tickets = itertools.count()

    @property
    def used(self) -> int:
        """Bytes reserved by running queries."""
        return self._used

    @property
    def idle(self) -> int:
        """Bytes kept between queries (idle engine instances)."""
        return self.idle_memory.held()

    @property
    def queued(self) -> int:
        """Queries waiting for room."""
        return len(self._queue)

    def resize(self, total_bytes: int | None, queue_size: int, timeout_seconds: float) -> None:
        """Take new settings (a reload): waiting queries are judged by them at once, running ones keep theirs."""
        with self._cond:
            self.total = total_bytes
            self.queue_size = queue_size
            self.timeout_seconds = timeout_seconds
            self._cond.notify_all()
        self.settle()

    def admit(self, nbytes: int, source: str | None = None,
              stop: Callable[[], GatewayError | None] | None = None) -> Reservation:
        """Reserve ``nbytes`` for one query, waiting in the queue for room if needed.

        A limit larger than the whole budget is held to the budget: such a query runs alone.

        Args:
            nbytes: The query's memory limit.
            source: Named in a refusal.
            stop: Why the query should stop waiting (a cancel, its client gone, a drain), or None to go on;
                ``wake`` makes a waiting query ask at once.

        Raises:
            RetryLaterError: the queue is full, or no room was made within the timeout (UNAVAILABLE).
            GatewayError: what ``stop`` returned.

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
            started = time.monotonic()
            try:
                while True:
                    stopped = stop() if stop is not None else None
                    if stopped is not None:
                        raise stopped
                    if self.total is None or (self._queue[0] == ticket and self._used + nbytes <= self.total):
                        break
                    remaining = started + self.timeout_seconds - time.monotonic()
                    if remaining <= 0:
                        raise self._refusal(nbytes, source, f"no room was made within {self.timeout_seconds:g} s "
                                            f"(admission_timeout_seconds={self.timeout_seconds:g})")
                    self._cond.wait(min(remaining, _POLL_SECONDS) if stop is not None else remaining)
                self._used += nbytes
                return Reservation(self, nbytes)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may fit now

    def wake(self) -> None:
        """Make every waiting query look at once whether it should stop waiting."""
        with self._cond:
            self._cond.notify_all()

    def settle(self) -> None:
        """Trim idle memory until reservations and idle memory together fit in the budget."""
        with self._cond:
            if self.total is None:
                return
            if self._used + self.idle_memory.most() <= self.total:
                return  # fits even at the most idle instances could hold: no engine is asked
            excess = self._used + self.idle_memory.held() - self.total
            if excess > 0:
                self.idle_memory.trim(excess)

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
