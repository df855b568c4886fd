"""The disk cap on what one query spills, held by the gateway: DuckDB's own setting does not hold it.

DuckDB takes ``max_temp_directory_size`` as a setting, yet (1.5) lets a sort or an aggregate write far past it:
a 100 MB instance capped at 50 MB spilled 425 MB sorting 8M strings. Each query instance spills to a folder of
its own, so the gateway measures that folder while the query runs (disk blocks in use, every
``INTERVAL_SECONDS``) and stops the query the first time it is over the cap. A query can pass the cap by what
it writes within one interval before it is stopped.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: How often each running query's spill folder is measured.
INTERVAL_SECONDS = 0.1


def disk_use(folder: str) -> int:
    """Bytes of disk the files under ``folder`` occupy (allocated blocks: DuckDB's temp files are sparse)."""
    total = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:  # not made yet (nothing spilled) or removed with its instance
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                total += disk_use(entry.path)
            else:
                total += entry.stat(follow_symlinks=False).st_blocks * 512
        except OSError:  # a temp file DuckDB removed meanwhile
            continue
    return total


@dataclass(eq=False)
class Watch:
    """One running query's spill folder under watch; ``stop`` ends it (idempotent)."""

    folder: str
    cap_bytes: int
    on_over: Callable[[], None]
    guard: SpillGuard
    tripped: bool = False

    def stop(self) -> None:
        """Stop measuring (the query ended)."""
        self.guard.release(self)


class SpillGuard:
    """Measures the spill folders of running queries on one thread, which runs only while there are some."""

    def __init__(self, interval: float = INTERVAL_SECONDS) -> None:
        self._interval = interval
        self._watches: set[Watch] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, folder: str, cap_bytes: int, on_over: Callable[[], None]) -> Watch:
        """Measure ``folder`` until the returned watch stops; call ``on_over`` once when it passes the cap."""
        watch = Watch(folder, cap_bytes, on_over, self)
        with self._lock:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nexus-spill-guard", daemon=True)
                self._thread.start()
        return watch

    def release(self, watch: Watch) -> None:
        """Forget ``watch`` (the thread ends once nothing is watched)."""
        with self._lock:
            self._watches.discard(watch)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._watches:
                    self._thread = None
                    return
            time.sleep(self._interval)
            with self._lock:
                watches = [w for w in self._watches if not w.tripped]
            for watch in watches:
                if disk_use(watch.folder) > watch.cap_bytes:
                    watch.tripped = True
                    watch.on_over()


#: The process's one guard.
SPILL_GUARD = SpillGuard()
