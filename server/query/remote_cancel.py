"""Cancels between replicas: a cancel sent to one replica for a query another one runs stops it there.

The replica that receives a cancel for a query it does not run writes a request to the shared catalog
(``catalog/cancel_requests.py``, keyed by SHA-256 of the query's ticket) and waits a little for an answer. Each
replica, while it runs queries, reads the pending requests every ``POLL_SECONDS``, stops the queries named there and
answers; an idle replica reads nothing. A query that already ended is known from the shared history (each run
records its ticket's hash), and the cancel is answered as soon as that is seen. No answer within
``ANSWER_SECONDS`` means no replica runs it yet: the request stays, and a replica about to start that ticket's query
within ``REMEMBER`` refuses it as cancelled (``refused_before_start``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Protocol

log = logging.getLogger(__name__)

#: How often a replica that runs queries looks for cancels sent to other replicas.
POLL_SECONDS = 0.25
#: How long the replica that received a cancel waits for the one running the query to answer.
ANSWER_SECONDS = 2.0
#: Requests older than this do not stop a running query (one started later with the same ticket runs).
_FRESH = timedelta(seconds=30)
#: How long a cancel sent before the query started refuses its start (the catalog keeps requests this long).
REMEMBER = timedelta(minutes=5)


class SharedCancels(Protocol):
    """Where cancel requests live for every replica (the catalog)."""

    def request(self, key_hashes: Iterable[str]) -> None:
        """Ask every replica to stop the queries of ``key_hashes``."""
        ...

    def pending(self, within: timedelta) -> set[str]:
        """The requests of the last ``within`` no replica has answered."""
        ...

    def answer(self, key_hash: str) -> None:
        """Say the query of ``key_hash`` was stopped."""
        ...

    def cancelled(self, key_hashes: Iterable[str]) -> bool:
        """Whether a replica stopped any of the queries of ``key_hashes``."""
        ...

    def requested(self, key_hash: str, within: timedelta) -> bool:
        """Whether the query of ``key_hash`` was asked to stop within ``within`` (answered or not)."""
        ...

    def requested_within(self, within: timedelta) -> set[str]:
        """The queries asked to stop within ``within`` (answered or not)."""
        ...

    def withdraw(self, key_hashes: Iterable[str]) -> None:
        """Forget the unanswered requests of ``key_hashes``."""
        ...

    def ended(self, key_hashes: Iterable[str]) -> bool:
        """Whether a query of ``key_hashes`` ran to its end on some replica."""
        ...


def key_hash(key: bytes) -> str:
    """How a query's ticket is named in the shared catalog."""
    return hashlib.sha256(key).hexdigest()


class RemoteCancel:
    """Carries cancels between this replica and the others.

    Args:
        shared: The shared requests.
        running_keys: The keys of the queries this replica runs now.
        cancel: Stops this replica's queries of a key; True when one ran.

    """

    def __init__(self, shared: SharedCancels, running_keys: Callable[[], list[bytes]],
                 cancel: Callable[[bytes], bool]) -> None:
        self._shared = shared
        self._running_keys = running_keys
        self._cancel = cancel
        #: The requests of the last ``REMEMBER``, read at most every ``POLL_SECONDS`` (not once per query start).
        self._recent: frozenset[str] = frozenset()
        self._recent_at = float("-inf")
        self._recent_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="nexus-remote-cancel", daemon=True)
        self._thread.start()

    def ask(self, keys: Iterable[bytes], wait_seconds: float = ANSWER_SECONDS) -> bool:
        """Ask the other replicas to stop the queries of ``keys``; False when they had already ended.

        True when a replica stopped one, or when none answered within ``wait_seconds``: no replica runs it yet,
        and the remembered request refuses its start (``refused_before_start``).
        """
        hashes = {key_hash(key) for key in keys}
        if not hashes:
            return False
        self._shared.request(hashes)
        deadline = time.monotonic() + wait_seconds
        while True:
            if self._shared.cancelled(hashes):
                return True
            if self._shared.ended(hashes):
                self._shared.withdraw(hashes)  # nothing to stop: a later run of the ticket is not refused
                return False
            if time.monotonic() >= deadline:
                return True
            time.sleep(POLL_SECONDS / 2)

    def refused_before_start(self, key: bytes) -> bool:
        """Whether a cancel of ``key`` came before its query started here (the request is then answered).

        The requests are read at most every ``POLL_SECONDS``, so a query start costs no catalog read; a request
        newer than that read reaches the query once it runs (``serve_once``), and a hit is confirmed first.
        """
        name = key_hash(key)
        if name not in self._recently_requested() or not self._shared.requested(name, REMEMBER):
            return False
        self._shared.answer(name)
        return True

    def _recently_requested(self) -> frozenset[str]:
        with self._recent_lock:
            if time.monotonic() - self._recent_at >= POLL_SECONDS:
                self._recent = frozenset(self._shared.requested_within(REMEMBER))
                self._recent_at = time.monotonic()
            return self._recent

    def _run(self) -> None:
        while True:
            time.sleep(POLL_SECONDS)
            keys = self._running_keys()
            if not keys:
                continue
            try:
                self.serve_once(keys)
            except Exception:  # the catalog may be away for a moment: the next round tries again
                log.warning("reading cancel requests from the catalog failed", exc_info=True)

    def serve_once(self, keys: list[bytes]) -> None:
        """Stop the queries of ``keys`` other replicas were asked to cancel, and answer for each."""
        pending = self._shared.pending(_FRESH)
        for key in keys:
            name = key_hash(key)
            if name in pending and self._cancel(key):
                self._shared.answer(name)
