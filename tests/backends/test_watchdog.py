"""The one thread that fires every query's deadline: order, cancellation, and a heap that stays small."""

from __future__ import annotations

import threading
import time

from nexus_flight.backends import watchdog as watchdog_module
from nexus_flight.backends.watchdog import Watchdog


def test_deadlines_fire_in_time_order_whatever_order_they_were_scheduled_in():
    dog = Watchdog()
    fired: list[str] = []
    done = threading.Event()
    dog.schedule(30, lambda: fired.append("late"))  # the thread sleeps towards this one first
    dog.schedule(0.2, lambda: (fired.append("second"), done.set()))
    dog.schedule(0.1, lambda: fired.append("first"))
    assert done.wait(5)
    assert fired == ["first", "second"]


def test_a_cancelled_deadline_never_fires_and_a_later_one_still_does():
    dog = Watchdog()
    fired = threading.Event()
    dog.schedule(0.05, lambda: fired.set()).cancel()
    assert not fired.wait(0.3)
    later = threading.Event()
    dog.schedule(0.05, later.set)
    assert later.wait(5)


def test_cancelled_deadlines_are_swept_out_of_the_heap(monkeypatch):
    """A busy server cancels nearly every timeout; the heap must not keep them all until they expire."""
    monkeypatch.setattr(watchdog_module, "_COMPACT_EVERY", 64)
    dog = Watchdog()
    for _ in range(1000):
        dog.schedule(300, lambda: None).cancel()
    kept = dog.schedule(300, lambda: None)
    assert len(dog._heap) <= 2 * 64
    assert any(entry[2] is kept for entry in dog._heap)
    started = time.monotonic()
    fired = threading.Event()
    dog.schedule(0.05, fired.set)
    assert fired.wait(5) and time.monotonic() - started < 2
