"""How a served gateway ends: Ctrl-C or SIGTERM drains it, a second signal ends the process at once.

SIGHUP reloads the configuration instead (``server/app/reload.py``).

A draining gateway refuses new queries with a retryable UNAVAILABLE that names the reason, lets the running ones
finish for up to ``drain_seconds``, then cancels what is left and exits. pyarrow's own ``serve()`` is not used: it
installs C++ signal handlers that wait for every call however long it runs, and ignore a second signal. The server
already serves once constructed, so the main thread only waits for a signal here.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger("nexus_flight.lifecycle")

#: Exit status when a second signal ends the process without waiting (128 + SIGINT, as shells report it).
FORCED_EXIT = 130


class SignalWaiter:
    """Turns SIGINT and SIGTERM into an event; the second signal calls ``on_second`` (by default: exit now)."""

    def __init__(self, on_second: Callable[[], None] | None = None) -> None:
        self.stop = threading.Event()
        self.received: str | None = None
        self._on_second = on_second or _exit_now
        self._reload = threading.Event()

    def install(self) -> None:
        """Handle SIGINT, SIGTERM and SIGHUP (main thread only)."""
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGHUP, lambda signum, frame: self._reload.set())

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            print(f"{name} again: exiting now without waiting for running queries", file=sys.stderr, flush=True)
            self._on_second()
            return
        self.received = name
        self.stop.set()

    def wait(self) -> str:
        """Block until the first stopping signal or a SIGHUP; return its name."""
        while not self.stop.wait(0.2):  # a timed wait lets the signal handler run promptly
            if self._reload.is_set():
                self._reload.clear()
                return "SIGHUP"
        return self.received or "signal"


def _exit_now() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(FORCED_EXIT)


def drain(gateway, deadline_seconds: float, reason: str, say: Callable[[str], None] = print) -> int:
    """Refuse new queries, wait up to ``deadline_seconds`` for the running ones, then cancel the rest.

    Returns:
        How many queries were still running at the deadline and were cancelled.

    """
    gateway.server.begin_drain(reason)
    # A query admitted a moment ago counts although its stream is not registered yet: it is let finish too.
    running = gateway.service.in_flight_count()
    if running:
        say(f"draining: {running} running quer{'y' if running == 1 else 'ies'} may finish for up to "
            f"{deadline_seconds:g} s (drain_seconds); new queries are refused; "
            "a second Ctrl-C or SIGTERM exits at once")
    deadline = time.monotonic() + deadline_seconds
    while gateway.service.in_flight_count() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = gateway.service.cancel_all()
    if left:
        say(f"drain deadline reached: cancelled {left} running quer{'y' if left == 1 else 'ies'}")
        settle = time.monotonic() + 5
        while gateway.service.in_flight_count() and time.monotonic() < settle:
            time.sleep(0.05)
    return left
