"""Moments in a served query's life that a test holds it at, so that a cancel or a drain lands exactly there."""

from __future__ import annotations

import threading

import pyarrow.flight as flight


def hold_after_admission(gateway) -> tuple[threading.Event, threading.Event]:
    """Hold the next query's thread once admitted (the engine took its instance), before its stream is registered.

    Returns ``(held, release)``: ``held`` is set when a thread waits there; it goes on at ``release.set()`` (or
    after 10 s).
    """
    budget = gateway.service.memory_budget
    settle, held, release = budget.settle, threading.Event(), threading.Event()

    def late_settle() -> None:
        held.set()
        release.wait(10)
        settle()

    budget.settle = late_settle
    return held, release


def read_ticket_in_background(client: flight.FlightClient, ticket: flight.Ticket,
                              ) -> tuple[threading.Thread, dict]:
    """Read a ticket's whole result on a thread: its outcome gets ``table`` or ``error`` (a Flight error)."""
    outcome: dict = {}

    def fetch() -> None:
        try:
            outcome["table"] = client.do_get(ticket).read_all()
        except flight.FlightError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=fetch)
    thread.start()
    return thread, outcome
