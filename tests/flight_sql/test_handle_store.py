"""The handle store's caps, eviction order and expiry (the cache behind tickets and prepared statements)."""

from __future__ import annotations

import time

import pytest

from nexus_flight.core.errors import LimitExceededError, NotFoundError
from nexus_flight.server.flight.handles import HandleStore


def _store(**caps) -> HandleStore:
    return HandleStore("ticket", 60.0, evicts=True, **caps)


def test_a_client_at_its_cap_loses_its_own_least_recently_used_served_handle_first():
    store = _store(max_total=100, max_per_owner=3)
    for name in (b"a", b"b", b"c"):
        store.put(name, name.decode(), owner="alice")
    store.put(b"z", "z", owner="bob")
    store.retire(b"b")
    store.retire(b"c")
    store.peek(b"b")  # used again: c is now the least recently used served one
    store.put(b"d", "d", owner="alice")
    assert store.peek(b"c") is None
    assert [store.peek(h) for h in (b"a", b"b", b"d", b"z")] == ["a", "b", "d", "z"]
    store.put(b"e", "e", owner="alice")  # the one served handle left goes next, though a was used earlier
    assert store.peek(b"b") is None and store.peek(b"a") == "a"


def test_without_served_handles_the_least_recently_used_goes_and_other_clients_keep_theirs():
    store = _store(max_total=4, max_per_owner=3)
    store.put(b"x", "x", owner="bob")
    for name in (b"a", b"b", b"c"):
        store.put(name, name.decode(), owner="alice")
    store.peek(b"a")
    store.put(b"d", "d", owner="alice")  # alice's share is full: her least recently used (b) goes
    assert store.peek(b"b") is None
    assert store.peek(b"x") == "x"
    store.put(b"y", "y", owner="bob")  # the store is full: the least recently used of all goes (c)
    assert store.peek(b"c") is None
    assert len(store) == 4


def test_a_store_that_does_not_evict_refuses_with_the_limit_named():
    store = HandleStore("prepared statement", 60.0, 10, 2, ("max_prepared", "max_prepared_per_client"))
    store.put(b"a", 1, owner="alice")
    store.put(b"b", 2, owner="alice")
    with pytest.raises(LimitExceededError, match="max_prepared_per_client=2"):
        store.put(b"c", 3, owner="alice")
    store.put(b"b", 4, owner="alice")  # replacing a handle takes no extra room
    assert store.pop(b"b") == 4 and store.pop(b"b") is None  # closing twice is fine
    store.put(b"c", 3, owner="alice")


def test_idle_entries_expire_and_used_ones_stay():
    store = HandleStore("ticket", 0.2)
    store.put(b"old", 1)
    store.put(b"used", 2)
    time.sleep(0.12)
    store.peek(b"used")
    time.sleep(0.12)
    assert store.peek(b"used") == 2
    with pytest.raises(NotFoundError, match="unknown or expired ticket handle"):
        store.get(b"old")
    assert len(store) == 1
