"""Holding each principal to its own limits: query rate, queries at once (in all and per source), rows, bytes, time.

A principal's limits (``catalog/limits.py`` names, resolved from its API key, user, roles and ``[server.limits]``
when it signed in) are read on every query, so a change made with the CLI applies within the identity refresh
interval and a reloaded ``[server.limits]`` at once. Budgets are charged to ``Principal.accounting_key``: an API
key has its own, every other sign-in of a user shares the user's.

- ``queries_per_minute`` / ``query_burst``: a token bucket per principal, charged once per query where its work
  starts: planning (``charge``: GetFlightInfo, GetSchema, CreatePreparedStatement, each new execution of a prepared
  statement) hands the token on as a *prepaid* credit that the run it plans spends instead of a new token
  (``admit(prepaid=...)``), so plan → DoGet costs one token, and so do the endpoints of one split result; a run
  without a credit (a ticket redeemed twice, or on another replica) pays at ``admit``. A query that finds the bucket
  empty is refused at once (UNAVAILABLE) with the time until the next token; refused queries cost no token.
- ``max_concurrent_queries`` / ``max_concurrent_queries_per_source``: a slot is taken when a query starts running
  and given back exactly once when its stream ends, fails, is cancelled or loses its client (``release``). Over
  the limit a query waits up to ``queue_timeout_seconds`` for a slot (0, the default: refused at once); at most
  as many queries as the limit allows may wait per principal, more are refused at once. A waiting query leaves
  the queue at once when it is cancelled (CancelFlightInfo, its client gone), the gateway drains or stops, or its
  time limit passes.
- ``max_rows``, ``max_bytes``, ``max_query_seconds``: folded into the query's ``QueryLimits`` (the lower of the
  principal's and the server's wins), enforced by the result stream like the server's own caps.

Each refusal names the limit, its value and when to retry. Other principals are never touched: each has its own
bucket and counts. Tokens and slots are counted by a ``LimitCounts`` (``limit_counts.py``): in this process by
default, or, for replicas sharing a catalog (``nexus-flight serve``), in the catalog (``shared_limit_counts.py``), so
that a principal's rate and concurrency hold across all of them; a principal without a rate or concurrency limit
touches neither. Prepaid credits, the queue and the counts of decisions stay in each process.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from nexus_flight.core.errors import GatewayError, RetryLaterError
from nexus_flight.core.source import QueryLimits
from nexus_flight.server.query.limit_counts import TOTAL, LimitCounts, LocalCounts, Release
from nexus_flight.server.query.principal import Principal

#: Prepaid credits kept (planned queries not run yet), and how long one may wait for its run.
_MAX_PREPAID = 100_000
_PREPAID_SECONDS = 3600.0
#: Suggested retry delay after a concurrency refusal (when a slot frees is not known in advance).
_CONCURRENCY_RETRY_SECONDS = 1.0


class Slot:
    """A running query's hold on its principal's concurrency; ``release`` gives it back, only the first call counts."""

    def __init__(self, release: Callable[[], None] | None = None) -> None:
        self._release = release
        self._lock = threading.Lock()

    def release(self) -> None:
        """Give the slot back (safe to call more than once, from any thread)."""
        with self._lock:
            release, self._release = self._release, None
        if release is not None:
            release()


@dataclasses.dataclass
class AdmissionCounts:
    """What the limiter decided since it started, and how many queries wait and run under a limit now."""

    admitted: int = 0
    queued: int = 0
    #: limit name -> queries refused by it
    refused: dict[str, int] = dataclasses.field(default_factory=dict)
    waiting: int = 0
    running: int = 0


class PrincipalLimiter:
    """Admits queries under their principal's rate and concurrency limits, and lowers the server's query limits.

    Args:
        defaults: ``[server.limits]``: the limits of a caller that did not sign in (authentication off); a signed-in
            principal carries its own, already resolved with these as the fallback.
        clock: Seconds, monotonic (tests pass their own), for the counts kept in this process and queue waits.
        counter: Where rate tokens and running slots are counted; default: in this process (``LocalCounts``).
            Replicas sharing a catalog count in it (``SharedCounts``); ``counter`` may be replaced while serving.

    """

    def __init__(self, defaults: Mapping[str, Any] | None = None, clock: Callable[[], float] = time.monotonic,
                 counter: LimitCounts | None = None) -> None:
        self.defaults: dict[str, Any] = dict(defaults or {})
        self.counter: LimitCounts = counter or LocalCounts(clock)
        self._clock = clock
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        #: Slots given back in this process so far: a waiting query that saw this move asks again at once.
        self._given_back = 0
        self._waiting: dict[str, int] = {}
        #: credit id -> (accounting key, runs it still pays for, until when)
        self._prepaid: dict[str, tuple[str, int, float]] = {}
        self._counts = AdmissionCounts()

    def limits_of(self, principal: Principal) -> Mapping[str, Any]:
        """The limits that apply to ``principal`` now."""
        return principal.limits if principal.authenticated else self.defaults

    # -- admission -------------------------------------------------------------------------------------------

    def charge(self, principal: Principal, runs: int = 1) -> str | None:
        """Take a rate token for a query being planned; return the credit its ``runs`` runs spend (None: no rate).

        Raises:
            RetryLaterError: UNAVAILABLE: the principal's rate is used up (naming the limit and when to retry).

        """
        limits = self.limits_of(principal)
        if limits.get("queries_per_minute") is None:
            return None
        key = principal.accounting_key
        self._take_rate_token(key, _who(principal), limits)
        with self._lock:
            now = self._clock()
            if len(self._prepaid) >= _MAX_PREPAID:
                self._prepaid = {k: v for k, v in self._prepaid.items() if v[2] > now}
                if len(self._prepaid) >= _MAX_PREPAID:
                    self._prepaid.clear()  # credits lost: their runs pay again, never run unpaid
            credit = secrets.token_hex(8)
            self._prepaid[credit] = (key, max(1, runs), now + _PREPAID_SECONDS)
        return credit

    def share(self, credit: str | None, runs: int) -> None:
        """Let a credit pay for ``runs`` runs (the endpoints of one split result)."""
        if credit is None:
            return
        with self._lock:
            found = self._prepaid.get(credit)
            if found is not None:
                self._prepaid[credit] = (found[0], max(1, runs), found[2])

    def _spend(self, credit: str | None, key: str) -> bool:
        """Spend one run of a prepaid credit of ``key``; False: none left, or not this key's."""
        if credit is None:
            return False
        with self._lock:
            found = self._prepaid.pop(credit, None)
            if found is None or found[0] != key or found[2] <= self._clock():
                return False
            if found[1] > 1:
                self._prepaid[credit] = (found[0], found[1] - 1, found[2])
            return True

    def admit(self, principal: Principal, source: str, stop: Callable[[], GatewayError | None] | None = None,
              prepaid: str | None = None) -> Slot:
        """Take a concurrency slot (waiting for one where configured) and a rate token, or refuse.

        Args:
            principal: Who runs the query.
            source: The source it runs on.
            stop: Why a queued query should stop waiting (a cancel, its client gone, a drain, its time limit), or
                None to go on; ``wake`` makes a waiting query ask at once.
            prepaid: The credit its planning took (``charge``): spent instead of a new rate token.

        Raises:
            RetryLaterError: UNAVAILABLE naming the limit reached, its value and when to retry.
            GatewayError: what ``stop`` returned while the query waited for a slot.

        """
        limits = self.limits_of(principal)
        total = limits.get("max_concurrent_queries")
        per_source = limits.get("max_concurrent_queries_per_source")
        rate = limits.get("queries_per_minute")
        if total is None and per_source is None and rate is None:
            return Slot()
        key, who = principal.accounting_key, _who(principal)
        release = None
        if total is not None or per_source is not None:
            release = self._wait_for_slot(key, who, source, limits, stop)
        try:
            # The slot first: a query refused a slot has spent nothing; one refused a token gives its slot back.
            if rate is not None and not self._spend(prepaid, key):
                self._take_rate_token(key, who, limits)
        except BaseException:
            if release is not None:
                release()
                self._slot_given_back(counted=False)
            raise
        with self._lock:
            self._counts.admitted += 1
            if release is None:
                return Slot()
            self._counts.running += 1
        return Slot(lambda: self._give_back(release))

    def _wait_for_slot(self, key: str, who: str, source: str, limits: Mapping[str, Any],
                       stop: Callable[[], GatewayError | None] | None) -> Release:
        """A slot of ``key`` on ``source`` once it is under its concurrency limits, or refuse."""
        total = limits.get("max_concurrent_queries")
        per_source = limits.get("max_concurrent_queries_per_source")
        seen = self._given_back
        got = self.counter.hold(key, source, total, per_source)
        if not isinstance(got, str):
            return got
        queue_seconds = float(limits.get("queue_timeout_seconds") or 0.0)
        with self._lock:
            if queue_seconds <= 0 or self._waiting.get(key, 0) >= limits[got]:
                raise self._refuse_concurrency(got, limits, source, who, None)
            self._waiting[key] = self._waiting.get(key, 0) + 1
            self._counts.queued += 1
            self._counts.waiting += 1
        started = self._clock()
        try:
            while True:
                stopped = stop() if stop is not None else None
                if stopped is not None:
                    raise stopped
                left = queue_seconds - (self._clock() - started)
                if left <= 0:
                    with self._lock:
                        raise self._refuse_concurrency(got, limits, source, who, queue_seconds)
                with self._lock:
                    if self._given_back == seen:  # nothing given back here since the last look: wait for it
                        self._freed.wait(min(left, self.counter.poll_seconds))
                    seen = self._given_back
                got = self.counter.hold(key, source, total, per_source)
                if not isinstance(got, str):
                    return got
        finally:
            with self._lock:
                self._counts.waiting -= 1
                self._waiting[key] -= 1
                if not self._waiting[key]:
                    del self._waiting[key]

    def wake(self) -> None:
        """Make every query waiting for a slot look at once whether it should stop waiting."""
        with self._lock:
            self._freed.notify_all()

    def _refuse_concurrency(self, name: str, limits: Mapping[str, Any], source: str, who: str,
                            waited: float | None) -> RetryLaterError:
        """The refusal naming limit ``name`` (the lock held)."""
        value = int(limits[name])
        what = "queries" if name == TOTAL else f"queries on source {source!r}"
        self._counts.refused[name] = self._counts.refused.get(name, 0) + 1
        queued = f" (waited {waited:g} s, queue_timeout_seconds={waited:g})" if waited else ""
        return RetryLaterError(
            f"limit reached: {who} already runs {value} {what} ({name}={value}){queued}; retry after "
            f"{_CONCURRENCY_RETRY_SECONDS:g} s, or once one of them has ended",
            retry_after_seconds=_CONCURRENCY_RETRY_SECONDS,
        )

    def _take_rate_token(self, key: str, who: str, limits: Mapping[str, Any]) -> None:
        """Take a rate token of ``key``, or refuse (UNAVAILABLE, counted) with the time until the next one."""
        per_minute = float(limits["queries_per_minute"])
        per_second = per_minute / 60.0
        capacity = float(limits.get("query_burst") or max(1, round(per_minute / 6)))
        wait = self.counter.take_token(key, per_second, capacity)
        if wait <= 0:
            return
        with self._lock:
            self._counts.refused["queries_per_minute"] = self._counts.refused.get("queries_per_minute", 0) + 1
        raise RetryLaterError(
            f"limit reached: {who} may start {per_minute:g} queries per minute, {capacity:g} at once "
            f"(queries_per_minute={per_minute:g}, query_burst={capacity:g}); retry after {_ceil_tenth(wait):.1f} s",
            retry_after_seconds=_ceil_tenth(wait),
        )

    def _give_back(self, release: Release) -> None:
        release()
        self._slot_given_back(counted=True)

    def _slot_given_back(self, counted: bool) -> None:
        with self._lock:
            if counted:
                self._counts.running -= 1
            self._given_back += 1
            self._freed.notify_all()

    # -- per-query limits -------------------------------------------------------------------------------------

    def query_limits(self, principal: Principal, server: QueryLimits) -> QueryLimits:
        """The server's limits for one query, lowered by the principal's ``max_rows``, ``max_bytes`` and time."""
        limits = self.limits_of(principal)
        changes: dict[str, Any] = {}
        lowered: set[str] = set()
        for mine, theirs in (("max_rows", "max_result_rows"), ("max_bytes", "max_result_bytes"),
                             ("max_query_seconds", "timeout_seconds")):
            value = limits.get(mine)
            current = getattr(server, theirs)
            if value is not None and (current is None or value < current):
                changes[theirs] = int(value) if mine != "max_query_seconds" else float(value)
                lowered.add(theirs)
        if not changes:
            return server
        return dataclasses.replace(server, **changes, lowered_by_caller=frozenset(lowered))

    # -- observation ------------------------------------------------------------------------------------------

    def counts(self) -> AdmissionCounts:
        """A copy of the decisions so far and the queries waiting and running under a limit now."""
        with self._lock:
            return dataclasses.replace(self._counts, refused=dict(self._counts.refused))

    def running(self, principal: Principal, source: str | None = None) -> int:
        """How many slots ``principal`` holds in this process (on ``source``, if given)."""
        return self.counter.running(principal.accounting_key, source)


def _who(principal: Principal) -> str:
    if principal.auth_method == "api_key" and principal.credential_id:
        return f"API key {principal.credential_id} of user {principal.name!r}"
    return f"user {principal.name!r}"


def _ceil_tenth(seconds: float) -> float:
    """Round up to a tenth of a second (a retry told "1.2 s" then finds the token there)."""
    return max(0.1, -(-round(seconds * 1000) // 100) / 10)
