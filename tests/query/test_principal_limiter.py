"""The limiter's arithmetic on a clock the test moves: exact counts, with no wall-clock slack."""

from __future__ import annotations

import pytest

from nexus_flight.core.errors import RetryLaterError
from nexus_flight.core.source import QueryLimits
from nexus_flight.server.query.principal import Principal
from nexus_flight.server.query.principal_limits import PrincipalLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _user(name: str, **limits) -> Principal:
    return Principal(name=name, authenticated=True, limits=limits)


def test_thirty_a_minute_with_a_burst_of_five_admits_five_at_once_then_one_every_two_seconds():
    clock = Clock()
    limiter = PrincipalLimiter(clock=clock)
    bob = _user("bob", queries_per_minute=30, query_burst=5)
    admitted = refused = 0
    for _ in range(60 * 10):  # a minute in tenths of a second, ten tries each
        for _ in range(10):
            try:
                limiter.admit(bob, "demo").release()
                admitted += 1
            except RetryLaterError:
                refused += 1
        clock.now += 0.1
    assert admitted == 5 + 29  # the burst at 0 s, then one at each 2 s mark up to 58 s (the minute ends at 59.9 s)
    assert limiter.counts().refused == {"queries_per_minute": refused}


def test_the_retry_time_is_when_the_next_token_arrives():
    clock = Clock()
    limiter = PrincipalLimiter(clock=clock)
    bob = _user("bob", queries_per_minute=30, query_burst=1)
    limiter.admit(bob, "demo")
    clock.now += 0.8
    with pytest.raises(RetryLaterError) as refused:
        limiter.admit(bob, "demo")
    assert refused.value.retry_after_seconds == pytest.approx(1.2)
    assert "retry after 1.2 s" in refused.value.message
    clock.now += 1.2
    limiter.admit(bob, "demo")


def test_an_api_key_has_its_own_budget_and_other_users_are_untouched():
    limiter = PrincipalLimiter(clock=Clock())
    user = _user("bob", queries_per_minute=6, query_burst=1)
    key = Principal(name="bob", authenticated=True, auth_method="api_key", credential_id="k1",
                    limits={"queries_per_minute": 6, "query_burst": 1})
    limiter.admit(user, "demo")
    limiter.admit(key, "demo")
    with pytest.raises(RetryLaterError, match="API key k1 of user 'bob'"):
        limiter.admit(key, "demo")
    for _ in range(100):
        limiter.admit(_user("carol"), "demo")


def test_a_slot_is_given_back_once_however_often_it_is_released():
    limiter = PrincipalLimiter(clock=Clock())
    bob = _user("bob", max_concurrent_queries=2, max_concurrent_queries_per_source=1)
    first = limiter.admit(bob, "demo")
    with pytest.raises(RetryLaterError, match="max_concurrent_queries_per_source=1"):
        limiter.admit(bob, "demo")
    second = limiter.admit(bob, "other")
    with pytest.raises(RetryLaterError, match=r"max_concurrent_queries=2\)"):
        limiter.admit(bob, "third")
    for _ in range(3):
        first.release()
    assert limiter.running(bob) == 1 and limiter.running(bob, "demo") == 0
    second.release()
    assert limiter.running(bob) == 0 and limiter.counts().running == 0


def test_the_callers_rows_bytes_and_time_lower_the_servers_never_raise_them():
    limiter = PrincipalLimiter()
    server = QueryLimits(timeout_seconds=30, max_result_rows=100)
    mine = limiter.query_limits(_user("bob", max_rows=10, max_bytes=1000, max_query_seconds=60), server)
    assert (mine.max_result_rows, mine.max_result_bytes, mine.timeout_seconds) == (10, 1000, 30)
    assert mine.lowered_by_caller == {"max_result_rows", "max_result_bytes"}
    assert limiter.query_limits(_user("carol"), server) is server


def test_a_cancel_that_lands_just_after_a_waiting_query_looked_wakes_it_at_once():
    """A cancel's wake-up between the waiting query's "should I stop?" and its wait is not lost.

    The moment is forced: the cancel lands right after the query's stop check said "go on", before it waits. A
    lost wake-up leaves the query waiting for the next poll (here made long, so that it shows).
    """
    import threading
    import time

    from nexus_flight.core.errors import QueryCancelledError
    from nexus_flight.server.query.limit_counts import LocalCounts

    counts = LocalCounts(time.monotonic)
    counts.poll_seconds = 5.0
    limiter = PrincipalLimiter(counter=counts)
    bob = _user("bob", max_concurrent_queries=1, queue_timeout_seconds=30)
    held = limiter.admit(bob, "demo")
    cancel: list[QueryCancelledError] = []

    def stop() -> QueryCancelledError | None:
        if cancel:
            return cancel[0]
        cancel.append(QueryCancelledError("cancelled"))  # lands just after this look, as from another thread
        waker = threading.Thread(target=limiter.wake)
        waker.start()
        waker.join()
        return None

    started = time.monotonic()
    with pytest.raises(QueryCancelledError):
        limiter.admit(bob, "demo", stop=stop)
    assert time.monotonic() - started < 2.0, "the cancel waited for the next poll"
    held.release()
    assert limiter.counts().waiting == 0
