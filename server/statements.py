"""Prepared statements and result tickets, each behind a random handle with an idle expiry.

Handles stay valid across executions (ADBC and DBeaver re-execute cached handles; flightsql-dbapi keeps using the
original handle after binding), closing is idempotent (JDBC closes unknown handles), and a ticket can be redeemed
more than once (JDBC may redeem it again on a new channel).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from backends.errors import NotFoundError
from server.routing import RoutedQuery


@dataclass
class PreparedStatement:
    """A query planned once and executed any number of times with bound parameters."""

    handle: bytes
    session_key: str
    query: RoutedQuery
    dataset_schema: pa.Schema
    parameter_schema: pa.Schema
    parameters: list[tuple[Any, ...]] | None = None
    plan_timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Ticket:
    """One executable result: the query, its bound parameters and the session it belongs to."""

    handle: bytes
    session_key: str
    user: str
    query: RoutedQuery
    schema: pa.Schema
    parameters: list[tuple[Any, ...]] | None = None
    correlation_id: str | None = None
    #: How long validating and planning took (recorded with the execution in history).
    plan_timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Entry:
    value: Any
    last_used: float = field(default_factory=time.monotonic)


class HandleStore:
    """Objects behind random handles, forgotten after ``ttl_seconds`` unused."""

    def __init__(self, kind: str, ttl_seconds: float) -> None:
        self._kind = kind
        self._ttl = ttl_seconds
        self._items: dict[bytes, _Entry] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    @staticmethod
    def new_handle() -> bytes:
        """A random, unguessable handle."""
        return secrets.token_bytes(16)

    def put(self, handle: bytes, value: Any) -> None:
        """Store ``value`` under ``handle``."""
        with self._lock:
            self._expire()
            self._items[handle] = _Entry(value)

    def get(self, handle: bytes) -> Any:
        """The object behind ``handle``.

        Raises:
            NotFoundError: unknown or expired handle.

        """
        with self._lock:
            self._expire()
            entry = self._items.get(handle)
            if entry is None:
                raise NotFoundError(f"unknown or expired {self._kind} handle")
            entry.last_used = time.monotonic()
            return entry.value

    def pop(self, handle: bytes) -> Any | None:
        """Remove and return the object behind ``handle``; None when there is none (closing is idempotent)."""
        with self._lock:
            entry = self._items.pop(handle, None)
            return entry.value if entry else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _expire(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:  # sweeping is O(n): at most once a second
            return
        self._next_sweep = now + 1.0
        for handle in [h for h, e in self._items.items() if now - e.last_used > self._ttl]:
            del self._items[handle]
