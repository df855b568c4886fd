"""Sign-in failures in the audit trail without letting a flood of them fill the catalog's disk.

Anyone who reaches the port can fail to sign in, hundreds of times a second from many connections, and each
failure is an audit row. Up to ``per_minute`` failures a minute are recorded one row each, as they come; the rest
of that minute become one ``auth_failure`` row saying how many there were, from how many addresses and for how
many user names (written when the next minute's first failure arrives, or when the gateway stops). Lockouts and
every other event are recorded one row each, always.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from nexus_flight.catalog.audit import AuditRecord

#: Distinct addresses and user names counted for one minute's summary (beyond this, "at least").
_MOST_DISTINCT = 10_000


class FailureAuditBudget:
    """Passes ``auth_failure`` events to ``audit`` up to ``per_minute`` a minute and summarizes the rest."""

    def __init__(self, audit: Callable[[AuditRecord], None], per_minute: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._audit = audit
        self._per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._minute: int | None = None
        self._passed = 0
        self._over = 0
        self._addresses: set[str] = set()
        self._users: set[str] = set()

    def __call__(self, record: AuditRecord) -> None:
        """Record one event: at once, or counted in its minute's summary."""
        if record.kind != "auth_failure":
            self._audit(record)
            return
        minute = int(self._clock() // 60)
        with self._lock:
            summary = self._roll(minute)
            passed = self._passed < self._per_minute
            if passed:
                self._passed += 1
            else:
                self._over += 1
                if len(self._addresses) < _MOST_DISTINCT:
                    self._addresses.add(record.client_address or "")
                if len(self._users) < _MOST_DISTINCT:
                    self._users.add(record.actor or "")
        if summary is not None:
            self._audit(summary)
        if passed:
            self._audit(record)

    def close(self) -> None:
        """Record the summary of the minute under way, if it has one."""
        with self._lock:
            summary = self._roll(None)
        if summary is not None:
            self._audit(summary)

    def _roll(self, minute: int | None) -> AuditRecord | None:
        """Start ``minute`` (None: stop) if it is a new one; return the summary of the one that ended, if any."""
        if minute == self._minute:
            return None
        summary = None
        if self._over and self._minute is not None:
            summary = AuditRecord(
                "auth_failure",
                detail={"summarized": self._over, "addresses": len(self._addresses), "users": len(self._users),
                        "minute": datetime.fromtimestamp(self._minute * 60, UTC).isoformat(),
                        "reason": f"more than {self._per_minute} failed sign-ins in that minute: the rest in one row"},
            )
        self._minute, self._passed, self._over = minute, 0, 0
        self._addresses, self._users = set(), set()
        return summary
