"""Where this process's DuckDB query instances keep their files, and removing what a killed gateway left.

A query instance writes its empty base database and, when memory runs short, its spill files (up to the disk cap,
10 GB by default) into a folder of its own, removed when the instance closes. A gateway that never closes its
instances — killed by the kernel's OOM killer, ``kill -9``, a node that lost power — left every folder behind, and
nothing ever removed them: each crash could leave gigabytes, and the next start added more beside them.

So each process keeps its instances' folders under one folder of its own per spill root, holding an exclusive
``flock`` on a lock file inside it for as long as it lives. The first instance a process opens under a root
removes the folders of processes that no longer hold their lock (the kernel drops a lock with its process, however
it died); folders of gateways still running on the same data directory (replicas sharing it) keep their lock and are
left alone.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import shutil
import tempfile
import threading

from nexus_flight.backends.spill_guard import disk_use

log = logging.getLogger(__name__)

_PREFIX = "gateway-"
_LOCK = "owner.lock"

_lock = threading.Lock()
#: Spill root -> this process's folder under it (with its lock file's descriptor, held open until exit).
_ours: dict[str, tuple[str, int]] = {}


def process_folder(root: str) -> str:
    """The folder of this process under ``root`` (made, locked and the abandoned ones removed on first use)."""
    root = os.path.abspath(root)
    with _lock:
        if root not in _ours:
            os.makedirs(root, exist_ok=True)
            _remove_abandoned(root)
            # Made and locked under a name sweeps pass over, then renamed: a sweep never sees it unlocked.
            making = tempfile.mkdtemp(prefix=f".making-{os.getpid()}-", dir=root)
            descriptor = os.open(os.path.join(making, _LOCK), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            folder = os.path.join(root, _PREFIX + os.path.basename(making).removeprefix(".making-"))
            os.rename(making, folder)
            _ours[root] = (folder, descriptor)
        return _ours[root][0]


def _remove_abandoned(root: str) -> None:
    removed, size = 0, 0
    for entry in os.scandir(root):
        if not entry.is_dir(follow_symlinks=False):
            continue
        if entry.name.startswith(_PREFIX):
            if not _owner_gone(entry.path):
                continue
        elif not entry.name.startswith("query-"):  # an instance folder of a version before per-process folders
            continue
        size += disk_use(entry.path)
        shutil.rmtree(entry.path, ignore_errors=True)
        removed += 1
    if removed:
        log.warning("removed %d spill folder(s) (%.1f MB) under %s left by gateways that stopped without closing "
                    "their queries (killed or crashed)", removed, size / 2**20, root)


def _owner_gone(folder: str) -> bool:
    """Whether no live process holds ``folder``'s lock."""
    try:
        descriptor = os.open(os.path.join(folder, _LOCK), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:  # not made by this code: left alone
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)  # a lock taken here goes with the descriptor: the folder is removed next anyway
    return True


@atexit.register
def _remove_ours() -> None:
    """On a clean exit the folders go with the process (instances still open then hold nothing anyone reads)."""
    with _lock:
        for folder, descriptor in _ours.values():
            shutil.rmtree(folder, ignore_errors=True)
            os.close(descriptor)
        _ours.clear()
