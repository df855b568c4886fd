"""What the gateway remembers of sign-ins leaves once it no longer matters, not when a cap is reached.

A failed sign-in's track (per user name) is forgotten once its failures are older than the lockout window, and a
verified token once it expires: through a real gateway and pyarrow.flight, with short windows and token lives;
and the sweeps' own bookkeeping on a fake clock (each call costs O(1) amortized, never a scan of everything).
"""

from __future__ import annotations

import time

import pyarrow.flight as flight
import pytest

from nexus_flight.core.settings import AuthSettings, LockoutSettings
from nexus_flight.server.security.expiring import _MIN_CALLS_BETWEEN_SWEEPS, ExpiringMap
from nexus_flight.server.security.sign_in_guard import SignInGuard, Thresholds
from tests.security.conftest import ALICE_PASSWORD, bearer, sign_in


def _fail(client: flight.FlightClient, name: str) -> None:
    with pytest.raises(flight.FlightUnauthenticatedError):
        client.authenticate_basic_token(name, "not-the-password-1")


def test_failed_sign_ins_are_forgotten_once_past_the_window(secure_gateway):
    lockout = LockoutSettings(window_seconds=0.5, lockout_seconds=0.5, max_delay_seconds=0.25)
    secured = secure_gateway(auth=AuthSettings(enabled=True, lockout=lockout, failure_delay_seconds=0))
    guard = secured.security.authenticator.guard
    now = [0.0]
    guard._clock = lambda: now[0]  # the guard's own time: a loaded machine's slow sign-ins do not age the tracks
    client = secured.client()
    for number in range(20):
        _fail(client, f"nobody-{number}")
    assert len(guard) == 20
    now[0] = 0.6
    _fail(client, "one-more")  # the next attempt sweeps the tracks that no longer matter
    assert len(guard) == 1
    client.close()


def test_a_track_stays_while_its_lockout_lasts_and_leaves_after():
    now = [0.0]
    guard = SignInGuard(Thresholds(2, 3), Thresholds(100, 100), window_seconds=10, lockout_seconds=60,
                        max_delay_seconds=5, clock=lambda: now[0])
    for _ in range(3):
        guard.failed("bob", None)
    now[0] = 0.75
    guard.failed("carol", None)
    now[0] = 30.0  # past the window, inside bob's lockout: bob is still locked
    with pytest.raises(Exception, match="locked out"):
        guard.check("bob", None)
    guard.check("carol", None)
    # Tracks leave in the order of their last failure, at the longest any failure matters (here the lockout).
    assert len(guard) == 2
    now[0] = 60.5
    guard.check("dave", None)
    assert len(guard) == 1  # bob's last failure was first
    now[0] = 61.0
    guard.check("bob", None)
    assert len(guard) == 0


def test_verified_tokens_are_forgotten_once_expired(secure_gateway):
    secured = secure_gateway()
    authenticator = secured.security.authenticator
    client = secured.client()
    short = [authenticator.issue_service_token("bob", 1)[0] for _ in range(20)]
    for token in short:
        list(client.list_actions(bearer(token)))
    alice = sign_in(client, "alice", ALICE_PASSWORD)
    list(client.list_actions(bearer(alice)))
    assert len(authenticator._verified) >= 21
    time.sleep(1.2)
    for _ in range(_MIN_CALLS_BETWEEN_SWEEPS + 1):
        list(client.list_actions(bearer(alice)))
    assert len(authenticator._verified) == 1
    client.close()


def test_an_expiring_map_sweeps_once_per_as_many_calls_as_it_held():
    now = [0.0]
    cache: ExpiringMap[int, float] = ExpiringMap(lambda expires: expires, cap=10_000, clock=lambda: now[0])
    for key in range(1000):
        cache.put(key, 10.0 if key % 2 else 1000.0)
    now[0] = 20.0
    assert cache.get(1) is None and cache.get(2) == 1000.0  # expired entries are never answered
    # The sweeps so far passed before the odd keys expired; the next one comes within as many calls as the map
    # held at the last sweep, not on each call.
    calls = 0
    while len(cache) > 500:
        cache.get(0)
        calls += 1
    assert len(cache) == 500 and calls <= 1000
    now[0] = 2000.0  # every entry expired: gone after as many calls as the map kept (500), not before
    for _ in range(499):
        assert cache.get(0) is None
    assert len(cache) == 500
    cache.get(0)
    assert len(cache) == 0
