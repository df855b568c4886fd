"""Holding each principal to its own limits: query rate, queries at once (in all and per source), rows, bytes, time.

A principal's limits (``catalog/limits.py`` names, resolved from its API key, user, roles and ``[server.limits]``
when it signed in) are read on every query, so a change made with the CLI applies within the identity refresh
interval and a reloaded ``[server.limits]`` at once. Budgets are charged to ``Principal.accounting_key``: an API
key has its own, every other sign-in of a user shares the user's.

- ``queries_per_minute`` / ``query_burst``: a token bucket per principal, charged once per query where its work
  starts: planning (``charge``: GetFlightInfo, GetSchema, CreatePreparedStatement, each new execution of a prepared
  statement) hands the token on as a *prepaid* credit that the run it plans spends instead of a new token
  (``admit(prepaid=...)``), so plan → DoGet costs one token, and so do the endpoints of one split result (each
  endpoint spends its own part, ``part_credit``). The credit travels with the query's signed ticket or prepared
  statement handle, so a run on another replica spends it too; with the counts in the catalog each run is spent
  there once, wherever it lands. A run without a credit left (a ticket redeemed twice) pays at ``admit``. A query
  that finds the bucket empty is refused at once (UNAVAILABLE) with the time until the next token; refused queries
  cost no token.
- ``max_concurrent_queries`` / ``max_concurrent_queries_per_source``: a slot is taken when a query starts running
  and given back exactly once when its stream ends, fails, is cancelled or loses its client (``release``). Over
  the limit a query waits up to ``queue_timeout_seconds`` for a slot (0, the default: refused at once); at most
  as many queries as the limit allows may wait per principal (counted where the slots are: across replicas with
  the counts in the catalog), more are refused at once. A waiting query leaves the queue at once when it is
  cancelled (CancelFlightInfo, its client gone), the gateway drains or stops, or its time limit passes.
- ``max_rows``, ``max_bytes``, ``max_query_seconds``: folded into the query's ``QueryLimits`` (the lower of the
  principal's and the server's wins), enforced by the result stream like the server's own caps.

Each refusal names the limit, its value and when to retry. Other principals are never touched: each has its own
bucket and counts. Tokens and slots are counted by a ``LimitCounts`` (``limit_counts.py``): in this process by
default, or, for replicas sharing a catalog (``nexus-flight serve``), in the catalog (``shared_limit_counts.py``), so
that a principal's rate, concurrency, queue and prepaid credits hold across all of them; a principal without a
rate or concurrency limit touches neither. The counts of decisions (``counts``) are each process's own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from nexus_flight.core.errors import GatewayError, RetryLaterError
from nexus_flight.core.source import QueryLimits
from nexus_flight.server.query.limit_counts import TOTAL, LimitCounts, LocalCounts, Release
from nexus_flight.server.query.principal import Principal

#: How long a prepaid credit may wait for its run (a prepared statement's first execution, say).
_PREPAID_SECONDS = 3600
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
        counter: Where rate tokens, prepaid credits, running and waiting queries are counted; default: in this
            process (``LocalCounts``).
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
        return self._credit(key, runs)

    def claim(self, principal: Principal, credit: str | None) -> str | None:
        """The credit of one execution of a prepared statement, from its preparation's if still unclaimed.

        ``credit`` (what preparing it took) pays while no execution on any replica has claimed it yet; else a new
        token is taken (``charge``). The credit returned is the execution's own, so the runs of one execution (its
        endpoints) never spend the runs of another made from the same handle.
        """
        if self.limits_of(principal).get("queries_per_minute") is None:
            return None
        if self._spend(credit, principal.accounting_key):
            return self._credit(principal.accounting_key, 1)
        return self.charge(principal)

    def _credit(self, key: str, runs: int) -> str:
        """A new credit of ``key`` for ``runs`` runs (a token already taken for it)."""
        until = int(time.time()) + _PREPAID_SECONDS
        credit = f"{secrets.token_hex(8)}.{until:d}.{_tag(key)}"
        self.counter.prepay(credit, runs, until)
        return credit

    def share(self, credit: str | None, runs: int) -> None:
        """Let a credit pay for ``runs`` runs (the endpoints of one split result, each with its ``part_credit``)."""
        terms = _terms(credit)
        if credit is not None and terms is not None:
            self.counter.prepay(credit, runs, terms[0])

    def _spend(self, credit: str | None, key: str) -> bool:
        """Spend one run of a prepaid credit of ``key``; False: none left, expired, or not this key's."""
        terms = _terms(credit)
        if credit is None or terms is None or terms[0] <= time.time() or terms[1] != _tag(key):
            return False
        return self.counter.spend(credit, terms[0])

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
        queued = self.counter.wait(key, int(limits[got])) if queue_seconds > 0 else None
        with self._lock:
            if queued is None:
                raise self._refuse_concurrency(got, limits, source, who, None)
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
                        # A stop's wake-up takes this lock: one that came since the look above is seen here.
                        stopped = stop() if stop is not None else None
                        if stopped is not None:
                            raise stopped
                        self._freed.wait(min(left, self.counter.poll_seconds))
                    seen = self._given_back
                got = self.counter.hold(key, source, total, per_source)
                if not isinstance(got, str):
                    return got
        finally:
            queued()
            with self._lock:
                self._counts.waiting -= 1

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


def part_credit(credit: str | None, index: int) -> str | None:
    """The credit one endpoint of a split result spends (each endpoint its own run of ``credit``)."""
    return None if credit is None else f"{credit}/{index:d}"


def _tag(key: str) -> str:
    """Eight hex digits of ``key``'s hash: a credit names whose it is without carrying the key."""
    return hashlib.blake2b(key.encode(), digest_size=4).hexdigest()


def _terms(credit: str | None) -> tuple[int, str] | None:
    """Until when a credit (``random.until.tag``, maybe ``/part``) pays, and whose it is; None when malformed."""
    if credit is None:
        return None
    parts = credit.partition("/")[0].split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[2]


def _who(principal: Principal) -> str:
    if principal.auth_method == "api_key" and principal.credential_id:
        return f"API key {principal.credential_id} of user {principal.name!r}"
    return f"user {principal.name!r}"


def _ceil_tenth(seconds: float) -> float:
    """Round up to a tenth of a second (a retry told "1.2 s" then finds the token there)."""
    return max(0.1, -(-round(seconds * 1000) // 100) / 10)
