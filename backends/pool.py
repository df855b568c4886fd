"""A bounded, thread-safe pool of driver connections, shared by every family that keeps connections open.

The ADBC families pool DB-API connections, ClickHouse pools clickhouse-connect HTTP clients: anything with a
``close()`` works. Connections are opened lazily, pre-pinged when idle, reset before reuse and retired by age.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nexus_flight.core.errors import (
    BackendUnavailableError,
    InvalidQueryError,
    ReadOnlyViolationError,
    UnsupportedError,
)

#: Errors after which the connection is still good: the statement failed, the session did not.
STATEMENT_ERRORS = (InvalidQueryError, ReadOnlyViolationError, UnsupportedError)


class PoolBusyError(BackendUnavailableError):
    """Every connection of the pool is lent out: the source is busy, not away (the client retries later)."""


@dataclass
class _Pooled:
    connection: Any
    created: float
    last_used: float = field(default_factory=time.monotonic)


class ConnectionPool:
    """A thread-safe, bounded pool of DB-API connections for one source.

    Connections are opened lazily, reset with ``reset`` when they come back, checked with ``ping`` when
    idle longer than ``recycle_seconds`` (pre-ping), and closed once older than ``max_lifetime_seconds``.
    Borrowers wait up to ``acquire_timeout_seconds`` for a free connection when ``size`` are in use.
    """

    def __init__(
        self,
        source: str,
        connect: Callable[[], Any],
        *,
        size: int = 8,
        pre_ping: bool = True,
        recycle_seconds: float = 300.0,
        max_lifetime_seconds: float = 3600.0,
        acquire_timeout_seconds: float = 30.0,
        ping: Callable[[Any], None] | None = None,
        reset: Callable[[Any], None] | None = None,
    ) -> None:
        self._source = source
        self._connect = connect
        self._size = size
        self._pre_ping = pre_ping
        self._recycle = recycle_seconds
        self._max_lifetime = max_lifetime_seconds
        self._acquire_timeout = acquire_timeout_seconds
        self._ping = ping
        self._reset = reset
        self._idle: list[_Pooled] = []
        self._in_use = 0
        self._cond = threading.Condition()
        self._closed = False

    @property
    def in_use(self) -> int:
        """Connections currently lent out."""
        return self._in_use

    @property
    def idle(self) -> int:
        """Open connections waiting in the pool."""
        return len(self._idle)

    def acquire(self) -> _Pooled:
        """Borrow a connection, opening one if the pool is not full.

        Raises:
            BackendUnavailableError: no connection became free in time, or the source cannot be reached.

        """
        deadline = time.monotonic() + self._acquire_timeout
        with self._cond:
            while True:
                if self._closed:
                    raise BackendUnavailableError("the source is closed", source=self._source)
                if self._idle:
                    item = self._idle.pop()
                    self._in_use += 1
                    break
                if self._in_use < self._size:
                    self._in_use += 1
                    item = None
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PoolBusyError(
                        f"all {self._size} connections of the pool are busy "
                        f"(pool_size={self._size}, waited {self._acquire_timeout:g} s)",
                        source=self._source,
                    )
                self._cond.wait(remaining)
        try:
            return self._checked(item)
        except BaseException:
            with self._cond:
                self._in_use -= 1
                self._cond.notify()
            raise

    def _checked(self, item: _Pooled | None) -> _Pooled:
        now = time.monotonic()
        if item is not None and now - item.created > self._max_lifetime:
            close_quietly(item.connection)
            item = None
        if item is not None and self._pre_ping and self._ping and now - item.last_used > self._recycle:
            try:
                self._ping(item.connection)
            except Exception:
                # The server restarted or dropped us: open a fresh connection instead.
                close_quietly(item.connection)
                item = None
        if item is None:
            item = _Pooled(self._connect(), created=time.monotonic())
        return item

    def release(self, item: _Pooled, healthy: bool = True) -> None:
        """Give a connection back; an unhealthy one (cancelled, failed) is closed instead of reused.

        A healthy one is first reset (``reset``), so nothing a statement changed in the session (settings it
        switched off, say) reaches the next borrower; a connection that cannot be reset is closed.
        """
        item.last_used = time.monotonic()
        if healthy and self._reset is not None:
            try:
                self._reset(item.connection)
            except Exception:
                healthy = False
        with self._cond:
            if healthy and not self._closed:
                self._in_use -= 1
                self._idle.append(item)
                self._cond.notify()
                return
        # Closed before its slot is given back: a borrower waiting for the slot opens a new connection only
        # once this one is gone, so the source never sees more connections than the pool's size.
        close_quietly(item.connection)
        with self._cond:
            self._in_use -= 1
            self._cond.notify()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """Borrow a connection for a short metadata call; a failure discards it."""
        item = self.acquire()
        healthy = False
        try:
            yield item.connection
            healthy = True
        except STATEMENT_ERRORS:
            healthy = True
            raise
        finally:
            self.release(item, healthy)

    def close(self) -> None:
        """Close idle connections; lent ones are closed when they come back."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for item in idle:
            close_quietly(item.connection)


def close_quietly(connection: Any) -> None:
    """Close a connection (or cursor), ignoring whatever closing it raises."""
    with contextlib.suppress(Exception):
        connection.close()
