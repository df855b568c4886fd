"""A bounded, thread-safe LRU for what the validator and the router work out once per statement."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from nexus_flight.server.query.sql.refusal import Refusal

V = TypeVar("V")


class LRU(Generic[V]):
    """A bounded, thread-safe LRU of analyses and refusals (refusals are rebuilt per hit: errors are mutable).

    Bounded by entries and by the total length of the SQL texts held, so that many distinct long queries
    cannot fill memory with their trees; a text longer than a tenth of the budget is not cached at all.
    """

    def __init__(self, entries: int, chars: int) -> None:
        self._entries = entries
        self._chars = chars
        self._held = 0
        self._data: OrderedDict[Hashable, tuple[V | Refusal, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: Hashable, weight: int, compute: Callable[[], V]) -> V:
        """Return the value cached under ``key``, else ``compute()``'s, kept unless ``weight`` is too big.

        A ``Refusal`` that ``compute`` raises is cached too, and raised as its error on every hit.
        """
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
        value: V | Refusal
        if hit is not None:
            value = hit[0]
        else:
            try:
                value = compute()
            except Refusal as refusal:
                value = refusal.detached()  # kept without the stack it was raised from
            if weight * 10 <= self._chars:
                self._store(key, value, weight)
        if isinstance(value, Refusal):
            raise value.to_error()
        return value

    def _store(self, key: Hashable, value: V | Refusal, weight: int) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._held -= old[1]
            self._data[key] = (value, weight)
            self._held += weight
            while len(self._data) > self._entries or self._held > self._chars:
                _, (_, dropped) = self._data.popitem(last=False)
                self._held -= dropped

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._data.clear()
            self._held = 0
