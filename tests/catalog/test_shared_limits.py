"""Principals' rate tokens and running slots in the catalog, on SQLite and PostgreSQL.

The arithmetic on given clock readings; processes racing for one bucket and one principal's slots (each racer its
own connections, as replicas have); two limiters sharing a catalog as two replicas do; what a limiter does when
the catalog does not answer, and that a principal without limits never reaches it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event, make_url, text

from nexus_flight.catalog import limit_rows
from nexus_flight.catalog.limit_rows import CatalogLimitRows, limits_engine
from nexus_flight.core.errors import RetryLaterError
from nexus_flight.server.query.principal import Principal
from nexus_flight.server.query.principal_limits import PrincipalLimiter, part_credit
from nexus_flight.server.query.shared_limit_counts import SharedCounts
from tests.support import limit_race
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]
T = 1_800_000_000.0  # a clock reading (seconds since the epoch)


@pytest.fixture
def rows(store):
    made = CatalogLimitRows(limits_engine(store.engine.url))
    yield made
    made.close()


def _user(name: str, **limits) -> Principal:
    return Principal(name=name, authenticated=True, limits=limits)


@pytest.fixture
def shared():
    """Makes the counts of a replica on a catalog (closed at the end: their lease renewals stop)."""
    made = []

    def make(store, lease_seconds: float = 30.0) -> SharedCounts:
        made.append(SharedCounts(CatalogLimitRows(limits_engine(store.engine.url)), lease_seconds=lease_seconds))
        return made[-1]

    yield make
    for counts in made:
        counts.close()


def test_a_bucket_refills_with_time_and_a_refusal_takes_nothing(rows):
    taken = [rows.take_token("user:bob", 0.5, 3, T) for _ in range(5)]
    assert taken == [0.0, 0.0, 0.0, 2.0, 2.0]  # the burst, then 2 s until the next token at 0.5/s
    assert rows.take_token("user:bob", 0.5, 3, T + 1.5) == pytest.approx(0.5)  # refusals took nothing
    assert rows.take_token("user:bob", 0.5, 3, T + 2.0) == 0.0
    assert rows.take_token("user:bob", 0.5, 3, T + 100) == 0.0  # full again: 3 at most
    assert [rows.take_token("user:bob", 0.5, 3, T + 100) for _ in range(3)] == [0.0, 0.0, 2.0]
    # A lowered burst applies at once; a reading older than the last one (another replica's clock behind)
    # refills nothing and moves no clock back.
    assert rows.take_token("user:bob", 0.5, 1, T + 200) == 0.0
    assert rows.take_token("user:bob", 0.5, 1, T + 150) == pytest.approx(2.0)
    assert rows.take_token("user:carol", 0.5, 1, T + 150) == 0.0  # her own bucket


def test_slots_count_live_rows_per_principal_and_source_and_expire_with_their_lease(rows):
    def hold(slot, source, total=2, per_source=1, now=T):
        return rows.hold(slot, "user:bob", source, "replica-a", total, per_source, now, now + 30)

    assert hold("a", "demo") is None
    assert hold("b", "demo") == "max_concurrent_queries_per_source"
    assert hold("c", "files") is None
    assert hold("d", "lake") == "max_concurrent_queries"
    assert rows.running("user:bob", "demo", T) == (2, 1)
    assert rows.hold("e", "user:carol", "demo", "replica-a", 1, 1, T, T + 30) is None  # her own count
    rows.release(["a"])
    assert hold("f", "demo") is None
    rows.renew(["c"], T + 100)
    # At T + 31 the unrenewed slots (f, carol's) have expired and count no more; c's lease runs to T + 100.
    assert rows.running("user:bob", "demo", T + 31) == (1, 0)
    assert hold("g", "demo", now=T + 31) is None and hold("h", "lake", now=T + 31) == "max_concurrent_queries"
    rows.purge(T + 31)
    with rows.engine.connect() as connection:
        left = sorted(r[0] for r in connection.execute(text("SELECT id FROM running_slots")))
    assert left == ["c", "g"]


def test_a_key_too_long_to_store_is_counted_under_its_hash(rows):
    long_key = "user:" + "x" * 500  # authentication off: a name the client sent
    assert rows.take_token(long_key, 1.0, 1, T) == 0.0
    assert rows.take_token(long_key, 1.0, 1, T) == pytest.approx(1.0)
    assert rows.hold("a", long_key, "demo", "r", 1, None, T, T + 30) is None
    assert rows.running(long_key, "demo", T) == (1, 1)


def _race(url: str, racers: int = 4, seconds: float = 1.0) -> list[dict]:
    """``racers`` processes racing from the same instant (``tests/support/limit_race.py``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.support.limit_race", url, str(seconds)], cwd=ROOT,
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(racers)]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-2000:]
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err[-2000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_processes_racing_take_exactly_the_burst_and_never_hold_more_slots_than_the_limit(store):
    results = _race(store.engine.url.render_as_string(hide_password=False))
    assert sum(r["taken"] for r in results) == limit_race.BURST
    assert sum(r["refused"] for r in results) > 0  # racers were still asking when the bucket was empty
    assert max(r["most"] for r in results) == limit_race.LIMIT  # contended up to the limit, never over it
    assert sum(r["held"] for r in results) > 20


def test_two_limiters_on_one_catalog_share_the_rate_and_the_slots(store, shared):
    """Two replicas' limiters: each its own connections, one budget."""
    here, there = PrincipalLimiter(counter=shared(store)), PrincipalLimiter(counter=shared(store))
    bob = _user("bob", queries_per_minute=6, query_burst=2, max_concurrent_queries=1)
    credit = here.charge(bob)
    slot = there.admit(bob, "demo", prepaid=credit)  # planned here, run there: the credit pays, wherever it runs
    second = here.charge(bob)  # the burst's second token
    with pytest.raises(RetryLaterError, match=r"query_burst=2\); retry after (10\.0|9\.\d) s"):
        here.charge(bob)
    assert here.counts().refused == {"queries_per_minute": 1}
    # The slot is held on the other replica.
    with pytest.raises(RetryLaterError, match=r"already runs 1 queries \(max_concurrent_queries=1\)"):
        here.admit(bob, "demo", prepaid=second)
    assert there.running(bob) == 1 and here.running(bob) == 0  # what each replica holds itself
    slot.release()
    slot.release()  # once only
    for limiter in (here, there):  # spent by its run: a second run of it needs a token, and none is left
        with pytest.raises(RetryLaterError, match="queries_per_minute=6"):
            limiter.admit(bob, "demo", prepaid=credit)
    there.admit(bob, "demo", prepaid=second).release()  # a refused run spent nothing: the credit still pays


def test_a_query_queued_on_one_replica_starts_when_another_gives_its_slot_back(store, shared):
    here, there = PrincipalLimiter(counter=shared(store)), PrincipalLimiter(counter=shared(store))
    bob = _user("bob", max_concurrent_queries=1, queue_timeout_seconds=10)
    slot = there.admit(bob, "demo")
    threading.Timer(0.5, slot.release).start()
    started = time.monotonic()
    here.admit(bob, "demo").release()
    waited = time.monotonic() - started
    assert 0.45 <= waited < 0.5 + 2 * here.counter.poll_seconds + 0.5
    assert here.counts().queued == 1


def test_the_queue_of_a_principal_is_capped_across_replicas(store, shared):
    """One slot, one waiting query: a second query queued on another replica is refused at once, not queued."""
    here, there = PrincipalLimiter(counter=shared(store)), PrincipalLimiter(counter=shared(store))
    bob = _user("bob", max_concurrent_queries=1, queue_timeout_seconds=10)
    slot = there.admit(bob, "demo")
    answered: list = []
    waiting = threading.Thread(target=lambda: answered.append(here.admit(bob, "demo")))
    waiting.start()
    deadline = time.monotonic() + 5
    while here.counts().waiting == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert here.counter.rows.queued("user:bob", time.time()) == 1
    started = time.monotonic()
    with pytest.raises(RetryLaterError, match=r"already runs 1 queries \(max_concurrent_queries=1\); retry"):
        there.admit(bob, "demo")  # its queue is full on the other replica
    assert time.monotonic() - started < 1.0 and there.counts().queued == 0
    slot.release()
    waiting.join(5)
    assert len(answered) == 1 and there.counter.rows.queued("user:bob", time.time()) == 0  # the wait ended
    answered[0].release()


def test_a_gone_replicas_waiting_query_stops_counting_within_its_lease(store, shared):
    here, there = shared(store, lease_seconds=1.0), shared(store, lease_seconds=1.0)
    assert there.wait("user:bob", 1) is not None
    time.sleep(1.3)  # past the first lease: renewed while it waits
    assert here.wait("user:bob", 1) is None
    there.close()  # gone without ending its wait: the lease is no longer renewed
    started = time.monotonic()
    while (ended := here.wait("user:bob", 1)) is None:
        assert time.monotonic() - started < 1.5
        time.sleep(0.05)
    ended()
    assert here.rows.queued("user:bob", time.time()) == 0


def test_a_credit_pays_one_run_on_any_replica_and_each_part_of_a_split_result_one(store, shared):
    here, there = PrincipalLimiter(counter=shared(store)), PrincipalLimiter(counter=shared(store))
    bob = _user("bob", queries_per_minute=6, query_burst=1)
    credit = here.charge(bob)
    here.share(credit, 3)
    parts = [part_credit(credit, i) for i in range(3)]
    there.admit(bob, "demo", prepaid=parts[0]).release()
    here.admit(bob, "demo", prepaid=parts[1]).release()
    there.admit(bob, "demo", prepaid=parts[2]).release()
    for limiter, spent in ((here, parts[0]), (there, parts[1])):
        with pytest.raises(RetryLaterError, match="queries_per_minute=6"):  # each part ran once: a run pays now
            limiter.admit(bob, "demo", prepaid=spent)
    carol = _user("carol", queries_per_minute=6, query_burst=1)
    with pytest.raises(RetryLaterError, match="queries_per_minute=6"):
        there.admit(carol, "demo", prepaid=there.charge(carol).replace(".", "x", 1))  # malformed: no credit
    with pytest.raises(RetryLaterError, match="queries_per_minute=6"):
        here.admit(carol, "demo", prepaid=here.charge(bob))  # another principal's credit pays nothing for her


def test_a_prepared_statements_credit_pays_its_first_execution_on_whichever_replica_claims_it(store, shared):
    """Its handle carries the credit to every replica; one execution claims it, the others take tokens."""
    here, there = PrincipalLimiter(counter=shared(store)), PrincipalLimiter(counter=shared(store))
    bob = _user("bob", queries_per_minute=6, query_burst=2)
    prepared = here.charge(bob)
    execution = there.claim(bob, prepared)  # the first execution, on another replica: no token
    assert execution not in (None, prepared)
    there.share(execution, 2)
    for i in range(2):
        here.admit(bob, "demo", prepaid=part_credit(execution, i)).release()
    assert here.claim(bob, prepared) is not None  # claimed already: this execution takes the burst's second token
    with pytest.raises(RetryLaterError, match="queries_per_minute=6"):
        there.claim(bob, prepared)


def test_a_running_slot_outlives_its_lease_while_renewed_and_frees_once_its_replica_is_gone(store, shared):
    here, there = shared(store, lease_seconds=1.0), shared(store, lease_seconds=1.0)
    bob = _user("bob", max_concurrent_queries=1)
    PrincipalLimiter(counter=there).admit(bob, "demo")
    limiter = PrincipalLimiter(counter=here)
    time.sleep(1.6)  # past the first lease: renewed every third of it
    with pytest.raises(RetryLaterError, match="max_concurrent_queries=1"):
        limiter.admit(bob, "demo")
    there.close()  # the replica is gone without giving its slot back: its lease is no longer renewed
    started = time.monotonic()
    while True:
        try:
            limiter.admit(bob, "demo").release()
            break
        except RetryLaterError:
            assert time.monotonic() - started < 1.5
            time.sleep(0.05)


def test_a_principal_without_rate_or_concurrency_limits_never_reaches_the_catalog(store, shared):
    """Every catalog call checks a connection out of the limits' pool; SQLite also reports each statement it ran."""
    counts = shared(store)
    checkouts, statements = [], []
    event.listen(counts.rows.engine, "checkout", lambda *args: checkouts.append(1))
    if store.engine.dialect.name == "sqlite":
        event.listen(counts.rows.engine, "connect",
                     lambda connection, _record: connection.set_trace_callback(statements.append))
    limiter = PrincipalLimiter(counter=counts)
    carol = _user("carol", max_rows=10, max_query_seconds=60)
    for _ in range(20):
        limiter.admit(carol, "demo", prepaid=limiter.charge(carol)).release()
    assert checkouts == [] and statements == []
    bob = _user("bob", queries_per_minute=600, max_concurrent_queries=4)
    limiter.admit(bob, "demo", prepaid=limiter.charge(bob)).release()
    limiter.admit(bob, "demo", prepaid=limiter.charge(bob)).release()
    # Each query: a call for its token, one for its slot, one spending its credit, one giving the slot back.
    assert len(checkouts) == 8
    if statements:
        ran = [" ".join(re.match(r"(\w+) (?:INTO |FROM )?(\w+)", s).groups()) for s in statements
               if not s.startswith("PRAGMA")]
        assert ran[-4:] == ["UPDATE rate_buckets", "INSERT running_slots", "INSERT spent_credits",
                            "DELETE running_slots"], statements


def test_an_unreachable_catalog_is_counted_around_in_this_process_with_one_warning(caplog):
    """A PostgreSQL catalog URL on a port nothing listens on: every call fails at once (connection refused)."""
    dead = make_url(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test")
    counts = SharedCounts(CatalogLimitRows(limits_engine(dead)))
    limiter = PrincipalLimiter(counter=counts)
    bob = _user("bob", queries_per_minute=60, query_burst=2, max_concurrent_queries=1)
    with caplog.at_level(logging.WARNING, "nexus_flight"):
        slot = limiter.admit(bob, "demo", prepaid=limiter.charge(bob))
        with pytest.raises(RetryLaterError, match="max_concurrent_queries=1"):  # held here, counted here
            limiter.admit(bob, "demo")
        slot.release()
        limiter.admit(bob, "demo").release()  # the second token of the burst
        with pytest.raises(RetryLaterError, match="queries_per_minute=60"):
            limiter.admit(bob, "demo")
    counts.close()
    warnings = [r.getMessage() for r in caplog.records if "catalog did not answer" in r.getMessage()]
    assert len(warnings) == 3, warnings  # rate, concurrency and the credit: each once, however often it failed
    assert any("query rates are counted in this process meanwhile" in w for w in warnings)
    assert any("running queries are counted in this process meanwhile" in w for w in warnings)
    assert any("credits are spent in this process meanwhile" in w for w in warnings)


def test_a_locked_sqlite_catalog_is_waited_for_briefly_then_counted_around(sqlite_store, shared, monkeypatch):
    monkeypatch.setattr(limit_rows, "WAIT_SECONDS", 0.3)
    limiter = PrincipalLimiter(counter=shared(sqlite_store))
    bob = _user("bob", queries_per_minute=60, query_burst=5)
    limiter.charge(bob)  # the bucket exists
    blocker = sqlite_store.engine.raw_connection()
    try:
        blocker.cursor().execute("BEGIN EXCLUSIVE")  # another process writing for long, as far as the limiter can tell
        started = time.monotonic()
        limiter.charge(bob)
        assert 0.25 <= time.monotonic() - started < 2.0
    finally:
        blocker.rollback()
        blocker.close()
    assert limiter.counter.rows.take_token("user:bob", 1.0, 5, time.time()) == 0.0  # the catalog answers again
