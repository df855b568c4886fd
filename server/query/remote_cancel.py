"""Cancels between replicas: a cancel sent to one replica for a query another one runs stops it there.

The replica that receives a cancel for a query it does not run writes a request to the shared catalog
(``catalog/cancel_requests.py``, keyed by SHA-256 of the query's ticket) and waits a little for an answer. Each
replica, while it runs queries, reads the pending requests every ``POLL_SECONDS``, stops the queries named there and
answers; an idle replica reads nothing. No answer within ``ANSWER_SECONDS`` means no replica was running it.
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
#: Requests older than this are not acted on (a query started later with the same ticket runs).
_FRESH = timedelta(seconds=30)


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
        self._thread = threading.Thread(target=self._run, name="nexus-remote-cancel", daemon=True)
        self._thread.start()

    def ask(self, keys: Iterable[bytes], wait_seconds: float = ANSWER_SECONDS) -> bool:
        """Ask the other replicas to stop the queries of ``keys``; True when one of them did."""
        hashes = {key_hash(key) for key in keys}
        if not hashes:
            return False
        self._shared.request(hashes)
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            time.sleep(POLL_SECONDS / 2)
            if self._shared.cancelled(hashes):
                return True
        return False

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
