"""The in-process session store: sessions live while in use and leave after their idle time, cheapest first."""

from __future__ import annotations

from nexus_flight.server.query import session as session_module
from nexus_flight.server.query.session import SessionStore


class Clock:
    """Stands in for ``time.monotonic`` so idle times pass without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_leaves_after_its_idle_time_and_each_use_starts_it_again(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(session_module.time, "monotonic", clock)
    store = SessionStore(idle_seconds=60)
    first = store.get("peer:a")
    for key in ("peer:b", "peer:c"):
        clock.now += 20
        store.get(key)
    clock.now += 30  # a: 70 s idle, b: 50 s, c: 30 s
    store.get("peer:b")  # used again: its idle time starts over, and the lookup expired a
    assert store.peek("peer:a") is None
    assert store.peek("peer:b") is not None and store.peek("peer:c") is not None
    assert store.get("peer:a") is not first  # a new session under the old key

    clock.now += 45  # c: 75 s idle, b: 45 s, a: 45 s
    store.get("peer:a")
    assert store.peek("peer:c") is None and store.peek("peer:b") is not None


def test_expiring_looks_at_the_stale_sessions_only(monkeypatch):
    """A client opening a connection per query leaves a session per connection; a call must not visit them all."""
    clock = Clock()
    monkeypatch.setattr(session_module.time, "monotonic", clock)
    store = SessionStore(idle_seconds=3600)
    for n in range(20_000):
        store.get(f"peer:ipv4:127.0.0.1:{n}")
    reads = 0

    def last_used(session):
        nonlocal reads
        reads += 1
        return session.__dict__["last_used"]

    def set_last_used(session, value):
        session.__dict__["last_used"] = value

    monkeypatch.setattr(session_module.Session, "last_used", property(last_used, set_last_used), raising=False)
    store.get("peer:ipv4:127.0.0.1:7")
    assert reads <= 2  # the oldest session, to see that nothing is stale yet
    clock.now += 3601
    store.get("peer:fresh")
    assert len(store._sessions) == 1  # every one of them had gone stale
