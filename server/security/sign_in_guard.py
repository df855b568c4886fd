"""Slowing down and locking out repeated sign-in failures, and bounding the CPU password checks may take.

Failures are counted per user name (whether or not the user exists, so a lockout says nothing about existence) and
per client address, within a sliding window. Past ``*_throttle_after`` failures an attempt is refused without
checking anything until a delay has passed (1 s, doubling, up to ``max_delay_seconds``); past
``*_lockout_after`` the name or address is locked for ``lockout_seconds``. Attempts sent at once count as they
are checked (``SignInGuard.attempt``): a burst gets no more guesses past the lockout than one sent in turn. A refused
attempt costs no password hash, so a flood cannot turn the gateway's CPU against its users. Independently, at most
``password_checks_at_once`` argon2 checks run at once and ``password_checks_waiting`` more may wait; beyond that a
sign-in is told to retry (UNAVAILABLE), while calls with a token never wait for a password check. The checks run on
threads of their own at a lower scheduling priority (Linux ``nice``; argon2 releases the GIL): a flood of wrong
passwords from ever new names, which no counting can stop, then uses the CPU the signed-in users' queries leave
idle instead of taking half of it from them. And every failed sign-in is answered after ``failure_delay_seconds``
(while at most ``failure_delays_at_once`` wait, so a flood of connections cannot hold the server's threads): a
client retrying bad credentials in a loop sends a few attempts a second, not thousands.

Counting is per gateway process (replicas count separately); lockouts are written to the audit trail. A name or
address leaves memory once its last failure is older than the window, the lockout and the longest delay: from then
on it is as if it had never failed. Tracks are kept in the order of their last failure, so each call drops the
expired ones from the front and stops at the first live one (O(1) amortized, never a scan).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from nexus_flight.core.errors import RetryLaterError, UnauthenticatedError

#: At most this many names and addresses are tracked (the oldest are forgotten first), whatever a flood sends.
MAX_TRACKED = 100_000
#: At most this many sign-ins wait for others of their name or address to be decided (each holds a server thread:
#: as many as may wait for a password check, ``password_checks_waiting``'s default).
MAX_WAITING_ATTEMPTS = 32
_WAIT_FOR_CHECK_SECONDS = 10.0
#: The ``nice`` of the password-check threads: under contention they get about a tenth of a core's share.
_CHECK_NICENESS = 10

log = logging.getLogger("nexus_flight.auth")
T = TypeVar("T")


@dataclass
class _Track:
    failures: deque = field(default_factory=deque)
    blocked_until: float = 0.0
    locked: bool = False


@dataclass(frozen=True)
class Thresholds:
    """When failures of one kind of key (user or address) slow it down and lock it out."""

    throttle_after: int
    lockout_after: int


class SignInGuard:
    """Throttling and lockout per user name and per address."""

    def __init__(
        self,
        user: Thresholds,
        address: Thresholds,
        *,
        window_seconds: float = 900.0,
        max_delay_seconds: float = 30.0,
        lockout_seconds: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._thresholds = {"user": user, "address": address}
        self._window = window_seconds
        self._max_delay = max_delay_seconds
        self._lockout = lockout_seconds
        self._clock = clock
        #: How long after its last failure a track still matters: failures count for the window, and a lockout or
        #: a delay started by that failure ends within its own length.
        self._horizon = max(window_seconds, lockout_seconds, max_delay_seconds)
        self._tracks: OrderedDict[tuple[str, str], _Track] = OrderedDict()  # by last failure, oldest first
        #: Attempts being checked now, per name and address (``attempt``): as many as calls under way, no more.
        self._in_flight: dict[tuple[str, str], int] = {}
        self._lock = threading.RLock()
        #: Notified when an attempt is decided; attempts waiting their turn (``attempt``) look again.
        self._decided = threading.Condition(self._lock)
        self._waiting = 0

    def __len__(self) -> int:
        """How many names and addresses are tracked."""
        return len(self._tracks)

    def check(self, user: str, address: str | None) -> None:
        """Refuse the attempt when the user name or the address must wait.

        Raises:
            UnauthenticatedError: naming the wait (the same text whether or not the user exists).

        """
        now = self._clock()
        with self._lock:
            self._forget_expired(now)
            for key in self._keys(user, address):
                track = self._tracks.get(key)
                if track is not None and track.blocked_until > now:
                    wait = max(1, round(track.blocked_until - now))
                    what = "locked out" if track.locked else "slowed down"
                    raise UnauthenticatedError(
                        f"too many failed sign-ins: this {'user' if key[0] == 'user' else 'address'} is {what}; "
                        f"try again in {wait} s"
                    )

    @contextlib.contextmanager
    def attempt(self, user: str, address: str | None) -> Iterator[None]:
        """An attempt for the whole of its check: refused, or counted as in flight until it is decided.

        Without it, attempts sent at once all pass ``check`` before the first failure is counted (a password check
        waits its turn for seconds), so a burst got past the throttle and the lockout. While attempts of a name or
        address are in flight, another goes ahead only while every one of them failing would still stay under the
        lockout, and only one at a time once the name or address is being slowed down; the others wait for them
        to be decided (password checks run one after the other anyway), then meet ``check``. A failure is counted
        (``failed``) inside the attempt, before it ends.

        Raises:
            UnauthenticatedError: the name or the address must wait (as ``check``).
            RetryLaterError: too many attempts are waiting already, or the wait was too long.

        """
        keys = self._keys(user, address)
        deadline = self._clock() + _WAIT_FOR_CHECK_SECONDS
        with self._decided:
            while True:
                self.check(user, address)  # takes the lock again: a Condition's lock is reentrant here
                if all(self._may_go(key) for key in keys):
                    break
                left = deadline - self._clock()
                if left <= 0 or self._waiting >= MAX_WAITING_ATTEMPTS:
                    raise RetryLaterError("other sign-ins of this user or address are being checked; retry after 1 s",
                                          retry_after_seconds=1)
                self._waiting += 1
                try:
                    self._decided.wait(min(left, 1.0))
                finally:
                    self._waiting -= 1
            for key in keys:
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
        try:
            yield
        finally:
            with self._decided:
                for key in keys:
                    left_in_flight = self._in_flight.pop(key) - 1
                    if left_in_flight:
                        self._in_flight[key] = left_in_flight
                self._decided.notify_all()

    def _may_go(self, key: tuple[str, str]) -> bool:
        """Whether one more attempt of ``key`` may be checked now (the caller holds the lock)."""
        pending = self._in_flight.get(key, 0)
        if not pending:
            return True
        track, limits, now = self._tracks.get(key), self._thresholds[key[0]], self._clock()
        failures = sum(1 for t in track.failures if now - t <= self._window) if track else 0
        return failures < limits.throttle_after and failures + pending < limits.lockout_after

    def failed(self, user: str, address: str | None) -> list[str]:
        """Count a failure; return the keys (``user:alice``, ``address:10.0.0.7``) locked out by it."""
        now = self._clock()
        locked = []
        with self._lock:
            self._forget_expired(now)
            for key in self._keys(user, address):
                track = self._tracks.pop(key, None) or _Track()
                self._tracks[key] = track  # most recently used last: the oldest are evicted first
                while track.failures and now - track.failures[0] > self._window:
                    track.failures.popleft()
                track.failures.append(now)
                count, limits = len(track.failures), self._thresholds[key[0]]
                if count >= limits.lockout_after:
                    if not track.locked or track.blocked_until <= now:
                        locked.append(f"{key[0]}:{key[1]}")
                    track.locked, track.blocked_until = True, now + self._lockout
                elif count >= limits.throttle_after:
                    delay = min(self._max_delay, 2.0 ** (count - limits.throttle_after))
                    track.blocked_until = max(track.blocked_until, now + delay)
            while len(self._tracks) > MAX_TRACKED:
                self._tracks.popitem(last=False)
        return locked

    def succeeded(self, user: str) -> None:
        """Forget a user's failures after a successful sign-in (an address keeps its count until the window ends)."""
        with self._lock:
            self._tracks.pop(("user", user), None)

    def _forget_expired(self, now: float) -> None:
        """Drop the tracks whose last failure is past the horizon, from the front (the caller holds the lock)."""
        while self._tracks:
            track = next(iter(self._tracks.values()))
            if track.failures and now - track.failures[-1] <= self._horizon:
                return
            self._tracks.popitem(last=False)

    @staticmethod
    def _keys(user: str, address: str | None) -> list[tuple[str, str]]:
        keys = [("user", user)]
        if address:
            keys.append(("address", address))
        return keys


