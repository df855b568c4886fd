"""Stops engine work whose client has gone: gRPC marks the call cancelled, nobody tells the engine.

A client deadline or disconnect is only visible through the call's ``is_cancelled()`` (a Flight call context, or
anything else with that method). While DuckDB computes (an
aggregation blocks before its first batch; a sort before streaming) no Python code of ours runs for that call,
so one thread polls every running call and cancels the engine's query for those whose client is gone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Watchable(Protocol):
    """A client's call, as far as the watch is concerned."""

    def is_cancelled(self) -> bool:
        """True once the client cancelled the call or went away."""
        ...


class CancelWatch:
    """Polls registered calls; cancels the work of the ones their client cancelled."""

    def __init__(self, interval_seconds: float = 0.1) -> None:
        self._interval = interval_seconds
        self._calls: dict[int, tuple[Watchable, Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, context: Watchable, cancel: Callable[[], None]) -> Callable[[], None]:
        """Watch ``context``; returns the function that stops watching (call it before the call ends)."""
        key = id(context)
        with self._lock:
            self._calls[key] = (context, cancel)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nexus-cancel-watch", daemon=True)
                self._thread.start()

        def unwatch() -> None:
            with self._lock:
                self._calls.pop(key, None)

        return unwatch

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            with self._lock:
                gone: list[tuple[int, Callable[[], None] | None]] = []
                for key, (context, cancel) in self._calls.items():
                    try:
                        if context.is_cancelled():
                            gone.append((key, cancel))
                    except Exception:  # a finished call's context: stop watching it
                        gone.append((key, None))
                for key, _ in gone:
                    self._calls.pop(key, None)
            for _, stop in gone:
                if stop is not None:
                    try:
                        stop()
                    except Exception:
                        log.exception("cancelling an abandoned query failed")
