"""What the gateway knows of users, roles, grants, API keys and revoked tokens: a snapshot of the catalog, kept fresh.

Every call is authenticated against this snapshot (a dict lookup), never against the catalog's tables. Before
each call :meth:`IdentityCache.current` asks the catalog's security generation whether anything changed (on a
SQLite catalog one ``PRAGMA data_version``, microseconds; on PostgreSQL what the last notification said, a memory
read) and reloads the snapshot at once when it did: a revocation, a disabled user or a new key made on another
replica or with the CLI takes effect on the very next call (on PostgreSQL, once its notification arrived). A
background thread asks the same every ``refresh_seconds`` and reloads it on each of those ticks where the catalog
cannot tell (another database, or the PostgreSQL listener down), which then alone carries changes; where it can, the
thread reloads only when the generation moved, and in any case every ``_FULL_RELOAD_EVERY`` ticks. (A whole reload
reads every user, role, key, grant and policy: 1.7 ms of the interpreter with two users, more with each, on every
replica every 2 s, in the middle of its queries.)
The same thread writes, coalesced, when users last signed in and keys were last used.
"""

from __future__ import annotations

import itertools
import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nexus_flight.catalog.api_keys import ApiKeyRow, key_rows, touch_keys
from nexus_flight.catalog.grants import GrantInfo, list_grants
from nexus_flight.catalog.models import utcnow
from nexus_flight.catalog.policies import PolicyInfo, list_policies
from nexus_flight.catalog.security_generation import read_generation, watch_generation
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.tokens import (
    extend_sign_ins,
    purge_revocations,
    purge_sign_ins,
    record_sign_in,
    revoked_token_ids,
)
from nexus_flight.catalog.users import SignInRecord, record_login, sign_in_records
from nexus_flight.core.throttled_log import ThrottledLog

if TYPE_CHECKING:
    from nexus_flight.server.security.gateway_tokens import TokenClaims

log = logging.getLogger("nexus_flight.auth")
_WARNINGS = ThrottledLog(log)  # a catalog outage would log on every call and every tick

_PURGE_EVERY = 300  # refreshes between purges of expired revocations
# Refreshes between whole reloads while the generation can tell of every change (``current`` then reloads when it
# moves): a safety net for rows written behind the gateway's back, not the path changes take.
_FULL_RELOAD_EVERY = 150


