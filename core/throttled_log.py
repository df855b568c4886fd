"""Warnings logged at most once a minute per kind: an outage would otherwise log on every call it touches."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

_SECONDS = 60.0


class ThrottledLog:
    """Logs a warning of each ``kind`` at most once every ``seconds``."""

    def __init__(self, logger: logging.Logger, seconds: float = _SECONDS) -> None:
        self._logger = logger
        self._seconds = seconds
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def warning(self, kind: str, message: str, *args: Any) -> None:
        """Log ``message % args`` unless a warning of ``kind`` was logged within the interval."""
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -self._seconds) < self._seconds:
                return
            self._last[kind] = now
        self._logger.warning(message + " (logged at most once a minute)", *args)
