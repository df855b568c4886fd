"""What principals' rate and concurrency limits count: rate tokens, prepaid credits, running and waiting queries.

``PrincipalLimiter`` (``principal_limits.py``) decides what to admit; a ``LimitCounts`` keeps the counts it
decides on. ``LocalCounts`` keeps them in this process (a gateway alone, ``limit_counts = "process"``, in-process
tests); ``SharedCounts`` (``shared_limit_counts.py``) keeps them in the catalog, so that every replica sharing it
counts the same budget.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

#: Gives a running slot back (the limiter calls it exactly once).
Release = Callable[[], None]

#: The names of the concurrency limits ``hold`` may report as reached.
TOTAL, PER_SOURCE = "max_concurrent_queries", "max_concurrent_queries_per_source"

#: Buckets kept before full (idle) ones are forgotten.
_MAX_BUCKETS = 50_000
#: Prepaid credits kept (planned queries not run yet).
_MAX_PREPAID = 100_000


class LimitCounts(Protocol):
    """Rate tokens and running slots per accounting key, wherever they are kept."""

    #: How often a query waiting for a slot asks again (a slot given back in this process wakes it sooner).
    poll_seconds: float

    def take_token(self, key: str, per_second: float, capacity: float) -> float:
        """Take one of ``key``'s rate tokens: 0.0 when taken, else the seconds until the next one (none is taken)."""
        ...

    def hold(self, key: str, source: str, total: int | None, per_source: int | None) -> Release | str:
        """Take a running slot of ``key`` on ``source`` unless it holds ``total`` (``per_source`` there) already.

        Returns:
            What gives the slot back, or the name of the limit reached (``TOTAL`` or ``PER_SOURCE``).

        """
        ...

    def running(self, key: str, source: str | None = None) -> int:
        """How many slots ``key`` holds in this process (on ``source``, if given)."""
        ...

    def prepay(self, credit: str, runs: int, until: float) -> None:
        """Note that ``credit`` (a token already taken) pays for ``runs`` runs until ``until`` (epoch seconds)."""
        ...

    def spend(self, credit: str, until: float) -> bool:
        """Spend one run of ``credit``, or of its part ``credit/i`` (one endpoint of a split result).

        Returns:
            Whether a run was left to spend (False: the run pays a token of its own).

        """
        ...

    def wait(self, key: str, most: int) -> Release | None:
        """Count a query of ``key`` waiting for a slot, unless ``most`` of its queries wait already.

        Returns:
            What ends the wait (called exactly once), or None when the queue is full.

        """
        ...


@dataclasses.dataclass
class _Bucket:
    tokens: float
    updated: float
    per_second: float
    capacity: float

    def refill(self, now: float, per_second: float, capacity: float) -> None:
        self.tokens = min(capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated, self.per_second, self.capacity = now, per_second, capacity
        self.tokens = min(self.tokens, capacity)  # a lowered burst applies at once


class LocalCounts:
    """``LimitCounts`` in this process's memory; the lock is held only for a few arithmetic operations.

    Args:
        clock: Seconds, monotonic (tests pass their own).

    """

    poll_seconds = 0.1

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._running: dict[str, int] = {}
        self._running_on: dict[tuple[str, str], int] = {}
        self._waiting: dict[str, int] = {}
        #: credit -> (runs it still pays for, until when in epoch seconds)
        self._prepaid: dict[str, tuple[int, float]] = {}

    def take_token(self, key: str, per_second: float, capacity: float) -> float:
        """Take one of ``key``'s rate tokens: 0.0 when taken, else the seconds until the next one (none is taken)."""
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= _MAX_BUCKETS:
                    self._forget_full_buckets(now)
                bucket = self._buckets[key] = _Bucket(capacity, now, per_second, capacity)
            bucket.refill(now, per_second, capacity)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / per_second

    def _forget_full_buckets(self, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * bucket.per_second >= bucket.capacity:
                del self._buckets[key]
        if len(self._buckets) >= _MAX_BUCKETS:  # a flood of distinct busy principals: start them afresh
            self._buckets.clear()

    def hold(self, key: str, source: str, total: int | None, per_source: int | None) -> Release | str:
        """Take a running slot of ``key`` on ``source`` unless a limit is reached (None: no limit)."""
        where = (key, source)
        with self._lock:
            if total is not None and self._running.get(key, 0) >= total:
                return TOTAL
            if per_source is not None and self._running_on.get(where, 0) >= per_source:
                return PER_SOURCE
            self._running[key] = self._running.get(key, 0) + 1
            self._running_on[where] = self._running_on.get(where, 0) + 1
        return lambda: self._give_back(key, where)

    def _give_back(self, key: str, where: tuple[str, str]) -> None:
        with self._lock:
            _decrement(self._running, key)
            _decrement(self._running_on, where)

    def running(self, key: str, source: str | None = None) -> int:
        """How many slots ``key`` holds (on ``source``, if given)."""
        with self._lock:
            return self._running_on.get((key, source), 0) if source else self._running.get(key, 0)

    def prepay(self, credit: str, runs: int, until: float) -> None:
        """Keep ``credit`` for ``runs`` runs (the endpoints of a split result share it) until ``until``."""
        with self._lock:
            if len(self._prepaid) >= _MAX_PREPAID and credit not in self._prepaid:
                now = time.time()
                self._prepaid = {k: v for k, v in self._prepaid.items() if v[1] > now}
                if len(self._prepaid) >= _MAX_PREPAID:
                    self._prepaid.clear()  # credits lost: their runs pay again, never run unpaid
            self._prepaid[credit] = (max(1, runs), until)

    def spend(self, credit: str, until: float) -> bool:
        """Spend one run of ``credit`` (a part ``credit/i`` spends one of the credit's runs)."""
        base = credit.partition("/")[0]
        with self._lock:
            found = self._prepaid.pop(base, None)
            if found is None or found[1] <= time.time():
                return False
            if found[0] > 1:
                self._prepaid[base] = (found[0] - 1, found[1])
            return True

    def wait(self, key: str, most: int) -> Release | None:
        """Count a waiting query of ``key`` unless ``most`` wait already."""
        with self._lock:
            if self._waiting.get(key, 0) >= most:
                return None
            self._waiting[key] = self._waiting.get(key, 0) + 1
        return lambda: self._stop_waiting(key)

    def _stop_waiting(self, key: str) -> None:
        with self._lock:
            _decrement(self._waiting, key)


def _decrement(counts: dict[Any, int], name: Any) -> None:
    """One fewer of ``name``; a count that reaches zero is dropped (the maps hold running principals only)."""
    left = counts.get(name, 0) - 1
    if left > 0:
        counts[name] = left
    else:
        counts.pop(name, None)
