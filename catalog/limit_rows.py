"""Principals' rate tokens, running and queued queries and spent credits in the catalog: one budget for all replicas.

- A token is taken with one conditional ``UPDATE`` that refills the bucket and takes the token together, and only
  where a token is there: concurrent replicas never take the same token (a row lock on PostgreSQL, which re-checks
  the condition on the row another transaction just changed; SQLite's single writer). A refusal writes nothing.
- A slot is one row, inserted by an ``INSERT … SELECT`` whose condition counts the principal's live rows. SQLite
  runs a statement that writes under its database write lock from its first read, so the count and the insert are
  one step; PostgreSQL first takes a transaction-scoped advisory lock on the principal (its counts could otherwise
  read a snapshot older than a concurrent insert). A query waiting for a slot is a row of ``queued_queries``,
  inserted the same way under the principal's count of waiting rows.
- A prepaid credit (the token a query's planning took, carried by its signed ticket) is spent by inserting its id
  into ``spent_credits``; the primary key lets one insert win, wherever the ticket is redeemed.

These run on an engine of their own with short waits (``WAIT_SECONDS`` for a lock, a connection or a statement), so
a slow or unreachable catalog fails a call quickly and the caller counts in its own process meanwhile
(``server/query/shared_limit_counts.py``). Times are seconds since the epoch, from the calling replica's clock.
SQLite and PostgreSQL are the catalogs these are proven on (``tests/catalog/test_shared_limits.py``); another
database gets SQLite's single statements, whose count and insert its isolation may not keep together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import (
    URL,
    Engine,
    Float,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
)
from sqlalchemy import update as update_rows
from sqlalchemy.dialects import postgresql, sqlite

from nexus_flight.catalog.models import QueuedQuery, RateBucket, RunningSlot, SpentCredit

#: How long a limit's catalog call may wait for a lock, a connection or its statement before it fails.
WAIT_SECONDS = 2.0
#: The retry time given when a bucket changed under three attempts in a row (replicas racing for it).
_CONTENDED_SECONDS = 0.1
#: Rate buckets untouched this long are deleted (full again for any rate above a burst a day).
_IDLE_BUCKET_SECONDS = 86_400.0
#: The advisory lock classes of slot admissions and of queue entries (PostgreSQL's two-key form; the second key
#: is the principal's).
_SLOT_LOCK_CLASS = 0x4E46_4C53  # "NFLS"
_QUEUE_LOCK_CLASS = 0x4E46_4C51  # "NFLQ"

_now = bindparam("now", type_=Float)
_elapsed = case((_now > RateBucket.counted_at, _now - RateBucket.counted_at), else_=0.0)
_refilled = RateBucket.tokens + _elapsed * bindparam("per_second", type_=Float)
_capacity = bindparam("capacity", type_=Float)
_level = case((_refilled > _capacity, _capacity), else_=_refilled)
#: Refill and take one token, where one is there (another replica's later clock is never moved back).
_TAKE = (update_rows(RateBucket)
         .where(RateBucket.accounting_key == bindparam("key"), _level >= 1.0)
         .values(tokens=_level - 1.0,
                 counted_at=case((_now > RateBucket.counted_at, _now), else_=RateBucket.counted_at)))
_LEVEL = select(_level).where(RateBucket.accounting_key == bindparam("key"))

_live = and_(RunningSlot.accounting_key == bindparam("key"), RunningSlot.expires_at > _now)
_running = select(func.count()).select_from(RunningSlot).where(_live).scalar_subquery()
_running_on = (select(func.count()).select_from(RunningSlot)
               .where(_live, RunningSlot.source == bindparam("source")).scalar_subquery())
_COUNTS = select(_running, _running_on)
_RELEASE = delete(RunningSlot).where(RunningSlot.id == bindparam("id"))


def _slot_insert(total: bool, per_source: bool):
    row = select(bindparam("id"), bindparam("key"), bindparam("source"), bindparam("replica"), _now,
                 bindparam("expires", type_=Float))
    if total:
        row = row.where(_running < bindparam("total"))
    if per_source:
        row = row.where(_running_on < bindparam("per_source"))
    names = ["id", "accounting_key", "source", "replica", "started_at", "expires_at"]
    return insert(RunningSlot).from_select(names, row)


#: The slot insert for each combination of limits (total, per source).
_HOLD = {(t, s): _slot_insert(t, s) for t in (False, True) for s in (False, True)}

_queued = (select(func.count()).select_from(QueuedQuery)
           .where(QueuedQuery.accounting_key == bindparam("key"), QueuedQuery.expires_at > _now).scalar_subquery())
#: A waiting query's row, only while fewer than ``most`` of the principal's wait.
_QUEUE = insert(QueuedQuery).from_select(
    ["id", "accounting_key", "replica", "started_at", "expires_at"],
    select(bindparam("id"), bindparam("key"), bindparam("replica"), _now, bindparam("expires", type_=Float))
    .where(_queued < bindparam("most")))
_DEQUEUE = delete(QueuedQuery).where(QueuedQuery.id == bindparam("id"))


def stored_key(key: str) -> str:
    """How an accounting key is stored: as itself, or as its SHA-256 when longer than 200 characters."""
    return key if len(key) <= 200 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


#: Each statement commits on its own (each is atomic alone), so a pooled connection has nothing to roll back.
_EACH_STATEMENT_COMMITS = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None, "pool_timeout": WAIT_SECONDS}


def limits_engine(url: URL) -> Engine:
    """An engine on the catalog's database whose calls wait at most ``WAIT_SECONDS`` (no ping before each use)."""
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, **_EACH_STATEMENT_COMMITS,
                               connect_args={"check_same_thread": False, "timeout": WAIT_SECONDS})

        @event.listens_for(engine, "connect")
        def _no_sync_per_commit(dbapi_connection, _record) -> None:
            # These connections' commits skip the fsync (the WAL is synced at checkpoints): a counter lost to a
            # power cut costs nothing, and a fsync per query would (about 0.5 ms).
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        return engine
    if url.get_backend_name() != "postgresql":
        return create_engine(url, **_EACH_STATEMENT_COMMITS)
    engine = create_engine(url, **_EACH_STATEMENT_COMMITS,
                           connect_args={"connect_timeout": max(1, round(WAIT_SECONDS))})
    wait_ms = int(WAIT_SECONDS * 1000)

    @event.listens_for(engine, "connect")
    def _short_waits(dbapi_connection, _record) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {wait_ms}")
            cursor.execute(f"SET lock_timeout = {wait_ms}")
        dbapi_connection.commit()

    return engine


