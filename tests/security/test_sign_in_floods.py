"""What keeps floods of bad credentials from slowing signed-in users: failures answered late, password checks at a
lower priority (their effect on other users' queries is measured in benchmarks/limits_bench.py)."""

from __future__ import annotations

import os
import threading
import time

import pyarrow.flight as flight
import pytest

from nexus_flight.core.settings import AuthSettings
from nexus_flight.server.security.sign_in_guard import FailureDelay, PasswordCheckGate
from tests.security.conftest import ALICE_PASSWORD, bearer, sign_in


def test_failed_sign_ins_are_answered_after_the_delay_and_good_ones_are_not(secure_gateway):
    secured = secure_gateway(auth=AuthSettings(enabled=True, failure_delay_seconds=1.0))
    client = secured.client()
    for attempt in (lambda: list(client.list_actions(bearer("garbage"))),
                    lambda: client.authenticate_basic_token("nobody", "wrong-password-1")):
        started = time.monotonic()
        with pytest.raises(flight.FlightUnauthenticatedError):
            attempt()
        assert time.monotonic() - started >= 1.0
    token = sign_in(client, "alice", ALICE_PASSWORD)
    started = time.monotonic()
    list(client.list_actions(bearer(token)))
    assert time.monotonic() - started < 1.0


def test_only_so_many_failures_are_held_at_once():
    delay = FailureDelay(2.0, at_once=2)
    threads = [threading.Thread(target=delay.wait) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    delay.wait()  # both places taken: answered at once
    assert time.monotonic() - started < 1.0
    for thread in threads:
        thread.join()


def test_password_checks_run_on_a_lower_priority_thread():
    gate = PasswordCheckGate()
    try:
        niceness = gate.check(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        assert niceness >= 10  # the gateway's other threads keep the process's own (0 here)
    finally:
        gate.close()
