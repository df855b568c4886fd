"""Prepared statements and result tickets as this process holds them, with an idle expiry.

Their handles are signed and self-contained (``signed_handles.py``): any replica redeems them by re-planning what
they carry. These stores are the local cache that spares the process that made a handle that work: handles stay
valid across executions (ADBC and DBeaver re-execute cached handles; flightsql-dbapi keeps using the original
handle after binding), closing is idempotent (JDBC closes unknown handles), and a ticket can be redeemed more than
once (JDBC may redeem it again on a new channel). Each store holds at most ``max_total`` entries and
``max_per_owner`` per client (session): beyond either, a cache (``evicts=True``) forgets its least recently used
entry (already-read tickets first), which stays redeemable through its signature; a store that does not evict
refuses the new entry with an error naming the limit.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from nexus_flight.core.errors import LimitExceededError, NotFoundError
from nexus_flight.core.plan import QueryPlan
from nexus_flight.server.query.principal import Principal
from nexus_flight.server.query.service import QueryRun


@dataclass
class PreparedStatement:
    """A query planned once and executed any number of times with bound parameters."""

    handle: bytes
    session_key: str
    plan: QueryPlan
    dataset_schema: pa.Schema
    parameter_schema: pa.Schema
    parameters: list[tuple[Any, ...]] | None = None
    plan_timings: dict[str, float] = field(default_factory=dict)
    #: What a replica re-plans it from: the SQL as the client wrote it, and the session's catalog and dialect.
    origin: SignedOrigin | None = None
    #: The bound parameters as they arrived (signed into the handle a binding returns).
    parameter_table: pa.Table | None = None
    #: The rate credit preparing it took: its first execution spends it, later ones are charged anew.
    prepaid: str | None = None


@dataclass(frozen=True)
class SignedOrigin:
    """What a signed handle carries to re-plan its query on any replica."""

    sql: str
    catalog: str | None
    dialect: str | None
    user: str


@dataclass
class Ticket:
    """One executable result: the planned query, its bound parameters, who asked and the session it belongs to."""

    handle: bytes
    session_key: str
    principal: Principal
    plan: QueryPlan
    schema: pa.Schema
    parameters: list[tuple[Any, ...]] | None = None
    correlation_id: str | None = None
    #: How long validating and planning took (recorded with the execution in history).
    plan_timings: dict[str, float] = field(default_factory=dict)
    #: The caller's address (the query history records it; how it signed in is the principal's).
    client_address: str | None = None
    #: When the signed ticket stops being redeemable (``time.time()``).
    expires_at: float = float("inf")
    #: The rate credit the planning of its query took (its first run spends it), if any.
    prepaid: str | None = None
    #: The statement as the client wrote it (history records it; None: the plan's text).
    client_sql: str | None = None

    def run(self) -> QueryRun:
        """What the query service runs for this ticket (cancel finds it by the ticket's handle)."""
        return QueryRun(self.plan, self.schema, self.principal, self.parameters, self.correlation_id,
                        self.plan_timings, self.handle, self.client_address, self.prepaid, self.client_sql)


@dataclass
class _Entry:
    value: Any
    owner: str | None = None
    last_used: float = field(default_factory=time.monotonic)
    #: Served once already: the first to make room when a cap is reached.
    retired: bool = False


class HandleStore:
    """Objects behind random handles, forgotten after ``ttl_seconds`` unused, capped in number.

    Entries are kept in order of last use (overall and per owner), so expiring and evicting look only at the
    oldest entries: a client at its cap pays O(1) per new handle, not a scan of everything held.

    Args:
        kind: What the store holds, for messages ("ticket").
        ttl_seconds: Idle time after which an entry is forgotten.
        max_total: Most entries at once, over every client.
        max_per_owner: Most entries at once for one client.
        limit_names: The configuration names of the two caps, for messages.
        hint: What a client can do when it hits a cap.
        evicts: At a cap, forget the least recently used entry instead of refusing (a cache of signed handles).

    """

    def __init__(
        self,
        kind: str,
        ttl_seconds: float,
        max_total: int | None = None,
        max_per_owner: int | None = None,
        limit_names: tuple[str, str] = ("max_total", "max_per_client"),
        hint: str = "",
        evicts: bool = False,
    ) -> None:
        self._kind = kind
        self._ttl = ttl_seconds
        self._max_total = max_total
        self._max_per_owner = max_per_owner
        self._limit_names = limit_names
        self._hint = hint
        self._evicts = evicts
        #: Every entry, least recently used first.
        self._items: OrderedDict[bytes, _Entry] = OrderedDict()
        #: Each owner's handles, least recently used first.
        self._owned: dict[str, OrderedDict[bytes, None]] = {}
        #: Retired handles, overall and per owner, least recently used first (eviction takes these first).
        self._retired: OrderedDict[bytes, None] = OrderedDict()
        self._retired_of: dict[str, OrderedDict[bytes, None]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def new_handle() -> bytes:
        """A random, unguessable handle."""
        return secrets.token_bytes(16)

    def put(self, handle: bytes, value: Any, owner: str | None = None) -> None:
        """Store ``value`` under ``handle`` for ``owner`` (the client's session).

        Raises:
            LimitExceededError: the store, or the owner's share of it, is full.

        """
        with self._lock:
            self._expire()
            self._forget(handle)
            if not self._room(owner):
                while not self._room(owner) and self._evict(owner, retired_only=True):
                    pass
                while self._evicts and not self._room(owner) and self._evict(owner, retired_only=False):
                    pass
                problem = self._room(owner, explain=True)
                if problem:
                    raise LimitExceededError(problem)
            self._items[handle] = _Entry(value, owner)
            if owner is not None:
                self._owned.setdefault(owner, OrderedDict())[handle] = None

    def _owner_full(self, owner: str | None) -> bool:
        return (owner is not None and self._max_per_owner is not None
                and len(self._owned.get(owner, ())) >= self._max_per_owner)

    def _room(self, owner: str | None, explain: bool = False) -> bool | str:
        """True (or "" with ``explain``) when one more entry fits; else False (or the refusal's text)."""
        if self._max_total is not None and len(self._items) >= self._max_total:
            limit, name, scope = self._max_total, self._limit_names[0], "open on this server"
        elif self._owner_full(owner):
            limit, name, scope = self._max_per_owner, self._limit_names[1], "open for this client"
        else:
            return "" if explain else True
        if not explain:
            return False
        return (f"too many {self._kind}s {scope}: the limit is {limit} ({name}={limit}); {self._hint}"
                f"unused ones are forgotten after {self._ttl:g} s")

    def retire(self, handle: bytes) -> None:
        """Mark ``handle`` as served: it stays usable, but gives way first when a cap is reached.

        A client that runs a query and reads its result never asks for that ticket again in practice, so a busy
        client is not refused for results it has already read; a ticket not yet read is never evicted.
        """
        with self._lock:
            entry = self._items.get(handle)
            if entry is not None and not entry.retired:
                entry.retired = True
                self._retired[handle] = None
                if entry.owner is not None:
                    self._retired_of.setdefault(entry.owner, OrderedDict())[handle] = None

    def _evict(self, owner: str | None, retired_only: bool) -> bool:
        """Forget the least recently used (retired) entry, the owner's own when its share is full; False if none."""
        if self._owner_full(owner):
            assert owner is not None
            order = self._retired_of.get(owner) if retired_only else self._owned.get(owner)
        else:
            order = self._retired if retired_only else self._items
        if not order:
            return False
        self._forget(next(iter(order)))
        return True

    def get(self, handle: bytes) -> Any:
        """The object behind ``handle``.

        Raises:
            NotFoundError: unknown or expired handle.

        """
        value = self.peek(handle)
        if value is None:
            raise NotFoundError(f"unknown or expired {self._kind} handle")
        return value

    def peek(self, handle: bytes) -> Any | None:
        """The object behind ``handle`` (its idle time starts again), or None when it is not held here."""
        with self._lock:
            self._expire()
            entry = self._items.get(handle)
            if entry is None:
                return None
            entry.last_used = time.monotonic()
            self._items.move_to_end(handle)
            if entry.owner is not None:
                self._owned[entry.owner].move_to_end(handle)
                if entry.retired:
                    self._retired_of[entry.owner].move_to_end(handle)
            if entry.retired:
                self._retired.move_to_end(handle)
            return entry.value

    def pop(self, handle: bytes) -> Any | None:
        """Remove and return the object behind ``handle``; None when there is none (closing is idempotent)."""
        with self._lock:
            entry = self._forget(handle)
            return entry.value if entry else None

    def _forget(self, handle: bytes) -> _Entry | None:
        entry = self._items.pop(handle, None)
        if entry is None:
            return None
        if entry.retired:
            self._retired.pop(handle, None)
        if entry.owner is not None:
            for orders in (self._owned, self._retired_of):
                order = orders.get(entry.owner)
                if order is not None:
                    order.pop(handle, None)
                    if not order:
                        del orders[entry.owner]
        return entry

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _expire(self) -> None:
        """Forget entries idle longer than the TTL: the oldest come first, so this stops at the first fresh one."""
        now = time.monotonic()
        while self._items:
            handle, entry = next(iter(self._items.items()))
            if now - entry.last_used <= self._ttl:
                return
            self._forget(handle)


@dataclass(frozen=True)
class HandleLimits:
    """How many tickets and prepared statements this process caches, in total and per client (``[server]``)."""

    max_tickets: int = 10_000
    max_tickets_per_client: int = 1_000
    max_prepared_statements: int = 10_000
    max_prepared_statements_per_client: int = 1_000

    def ticket_store(self, ttl_seconds: float) -> HandleStore:
        """The store of result tickets."""
        return HandleStore("ticket", ttl_seconds, self.max_tickets, self.max_tickets_per_client,
                           ("max_tickets", "max_tickets_per_client"), "fetch the results of earlier queries; ",
                           evicts=True)

    def prepared_store(self, ttl_seconds: float) -> HandleStore:
        """The store of prepared statements."""
        return HandleStore(
            "prepared statement", ttl_seconds, self.max_prepared_statements, self.max_prepared_statements_per_client,
            ("max_prepared_statements", "max_prepared_statements_per_client"),
            "close prepared statements no longer needed (ClosePreparedStatement); ", evicts=True,
        )
