"""Connection tests and the background health checker.

A test probes a source and moves it to ``active`` or ``error``. Failures are counted in ``health_failures``
(shared
by every replica through the catalog); after the n-th consecutive failure the next try is scheduled
``BACKOFF_SECONDS[n-1]`` later (the last step repeats), and after ``MAX_TRIES`` consecutive failures the
checker
gives up on the source until someone tests it by hand. A failure no retry can mend (DS-010: no backend for the
type's family) schedules no retry at all, and its ``last_error`` says so. Active sources are re-probed every
``active_interval`` so a source that goes down is noticed without a query. Clock, probe and schedule are
injectable for tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select

from nexus_flight.catalog.connect import Probe, ping_backend
from nexus_flight.catalog.models import DataSource
from nexus_flight.catalog.redaction import SCRUBBER
from nexus_flight.catalog.rules import rule_error
from nexus_flight.catalog.store import CatalogStore, SourceInfo
from nexus_flight.core.errors import GatewayError
from nexus_flight.core.periodic import Periodic

log = logging.getLogger(__name__)

BACKOFF_SECONDS: tuple[float, ...] = (30, 60, 120, 300, 600)
MAX_TRIES = 10

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def next_delay(failures: int, schedule: Sequence[float] = BACKOFF_SECONDS) -> float:
    """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
    return schedule[min(max(failures, 1), len(schedule)) - 1]


#: Vault failures of the process testing a source (no or the wrong master key), not of the source.
VAULT_KEY_RULES = frozenset({"CV-001", "CV-002", "CV-004"})
#: Failures no retry can mend (a type whose backend family this gateway lacks): the checker does not retry them.
PERMANENT_RULES = frozenset({"DS-010"})
NOT_RETRIED = ("; not re-checked: it cannot become healthy until the source is changed (`sources update`) or run "
               "by a gateway that implements the family, then tested again (`sources test`)")


def check_source(
    store: CatalogStore,
    name: str,
    probe: Probe = ping_backend,
    *,
    clock: Clock = _utcnow,
    schedule: Sequence[float] = BACKOFF_SECONDS,
    max_tries: int = MAX_TRIES,
) -> SourceInfo:
    """Probe one source now and record the outcome (the manual test, and each health check).

    Raises:
        NotFoundError: no such source.
        ConfigError: DS-011 when the source is disabled; CV-001/CV-004 when this process has not the master key
            that opens the source's credentials (the source's status is then left as it was).

    """
    info = store.get_source(name)
    if info.status == "inactive":
        raise rule_error("DS-011", f"source {name!r} is disabled; enable it before testing it", source=name)
    now = clock()
    try:
        probe(store.source_spec(name))
    except GatewayError as exc:
        if exc.details.get("rule") in VAULT_KEY_RULES:
            raise  # this process lacks the master key: says nothing about the source, whose status stays
        return record_failure(store, name, exc.message, clock=clock, schedule=schedule, max_tries=max_tries,
                              retry=exc.details.get("rule") not in PERMANENT_RULES)
    return store.set_status(name, "active", health_failures=0, last_checked_at=now, next_check_at=None)


def record_failure(
    store: CatalogStore,
    name: str,
    message: str,
    *,
    clock: Clock = _utcnow,
    schedule: Sequence[float] = BACKOFF_SECONDS,
    max_tries: int = MAX_TRIES,
    retry: bool = True,
) -> SourceInfo:
    """Move a source to ``error`` (a failed test, or a query found it unreachable) and schedule a retry.

    Without ``retry`` (a failure no retry can mend) no retry is scheduled and ``last_error`` says so; a change to
    the source puts it back to ``draft`` (``CatalogStore.update_source``).

    Raises:
        NotFoundError: no such source.
        ConfigError: DS-011 when the source is disabled; CV-001/CV-004 when this process has not the master key
            that opens the source's credentials (the source's status is then left as it was).

    """
    info = store.get_source(name)
    now = clock()
    failures = info.health_failures + 1 if info.status == "error" else 1
    gave_up = failures >= max_tries
    next_at = None if gave_up or not retry else now + timedelta(seconds=next_delay(failures, schedule))
    if not retry:
        message += NOT_RETRIED
    elif gave_up:
        log.warning(
            "source %s failed %d health checks in a row; giving up until tested by hand", name, failures
        )
    return store.set_status(
        name,
        "error",
        SCRUBBER.scrub(message),
        health_failures=failures,
        last_checked_at=now,
        next_check_at=next_at,
    )


class HealthChecker(Periodic):
    """Re-tests failed sources on their backoff schedule, and active ones periodically, in a daemon thread."""

    thread_name = "catalog-health"

    def __init__(
        self,
        store: CatalogStore,
        probe: Probe = ping_backend,
        *,
        clock: Clock = _utcnow,
        schedule: Sequence[float] = BACKOFF_SECONDS,
        max_tries: int = MAX_TRIES,
        active_interval: float | None = 300.0,
        poll_seconds: float = 5.0,
    ) -> None:
        super().__init__(poll_seconds)
        self.store = store
        self.probe = probe
        self.clock = clock
        self.schedule = tuple(schedule)
        self.max_tries = max_tries
        self.active_interval = active_interval

    def due(self) -> list[str]:
        """Names of the sources whose next check is due now."""
        now = self.clock()
        retry = (
            (DataSource.status == "error")
            & (DataSource.next_check_at.is_not(None))
            & (DataSource.next_check_at <= now)
            & (DataSource.health_failures < self.max_tries)
        )
        conditions = [retry]
        if self.active_interval is not None:
            stale = now - timedelta(seconds=self.active_interval)
            conditions.append(
                (DataSource.status == "active")
                & (DataSource.last_checked_at.is_(None) | (DataSource.last_checked_at <= stale))
            )
        with self.store.session() as session:
            return list(
                session.scalars(select(DataSource.name).where(or_(*conditions)).order_by(DataSource.name))
            )

    def run_once(self) -> dict[str, str]:
        """Check every due source once; return the status each one ended in."""
        results = {}
        for name in self.due():
            try:
                info = check_source(
                    self.store,
                    name,
                    self.probe,
                    clock=self.clock,
                    schedule=self.schedule,
                    max_tries=self.max_tries,
                )
            except GatewayError as exc:  # removed or disabled meanwhile
                log.info("health check of %s skipped: %s", name, exc.message)
                continue
            results[name] = info.status
        return results
