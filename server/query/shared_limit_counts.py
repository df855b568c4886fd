"""Rate tokens, running and waiting queries and prepaid credits counted in the shared catalog, across replicas.

A principal held to 600 queries a minute or 4 at once gets that in all, however many replicas serve it. Only
principals with a rate or concurrency limit reach this (``PrincipalLimiter`` asks nothing for the others).

- A rate token is one conditional update of the principal's bucket in the catalog (``catalog/limit_rows.py``).
- A running slot is a row with this replica's name and a lease: while its query runs, a thread of this replica
  renews its slots' leases every third of ``lease_seconds``, and the query's end deletes its row. A killed
  replica's slots stop counting within ``lease_seconds``; expired rows are purged every few minutes.
- A query waiting for a slot is a row too (leased and renewed the same way), inserted only while fewer of the
  principal's queries wait than the limit reached: the queue's cap holds across replicas. It asks the catalog for
  a slot again every ``POLL_SECONDS`` (sooner when a slot of this replica is given back).
- A prepaid credit (the token a query's planning took) needs nothing at planning: the ticket carries it, and its
  run spends it by recording it in the catalog, which only the first run of it anywhere manages (the replica that
  planned it also keeps it until then, for when the catalog does not answer).
- When the catalog does not answer (or answers an error) the call is counted in this process for that moment: the
  rate on a bucket of this process, concurrency on the slots this replica holds (every slot is also counted here),
  the queue on this replica's waiting queries (each also counted here), a credit on this replica's own credits (a
  run elsewhere pays a token). A warning is logged at most once a minute. A row that could not be deleted is
  deleted with the next renewal.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from nexus_flight.backends.engine_messages import first_line
from nexus_flight.core.throttled_log import ThrottledLog
from nexus_flight.server.query.limit_counts import LocalCounts, Release

log = logging.getLogger(__name__)

#: How often a query waiting for a slot asks the catalog again.
POLL_SECONDS = 0.25
#: How often expired slots and idle buckets are deleted (by a replica that counts anything).
_PURGE_SECONDS = 300.0
#: At most one warning per kind of failure in this long.


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

    def renew(self, slot_ids: Iterable[str], expires: float, queued_ids: Iterable[str] = ()) -> None:
        """Extend these slots' and waiting queries' leases."""
        ...

    def queue(self, entry_id: str, key: str, replica: str, most: int, now: float, expires: float) -> bool:
        """Record a waiting query unless ``most`` of ``key``'s wait already: whether it was recorded."""
        ...

    def dequeue(self, entry_ids: Iterable[str]) -> None:
        """Delete these waiting queries."""
        ...

    def spend(self, credit: str, expires: float, now: float) -> bool:
        """Spend ``credit``'s run: True only the first time, on any replica."""
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
        #: entry id -> accounting key of this replica's waiting queries in the catalog.
        self._queued: dict[str, str] = {}
        #: Slots given back, and waits ended, whose rows could not be deleted yet.
        self._undeleted: set[str] = set()
        self._unqueued: set[str] = set()
        self._warnings = ThrottledLog(log)
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
        return lambda: self._delete(slot_id, mirrored, self._held, self.rows.release, self._undeleted)

    def running(self, key: str, source: str | None = None) -> int:
        """How many slots ``key`` holds on this replica (on ``source``, if given)."""
        return self._local.running(key, source)

    def prepay(self, credit: str, runs: int, until: float) -> None:
        """Note the credit in this process too: its runs here are spent here while the catalog does not answer."""
        self._local.prepay(credit, runs, until)

    def spend(self, credit: str, until: float) -> bool:
        """Spend ``credit``'s run in the catalog (in this process when it does not answer)."""
        try:
            spent = self.rows.spend(credit, until, self._clock())
        except Exception as exc:
            self._warn("credit", exc)
            return self._local.spend(credit, until)
        self._local.spend(credit, until)  # forgotten here too (a credit of another replica is not here at all)
        return spent

    def wait(self, key: str, most: int) -> Release | None:
        """Count a waiting query of ``key`` in the catalog (in this process when it does not answer)."""
        self._start_renewer()
        entry_id = secrets.token_hex(16)
        now = self._clock()
        try:
            queued = self.rows.queue(entry_id, key, self.replica, most, now, now + self.lease_seconds)
        except Exception as exc:
            self._warn("queue", exc)
            return self._local.wait(key, most)  # this replica's waiting queries, the catalog's included
        if not queued:
            return None
        mirrored = self._local.wait(key, 1 << 30)
        assert mirrored is not None  # no cap: never refused
        with self._lock:
            self._queued[entry_id] = key
        return lambda: self._delete(entry_id, mirrored, self._queued, self.rows.dequeue, self._unqueued)

    # -- slots' rows -------------------------------------------------------------------------------------------

    def _delete(self, row_id: str, mirrored: Release, renewed: dict[str, Any],
                delete: Callable[[Iterable[str]], None], undeleted: set[str]) -> None:
        """End a slot or a wait: here, then its row (left to the next renewal when the catalog does not answer)."""
        mirrored()
        with self._lock:
            renewed.pop(row_id, None)
        try:
            delete([row_id])
        except Exception as exc:
            self._warn("release", exc)
            with self._lock:
                undeleted.add(row_id)

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
        """Delete the rows of slots given back and waits ended meanwhile, renew the leases of the rest, purge."""
        with self._lock:
            held, queued = list(self._held), list(self._queued)
        now = self._clock()
        try:
            self._delete_left(self._undeleted, self.rows.release)
            self._delete_left(self._unqueued, self.rows.dequeue)
            if held or queued:
                self.rows.renew(held, now + self.lease_seconds, queued)
            if now - self._last_purge >= _PURGE_SECONDS:
                self.rows.purge(now)
                self._last_purge = now
        except Exception as exc:
            self._warn("lease", exc)

    def _delete_left(self, left: set[str], delete: Callable[[Iterable[str]], None]) -> None:
        """Delete the rows ``_delete`` could not (``left``), and forget them once deleted."""
        with self._lock:
            ids = list(left)
        if ids:
            delete(ids)
            with self._lock:
                left.difference_update(ids)

    def close(self) -> None:
        """Stop renewing leases (slots still held expire on their own) and release the connections."""
        self._stop.set()
        self.rows.close()

    def _warn(self, what: str, exc: Exception) -> None:
        """Log that the catalog did not answer, at most once a minute for each kind of call."""
        self._warnings.warning(what, "principals' limits: the catalog did not answer (%s: %s); %s",
                               type(exc).__name__, first_line(exc)[:300], _FALLBACK[what])


_FALLBACK = {
    "rate": "query rates are counted in this process meanwhile",
    "concurrency": "running queries are counted in this process meanwhile",
    "queue": "queries waiting for a slot are counted in this process meanwhile",
    "credit": "planned queries' credits are spent in this process meanwhile (a run on another replica pays)",
    "release": "a finished query's slot (or ended wait) is deleted with the next lease renewal",
    "lease": "the leases of this replica's slots were not renewed (they may expire early)",
}