class PasswordCheckGate:
    """At most ``at_once`` password checks run at once, on low-priority threads; ``waiting`` more wait, others retry."""

    def __init__(self, at_once: int = 1, waiting: int = 32) -> None:
        self._room = threading.BoundedSemaphore(at_once + waiting)
        self._checks = concurrent.futures.ThreadPoolExecutor(
            max_workers=at_once, thread_name_prefix="password-check", initializer=_lower_priority)

    def check(self, verify: Callable[[], T]) -> T:
        """Run one password check (``verify``) on a check thread and return its answer.

        Raises:
            RetryLaterError: too many sign-ins are already being checked or waiting, or the wait was too long.

        """
        if not self._room.acquire(blocking=False):
            raise RetryLaterError("too many sign-ins are being checked at once; retry after 1 s", retry_after_seconds=1)
        try:
            future = self._checks.submit(verify)
            try:
                return future.result(timeout=_WAIT_FOR_CHECK_SECONDS)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise RetryLaterError("sign-in checks are backed up; retry after 1 s", retry_after_seconds=1) from None
        finally:
            self._room.release()

    def close(self) -> None:
        """Stop the check threads once the checks under way are done."""
        self._checks.shutdown(wait=False, cancel_futures=True)


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _CHECK_NICENESS)  # Linux: this thread only
    except (AttributeError, OSError) as exc:  # another system, or not allowed: checks run at normal priority
        log.debug("password checks run at normal priority: %s", exc)


class FailureDelay:
    """Answers failed sign-ins after ``seconds``, while at most ``at_once`` are held; the others at once."""

    def __init__(self, seconds: float, at_once: int = 64) -> None:
        self._seconds = seconds
        self._room = threading.BoundedSemaphore(max(1, at_once))

    def wait(self) -> None:
        """Hold the failing call for the delay (at once when too many are already held)."""
        if self._seconds <= 0 or not self._room.acquire(blocking=False):
            return
        try:
            time.sleep(self._seconds)
        finally:
            self._room.release()
