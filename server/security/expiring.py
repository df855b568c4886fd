"""A map whose entries leave once they expire, swept now and then at O(1) amortized cost per call.

Entries expire at their own times (tokens of different lifetimes), so no order tells which expire first without
a heap. Instead the whole map is swept once as many calls have passed as it held after the last sweep: a sweep
of n entries is paid by the n calls before it, and an expired entry stays at most that many calls. ``cap`` bounds
it between sweeps, whatever a flood sends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: The fewest calls between two sweeps (a small map is not swept on every call).
_MIN_CALLS_BETWEEN_SWEEPS = 256


class ExpiringMap(Generic[K, V]):
    """Values by key until ``expires_at(value)`` (the clock's seconds) has passed.

    Lock-free like the dict it wraps: a sweep builds a new dict and swaps it in, so a reader never sees one half
    swept; an entry written during a sweep may be lost, which a cache can afford.
    """

    def __init__(self, expires_at: Callable[[V], float], cap: int, clock: Callable[[], float] = time.time) -> None:
        self._expires_at = expires_at
        self._cap = cap
        self._clock = clock
        self._items: dict[K, V] = {}
        self._calls_left = _MIN_CALLS_BETWEEN_SWEEPS

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        """The live value of ``key`` (None when absent or expired)."""
        now = self._tick()
        value = self._items.get(key)
        return value if value is not None and self._expires_at(value) > now else None

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` until it expires."""
        now = self._tick()
        if len(self._items) >= self._cap:
            self._sweep(now)
            if len(self._items) >= self._cap:  # a flood of live entries: start again rather than grow
                self._items = {}
        self._items[key] = value

    def _tick(self) -> float:
        now = self._clock()
        self._calls_left -= 1
        if self._calls_left <= 0:
            self._sweep(now)
        return now

    def _sweep(self, now: float) -> None:
        self._items = {k: v for k, v in list(self._items.items()) if self._expires_at(v) > now}
        self._calls_left = max(_MIN_CALLS_BETWEEN_SWEEPS, len(self._items))
