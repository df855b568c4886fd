"""Whether the catalog answers, asked in the background: readiness and ``/metrics`` read it without waiting.

A probe or a scrape that asked the catalog itself would hang with a catalog that hangs (a failover, a dropped
network path) and fail at once with one that is down. Sources already open go on serving through such an outage
(``directory``), so a replica stays ready for a grace period: a catalog failover shared by every replica must not
take them all out of a load balancer at once; one that lasts longer, or a replica cut off for good, does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from nexus_flight.catalog.store import CatalogStore
from nexus_flight.core.periodic import Periodic

log = logging.getLogger(__name__)

#: How often the catalog is asked (seconds).
PROBE_INTERVAL = 2.0
#: A probe still waiting after this long counts as no answer.
PROBE_PATIENCE = 2.0


class CatalogWatch(Periodic):
    """Lists the sources every few seconds; keeps when the catalog last answered and the statuses it gave."""

    thread_name = "catalog-watch"

    def __init__(self, store: CatalogStore, *, interval: float = PROBE_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(interval)
        self._store = store
        self._clock = clock
        #: The gateway reached its catalog to start: that is its first answer.
        self.answered_at = clock()
        self._asking_since: float | None = None
        self._failure: str | None = None
        #: The sources' health statuses of the last answer.
        self.statuses: list[str] = []

    def run_once(self) -> None:
        """Ask the catalog once; keep its answer, or that it gave none."""
        self._asking_since = self._clock()
        try:
            statuses = [source.status for source in self._store.list_sources()]
        except Exception as exc:  # any failure to answer is the same outage to readiness
            if self._failure is None:
                log.warning("the catalog does not answer (%s): sources already open go on serving",
                            type(exc).__name__)
            self._failure = type(exc).__name__
            return
        finally:
            self._asking_since = None
        if self._failure is not None:
            log.info("the catalog answers again after %.0f s", self._clock() - self.answered_at)
        self._failure = None
        self.statuses = statuses
        self.answered_at = self._clock()

    def unanswered_seconds(self) -> float:
        """How long the catalog has not answered (0 while it does)."""
        now = self._clock()
        asking = self._asking_since
        waiting = asking is not None and now - asking > PROBE_PATIENCE
        return now - self.answered_at if self._failure is not None or waiting else 0.0

    def not_ready(self, grace_seconds: float) -> str | None:
        """Why the gateway is not ready for the catalog's sake (unanswered past the grace), or None."""
        silent = self.unanswered_seconds()
        if silent == 0.0 or silent <= grace_seconds:
            return None
        why = self._failure or "no answer yet"
        return f"the catalog has not answered for {silent:.0f} s ({why})"
