"""A pass run in a daemon thread of its own, every so often, until stopped: the catalog's background upkeep."""

from __future__ import annotations

import logging
import threading
from typing import Self

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``run_once`` at once and then every ``interval`` seconds in a daemon thread, from ``start`` to ``stop``.

    ``stopping`` is set by ``stop``: a long pass may look at it to end early. A pass that raises is logged and the
    schedule goes on.
    """

    #: The thread's name (what a thread dump or py-spy shows).
    thread_name = "periodic"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> object:
        """One pass."""
        raise NotImplementedError

    def start(self) -> Self:
        """Start the thread (once)."""
        if self._thread is None:
            self.stopping.clear()
            self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the pass under way and wait for the thread."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.run_once()
            except Exception:  # keep the schedule: one bad pass must not end the next ones
                log.exception("%s: pass failed", self.thread_name)
            self.stopping.wait(self.interval)