class IdentityCache:
    """A refreshed snapshot of the catalog's users, role limits, API keys, revoked sign-ins and policies."""

    def __init__(self, store: CatalogStore, refresh_seconds: float = 2.0) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self.users: dict[str, SignInRecord] = {}
        self.role_limits: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, ApiKeyRow] = {}
        #: role -> its grants
        self.grants: dict[str, tuple[GrantInfo, ...]] = {}
        #: Row filters and column masks.
        self.policies: tuple[PolicyInfo, ...] = ()
        self._revoked: frozenset[str] = frozenset()
        self._revoked_here: set[str] = set()
        self._logins: dict[str, datetime] = {}
        self._key_uses: dict[str, datetime] = {}
        self._sign_ins: dict[str, TokenClaims] = {}
        self._refreshed: dict[str, datetime] = {}
        self._pending_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._refreshes = 0
        self._generation: int | None = None
        self._refresh_lock = threading.Lock()
        # Moves whenever what a decision about a caller rests on may have changed: each reload, each revocation
        # made here (``version``: decisions remembered under an older one are taken again).
        self._versions = itertools.count()
        self.version = next(self._versions)
        self._watch = watch_generation(store)
        self.refresh()

    def current(self) -> None:
        """Reload the snapshot now if the catalog's security generation moved since it was read (before a call)."""
        generation = self._watch.generation()
        if generation is not None and generation != self._generation:
            with self._refresh_lock:  # calls arriving meanwhile wait for the one reload, then see it
                if generation != self._generation:
                    try:
                        self._refresh()
                    except Exception as exc:  # the catalog is down: the call goes on with the last snapshot
                        _WARNINGS.warning("reload", "could not reload users and keys from the catalog: %s",
                                          type(exc).__name__)

    def refresh(self) -> None:
        """Read users, roles, keys and revocations from the catalog now."""
        with self._refresh_lock:
            self._refresh()

    def _refresh(self) -> None:
        # The generation first: a change committed while the tables are read moves it past this value again.
        generation = read_generation(self.store)
        users, roles = sign_in_records(self.store)
        keys, revoked = key_rows(self.store), revoked_token_ids(self.store)
        grants: dict[str, list[GrantInfo]] = {}
        for grant in list_grants(self.store):
            grants.setdefault(grant.role, []).append(grant)
        self.users, self.role_limits, self.keys = users, roles, keys
        self.grants = {role: tuple(found) for role, found in grants.items()}
        self.policies = tuple(list_policies(self.store))
        with self._pending_lock:
            self._revoked = frozenset(revoked | self._revoked_here)
            self._revoked_here -= revoked  # once the catalog has them, the local copy is not needed
        self._generation = generation
        self.version = next(self._versions)

    def is_revoked(self, token_id: str) -> bool:
        """Whether a sign-in was revoked."""
        return token_id in self._revoked

    def revoked_here(self, token_id: str) -> None:
        """A revocation made through this gateway: effective at once, before the next refresh."""
        with self._pending_lock:
            self._revoked_here.add(token_id)
            self._revoked = self._revoked | {token_id}
        self.version = next(self._versions)

    def note_login(self, user: str) -> None:
        """Remember (written later) that a user signed in."""
        with self._pending_lock:
            self._logins[user] = utcnow()

    def note_sign_in(self, claims: TokenClaims) -> None:
        """Remember (written later) a new sign-in, so that its tokens can be listed and revoked."""
        with self._pending_lock:
            self._sign_ins[claims.session_id] = claims

    def note_refresh(self, session_id: str, expires_at: float) -> None:
        """Remember (written later) that a sign-in's tokens now run until ``expires_at``."""
        with self._pending_lock:
            self._refreshed[session_id] = datetime.fromtimestamp(expires_at, UTC)

    def write_pending(self) -> None:
        """Write now what is pending (sign-ins, refreshes, last uses): before listing live tokens."""
        self._write_pending()

    def note_key_use(self, key_id: str) -> None:
        """Remember (written later) that a key was used."""
        with self._pending_lock:
            self._key_uses[key_id] = utcnow()

    # -- background ------------------------------------------------------------------------------------------

    def start(self) -> IdentityCache:
        """Refresh in the background until ``stop``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="identity-refresh", daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """Refresh now (after a change made here)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop refreshing and write what is pending."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._write_pending()
        self._watch.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.refresh_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._write_pending()
                self._refreshes += 1
                if self._watch.generation() is None or self._refreshes % _FULL_RELOAD_EVERY == 0:
                    self.refresh()
                else:
                    self.current()
                if self._refreshes % _PURGE_EVERY == 0:
                    purge_revocations(self.store)
                    purge_sign_ins(self.store)
            except Exception as exc:  # the catalog is down: keep the last snapshot and say so
                _WARNINGS.warning("refresh", "could not refresh users and keys from the catalog: %s",
                                  type(exc).__name__)

    def _write_pending(self) -> None:
        with self._pending_lock:
            logins, self._logins = self._logins, {}
            uses, self._key_uses = self._key_uses, {}
            sign_ins, self._sign_ins = self._sign_ins, {}
            refreshed, self._refreshed = self._refreshed, {}
        for claims in sign_ins.values():
            issued, expires = (datetime.fromtimestamp(t, UTC) for t in (claims.issued_at, claims.expires_at))
            record_sign_in(self.store, claims.session_id, claims.user, claims.method, issued, expires,
                           key_id=claims.key_id)
        if refreshed:
            extend_sign_ins(self.store, refreshed)
        for user in logins:
            record_login(self.store, user)
        if uses:
            touch_keys(self.store, uses)