class _Compiled:
    """A statement compiled once for a dialect and run on a DBAPI cursor.

    SQLAlchemy's own work per execution (about 0.1–0.3 ms here) is several times SQLite's for these statements, and
    the token, the slot and its release are paid on every query of a limited principal. Their parameters are plain
    text and floats (no bind processing).
    """

    def __init__(self, statement, dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self._defaults = {name: bind.value for name, bind in compiled.binds.items()}
        self._order = compiled.positiontup  # None for a named parameter style

    def run(self, cursor, values: dict) -> int:
        """Execute with ``values`` (by bind name); return the rows it changed."""
        merged = {**self._defaults, **values}
        cursor.execute(self.sql, [merged[n] for n in self._order] if self._order is not None else merged)
        return cursor.rowcount

    def one(self, cursor, values: dict) -> tuple | None:
        """Execute with ``values``; return the first row."""
        self.run(cursor, values)
        return cursor.fetchone()


class CatalogLimitRows:
    """``SharedLimitRows`` (``server/query/shared_limit_counts.py``) over ``rate_buckets`` and ``running_slots``.

    Every call raises what the database raises.

    Args:
        engine: On a catalog at the current schema version (``limits_engine(store.engine.url)``): its connections
            commit each statement on its own (``AUTOCOMMIT``).

    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        dialect = postgresql if self._postgres else sqlite
        first_token = (dialect.insert(RateBucket)
                       .values(accounting_key=bindparam("key"), tokens=_capacity - 1.0, counted_at=_now)
                       .on_conflict_do_nothing(index_elements=["accounting_key"]))
        spend = (dialect.insert(SpentCredit)
                 .values(id=bindparam("id"), expires_at=bindparam("expires", type_=Float))
                 .on_conflict_do_nothing(index_elements=["id"]))
        compiled = {statement: _Compiled(statement, engine.dialect)
                    for statement in (_TAKE, _LEVEL, first_token, _COUNTS, _RELEASE, *_HOLD.values(), spend, _QUEUE,
                                      _DEQUEUE)}
        self._take, self._level, self._first_token = compiled[_TAKE], compiled[_LEVEL], compiled[first_token]
        self._counts, self._release = compiled[_COUNTS], compiled[_RELEASE]
        self._hold = {limits: compiled[statement] for limits, statement in _HOLD.items()}
        self._spend, self._queue, self._dequeue = compiled[spend], compiled[_QUEUE], compiled[_DEQUEUE]

    @contextmanager
    def _cursor(self) -> Iterator:
        """A cursor on a pooled connection; a connection that failed is discarded rather than pooled again."""
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
        except BaseException:
            connection.invalidate()  # a transaction left open or a broken connection never serves again
            raise
        finally:
            connection.close()

    def take_token(self, key: str, per_second: float, capacity: float, now: float) -> float:
        """Take one of ``key``'s tokens: 0.0 when taken, else the seconds until the next one (nothing written)."""
        values = {"key": stored_key(key), "per_second": per_second, "capacity": capacity, "now": now}
        with self._cursor() as cursor:
            for _ in range(3):
                if self._take.run(cursor, values) == 1:
                    return 0.0
                found = self._level.one(cursor, values)
                if found is None:  # the principal's first query: a full bucket less this token
                    if self._first_token.run(cursor, values) == 1:
                        return 0.0
                elif found[0] < 1.0:
                    return (1.0 - float(found[0])) / per_second
                # Another replica made the bucket, or refilled it, between the two statements: try again.
        return _CONTENDED_SECONDS

    def hold(self, slot_id: str, key: str, source: str, replica: str, total: int | None, per_source: int | None,
             now: float, expires: float) -> str | None:
        """Record a running slot unless ``key`` holds ``total`` live slots (``per_source`` on ``source``) already.

        Returns:
            None when recorded, else the name of the limit reached.

        """
        values = {"id": slot_id, "key": stored_key(key), "source": source, "replica": replica, "now": now,
                  "expires": expires, "total": total, "per_source": per_source}
        insert_slot = self._hold[(total is not None, per_source is not None)]
        with self._cursor() as cursor:
            if not self._postgres:  # SQLite: the one statement alone
                if insert_slot.run(cursor, values) == 1:
                    return None
                running, running_on = self._counts.one(cursor, values)
            else:  # PostgreSQL: under the principal's lock, in one transaction
                self._lock_principal(cursor, _SLOT_LOCK_CLASS, values["key"])
                inserted = insert_slot.run(cursor, values) == 1
                running, running_on = (0, 0) if inserted else self._counts.one(cursor, values)
                cursor.execute("COMMIT")
                if inserted:
                    return None
        if total is not None and running >= total:
            return "max_concurrent_queries"
        return "max_concurrent_queries_per_source"

    @staticmethod
    def _lock_principal(cursor, lock_class: int, stored: str) -> None:
        """Open a transaction holding the principal's advisory lock of ``lock_class`` until it ends (PostgreSQL)."""
        lock = int.from_bytes(hashlib.sha256(stored.encode()).digest()[:4], "big", signed=True)
        # One round trip for both (two integers of ours in the text: no parameters, so both may go at once).
        cursor.execute(f"BEGIN; SELECT pg_advisory_xact_lock({lock_class:d}, {lock:d})")

    def queue(self, entry_id: str, key: str, replica: str, most: int, now: float, expires: float) -> bool:
        """Record a query of ``key`` waiting for a slot unless ``most`` of its queries wait already (live rows)."""
        values = {"id": entry_id, "key": stored_key(key), "replica": replica, "most": most, "now": now,
                  "expires": expires}
        with self._cursor() as cursor:
            if not self._postgres:
                return self._queue.run(cursor, values) == 1
            self._lock_principal(cursor, _QUEUE_LOCK_CLASS, values["key"])
            queued = self._queue.run(cursor, values) == 1
            cursor.execute("COMMIT")
            return queued

    def dequeue(self, entry_ids: Iterable[str]) -> None:
        """Delete the rows of waiting queries ``entry_ids`` (their wait ended)."""
        self._delete_each(self._dequeue, entry_ids)

    def spend(self, credit: str, expires: float, now: float) -> bool:
        """Spend the run ``credit`` pays for: True the first time on any replica (until it expires), then False."""
        if expires <= now:
            return False
        with self._cursor() as cursor:
            return self._spend.run(cursor, {"id": credit, "expires": expires}) == 1

    def release(self, slot_ids: Iterable[str]) -> None:
        """Delete the rows of ``slot_ids``."""
        self._delete_each(self._release, slot_ids)

    def _delete_each(self, statement: _Compiled, row_ids: Iterable[str]) -> None:
        """Run a delete-by-id statement for each of ``row_ids``, on one connection."""
        with self._cursor() as cursor:
            for row_id in row_ids:
                statement.run(cursor, {"id": row_id})

    def renew(self, slot_ids: Iterable[str], expires: float, queued_ids: Iterable[str] = ()) -> None:
        """Extend the lease of slots ``slot_ids`` and of waiting queries ``queued_ids`` to ``expires``."""
        with self.engine.connect() as connection:
            for table, ids in ((RunningSlot, list(slot_ids)), (QueuedQuery, list(queued_ids))):
                if ids:
                    connection.execute(update_rows(table).where(table.id.in_(ids)).values(expires_at=expires))

    def purge(self, now: float) -> None:
        """Delete slots and waiting queries whose lease has expired, expired credits and buckets idle for a day."""
        with self.engine.connect() as connection:
            connection.execute(delete(RunningSlot).where(RunningSlot.expires_at < now))
            connection.execute(delete(QueuedQuery).where(QueuedQuery.expires_at < now))
            connection.execute(delete(SpentCredit).where(SpentCredit.expires_at < now))
            connection.execute(delete(RateBucket).where(RateBucket.counted_at < now - _IDLE_BUCKET_SECONDS))

    def queued(self, key: str, now: float) -> int:
        """The live waiting queries of ``key`` on every replica."""
        with self.engine.connect() as connection:
            return int(connection.execute(select(_queued), {"key": stored_key(key), "now": now}).scalar_one())

    def running(self, key: str, source: str, now: float) -> tuple[int, int]:
        """The live slots of ``key`` on every replica: in all, and on ``source``."""
        with self.engine.connect() as connection:
            found = connection.execute(_COUNTS, {"key": stored_key(key), "source": source, "now": now}).one()
        return int(found[0]), int(found[1])

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()
