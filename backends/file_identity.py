"""Which file a path names now: how a source notices its database file was swapped under the gateway."""

from __future__ import annotations

import os
from typing import Any


def file_identity(path: Any, *, with_content: bool) -> tuple[int, ...] | None:
    """The device and inode ``path`` names (a rename over it changes them); None if it names nothing.

    ``with_content`` adds the modification time and size: for an engine that would not see a file rewritten in
    place (a copy over it) the way SQLite's readers see another connection's writes.
    """
    if not path or path == ":memory:":
        return None
    try:
        stat = os.stat(os.path.expanduser(str(path)))
    except OSError:  # gone: opening it says so
        return None
    if with_content:
        return stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size
    return stat.st_dev, stat.st_ino
