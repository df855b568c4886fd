"""Resident memory of a process, now and at its peak while a block runs (read from ``/proc/<pid>/status``)."""

from __future__ import annotations

import os
import threading


def rss(pid: int | None = None) -> int:
    """Resident memory of process ``pid`` (this one by default) now, in bytes."""
    with open(f"/proc/{pid or os.getpid()}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """Samples a process's RSS every 20 ms while the block runs; ``growth`` is the peak over the value at entry."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid

    def __enter__(self) -> PeakRss:
        self.before = rss(self.pid)
        self.peak = self.before
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            try:
                self.peak = max(self.peak, rss(self.pid))
            except OSError:  # the process ended
                return

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        """Peak RSS over the RSS at entry, in bytes."""
        return self.peak - self.before
