"""Values worked out from an object that does not change (an Arrow schema), remembered per object."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class IdentityMemo(Generic[V]):
    """Remembers ``compute(obj)`` per object and extra key, for at most ``size`` entries (then starts afresh).

    An entry holds its object, so the object's id names no other object while the entry lives. For immutable
    objects the gateway reuses (the schema a plan keeps), this spares the same work on every request.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: dict[tuple[int, Hashable], tuple[object, V]] = {}
        self._lock = threading.Lock()

    def get(self, obj: object, compute: Callable[[], V], extra: Hashable = None) -> V:
        """The value for ``obj`` (and ``extra``), computed once."""
        key = (id(obj), extra)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is obj:
            return entry[1]
        value = compute()
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries = {}
            self._entries[key] = (obj, value)
        return value
