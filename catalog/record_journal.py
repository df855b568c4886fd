"""History and audit rows the catalog could not take, kept on disk until it can: nothing is lost to an outage.

The writers hold what the catalog cannot take yet in memory, up to a bound. Rows beyond it, and rows still held
when the gateway stops, used to be dropped: a catalog outage of half an hour at a few hundred queries a second, or a
restart during one, lost history and audit events for good. They go to a journal instead: one JSON line per row in
a file of this process's under ``<data_dir>/journal``, on which it holds an ``flock`` while it lives. Its writer
takes them back once the catalog answers again; a later start takes over the files of processes that are gone
(however they ended). The catalog skips rows whose id it has already, so a row written twice (a commit whose answer
was lost, then journaled) is stored once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

log = logging.getLogger(__name__)

#: The key a datetime is written under (JSON has none).
_DATETIME = "$datetime"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DATETIME: value.isoformat()}
    raise TypeError(f"not storable in a journal: {type(value).__name__}")


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: datetime.fromisoformat(v[_DATETIME]) if isinstance(v, dict) and _DATETIME in v else v
            for k, v in row.items()}


class RecordJournal:
    """The journal of one log (``history`` or ``audit``) this process keeps in ``folder``."""

    def __init__(self, folder: Path, log_name: str) -> None:
        self.folder = folder
        self.log_name = log_name
        self._lock = threading.Lock()
        self._descriptor: int | None = None
        self._path: Path | None = None
        #: Rows in this process's file now.
        self.count = 0

    def keep(self, rows: list[dict[str, Any]]) -> None:
        """Append ``rows`` to this process's file."""
        if not rows:
            return
        lines = "".join(json.dumps(row, default=_encode, separators=(",", ":")) + "\n" for row in rows).encode()
        with self._lock:
            descriptor = self._open()
            os.write(descriptor, lines)
            os.fsync(descriptor)
            self.count += len(rows)

    def take(self) -> list[dict[str, Any]]:
        """The rows of this process's file, which is emptied (``keep`` them again if they cannot be written)."""
        with self._lock:
            if not self.count or self._descriptor is None:
                return []
            rows = _read(self._descriptor)
            os.ftruncate(self._descriptor, 0)
            self.count = 0
        return rows

    def left_behind(self) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
        """The files of this log whose process is gone, with their rows (``settle`` each once written)."""
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob(f"{self.log_name}-*.jsonl")):
            if path == self._path:
                continue
            try:
                descriptor = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:  # another start took it
                continue
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its process still runs (a replica on this data directory)
                os.close(descriptor)
                continue
            try:
                yield path, _read(descriptor)
            finally:
                os.close(descriptor)

    @staticmethod
    def settle(path: Path) -> None:
        """Remove a file taken over once its rows are in the catalog."""
        path.unlink(missing_ok=True)

    def close(self) -> None:
        """Release this process's file; an empty one is removed."""
        with self._lock:
            if self._descriptor is None:
                return
            if not self.count and self._path is not None:
                self._path.unlink(missing_ok=True)
            os.close(self._descriptor)
            self._descriptor = None

    def _open(self) -> int:
        if self._descriptor is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            # Locked under a name no other start takes over, then renamed: a start never finds it unlocked.
            making = self.folder / f".{self.log_name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            descriptor = os.open(making, os.O_CREAT | os.O_RDWR | os.O_APPEND | os.O_CLOEXEC, 0o600)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            self._path = making.with_name(making.name.removeprefix(".") + ".jsonl")
            os.rename(making, self._path)
            self._descriptor = descriptor
            log.warning("the catalog cannot take the %s rows it is given: keeping them in %s until it can",
                        self.log_name, self._path)
        return self._descriptor


def not_yet_stored(session, id_column, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` without those whose id ``id_column`` holds already (a journal's rows may have landed before)."""
    stored = set(session.scalars(select(id_column).where(id_column.in_([row["id"] for row in rows]))))
    return [row for row in rows if row["id"] not in stored]


def journal_of(store, log_name: str) -> RecordJournal | None:
    """The journal of ``log_name`` under the store's data directory (None without one: rows are then dropped)."""
    return RecordJournal(store.data_dir / "journal", log_name) if store.data_dir is not None else None


def _read(descriptor: int) -> list[dict[str, Any]]:
    """The rows of an open journal file (a line cut short by a crash is skipped)."""
    os.lseek(descriptor, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(descriptor, 1 << 20):
        chunks.append(chunk)
    rows = []
    for line in b"".join(chunks).splitlines():
        try:
            rows.append(_decode(json.loads(line)))
        except ValueError:
            log.warning("skipped a journal line cut short (the gateway stopped while writing it)")
    return rows
