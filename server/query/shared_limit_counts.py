"""Rate tokens and running slots counted in the shared catalog, so that limits hold across every replica.

A principal held to 600 queries a minute or 4 at once gets that in all, however many replicas serve it. Only
principals with a rate or concurrency limit reach this (``PrincipalLimiter`` asks nothing for the others).

- A rate token is one conditional update of the principal's bucket in the catalog (``catalog/limit_rows.py``).
- A running slot is a row with this replica's name and a lease: while its query runs, a thread of this replica
  renews its slots' leases every third of ``lease_seconds``, and the query's end deletes its row. A killed
  replica's slots stop counting within ``lease_seconds``; expired rows are purged every few minutes.
- A query waiting for a slot asks the catalog again every ``POLL_SECONDS`` (sooner when a slot of this replica is
  given back).
- When the catalog does not answer (or answers an error) the call is counted in this process for that moment: the
  rate on a bucket of this process, concurrency on the slots this replica holds (every slot is also counted here),
  with a warning at most once a minute. A slot whose row could not be deleted is deleted with the next renewal.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from nexus_flight.backends.engine_messages import first_line
from nexus_flight.server.query.limit_counts import LocalCounts, Release

log = logging.getLogger(__name__)

#: How often a query waiting for a slot asks the catalog again.
POLL_SECONDS = 0.25
#: How often expired slots and idle buckets are deleted (by a replica that counts anything).
_PURGE_SECONDS = 300.0
#: At most one warning per kind of failure in this long.
_WARN_SECONDS = 60.0


class SharedLimitRows(Protocol):
    """Where every replica's tokens and slots live (the catalog); each call raises when it cannot answer."""

    def take_token(self, key: str, per_second: float, capacity: float, now: float) -> float:
        """Take one of ``key``'s tokens: 0.0 when taken, else the seconds until the next one."""
        ...

    def hold(self, slot_id: str, key: str, source: str, replica: str, total: int | None, per_source: int | None,
             now: float, expires: float) -> str | None:
        """Record a slot unless a limit is reached: None, or the name of the limit reached."""
        ...

    def release(self, slot_ids: Iterable[str]) -> None:
        """Delete these slots."""
        ...

    def renew(self, slot_ids: Iterable[str], expires: float) -> None:
        """Extend these slots' leases."""
        ...

    def purge(self, now: float) -> None:
        """Delete expired slots and long-idle buckets."""
        ...

    def close(self) -> None:
        """Release the connections."""
        ...


def replica_name() -> str:
    """How this process is named among the replicas: host, process id and a random part (a restart is another)."""
    return f"{socket.gethostname()[:200]}:{os.getpid()}:{secrets.token_hex(4)}"


class SharedCounts:
    """``LimitCounts`` in the shared catalog, counted in this process when the catalog does not answer.

    Args:
        rows: The shared rows (``catalog/limit_rows.py``'s ``CatalogLimitRows``).
        lease_seconds: How long a slot counts without being renewed (a killed replica's slots free within this).
        clock: Seconds since the epoch, the same on every replica (their clocks kept in sync, as for tokens).
        local_clock: Seconds, monotonic, for the counts of this process.

    """

    poll_seconds = POLL_SECONDS

    def __init__(self, rows: SharedLimitRows, lease_seconds: float = 30.0, clock: Callable[[], float] = time.time,
                 local_clock: Callable[[], float] = time.monotonic) -> None:
        self.rows = rows
        self.lease_seconds = lease_seconds
        self.replica = replica_name()
        self._clock = clock
        self._local = LocalCounts(local_clock)
        self._lock = threading.Lock()
        #: slot id -> (accounting key, source) of the slots this replica holds in the catalog.
        self._held: dict[str, tuple[str, str]] = {}
        #: Slots given back whose rows could not be deleted yet.
        self._undeleted: set[str] = set()
        self._warned: dict[str, float] = {}
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._last_purge = 0.0

    # -- LimitCounts -------------------------------------------------------------------------------------------

    def take_token(self, key: str, per_second: float, capacity: float) -> float:
        """Take one of ``key``'s tokens from the catalog (from this process's bucket when it does not answer)."""
        self._start_renewer()
        try:
            return self.rows.take_token(key, per_second, capacity, self._clock())
        except Exception as exc:
            self._warn("rate", exc)
            return self._local.take_token(key, per_second, capacity)

    def hold(self, key: str, source: str, total: int | None, per_source: int | None) -> Release | str:
        """Take a slot in the catalog (counted in this process when it does not answer)."""
        self._start_renewer()
        slot_id = secrets.token_hex(16)
        now = self._clock()
        try:
            full = self.rows.hold(slot_id, key, source, self.replica, total, per_source, now, now + self.lease_seconds)
        except Exception as exc:
            self._warn("concurrency", exc)
            return self._local.hold(key, source, total, per_source)  # this replica's slots, the catalog's included
        if full is not None:
            return full
        mirrored = self._local.hold(key, source, None, None)
        assert not isinstance(mirrored, str)  # held without limits: never refused
        with self._lock:
            self._held[slot_id] = (key, source)
        return lambda: self._give_back(slot_id, mirrored)

    def running(self, key: str, source: str | None = None) -> int:
        """How many slots ``key`` holds on this replica (on ``source``, if given)."""
        return self._local.running(key, source)

    # -- slots' rows -------------------------------------------------------------------------------------------

    def _give_back(self, slot_id: str, mirrored: Release) -> None:
        mirrored()
        with self._lock:
            self._held.pop(slot_id, None)
        try:
            self.rows.release([slot_id])
        except Exception as exc:
            self._warn("release", exc)
            with self._lock:
                self._undeleted.add(slot_id)

    def _start_renewer(self) -> None:
        if self._renewer is not None:
            return
        with self._lock:
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew_loop, name="nexus-limit-leases", daemon=True)
                self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            self.renew()

    def renew(self) -> None:
        """Delete the rows of slots given back meanwhile, renew the leases of the rest, purge now and then."""
        with self._lock:
            held, undeleted = list(self._held), list(self._undeleted)
        now = self._clock()
        try:
            if undeleted:
                self.rows.release(undeleted)
                with self._lock:
                    self._undeleted.difference_update(undeleted)
            if held:
                self.rows.renew(held, now + self.lease_seconds)
            if now - self._last_purge >= _PURGE_SECONDS:
                self.rows.purge(now)
                self._last_purge = now
        except Exception as exc:
            self._warn("lease", exc)

    def close(self) -> None:
        """Stop renewing leases (slots still held expire on their own) and release the connections."""
        self._stop.set()
        self.rows.close()

    def _warn(self, what: str, exc: Exception) -> None:
        """Log that the catalog did not answer, at most once a minute for each kind of call."""
        now = time.monotonic()
        with self._lock:
            if now - self._warned.get(what, -_WARN_SECONDS) < _WARN_SECONDS:
                return
            self._warned[what] = now
        log.warning("principals' limits: the catalog did not answer (%s: %s); %s (logged at most once a minute)",
                    type(exc).__name__, first_line(exc)[:300], _FALLBACK[what])


_FALLBACK = {
    "rate": "query rates are counted in this process meanwhile",
    "concurrency": "running queries are counted in this process meanwhile",
    "release": "a finished query's slot is deleted with the next lease renewal",
    "lease": "the leases of this replica's slots were not renewed (they may expire early)",
}
