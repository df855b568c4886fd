"""Principals' rate tokens and running slots in the catalog, so that every replica sharing it counts one budget.

- A token is taken with one conditional ``UPDATE`` that refills the bucket and takes the token together, and only
  where a token is there: concurrent replicas never take the same token (a row lock on PostgreSQL, which re-checks
  the condition on the row another transaction just changed; SQLite's single writer). A refusal writes nothing.
- A slot is one row, inserted by an ``INSERT … SELECT`` whose condition counts the principal's live rows. SQLite
  runs a statement that writes under its database write lock from its first read, so the count and the insert are
  one step; PostgreSQL first takes a transaction-scoped advisory lock on the principal (its counts could otherwise
  read a snapshot older than a concurrent insert).

These run on an engine of their own with short waits (``WAIT_SECONDS`` for a lock, a connection or a statement), so
a slow or unreachable catalog fails a call quickly and the caller counts in its own process meanwhile
(``server/query/shared_limit_counts.py``). Times are seconds since the epoch, from the calling replica's clock.
SQLite and PostgreSQL are the catalogs these are proven on (``tests/catalog/test_shared_limits.py``); another
database gets SQLite's single statements, whose count and insert its isolation may not keep together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

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
    text,
)
from sqlalchemy import update as update_rows
from sqlalchemy.dialects import postgresql, sqlite

from nexus_flight.catalog.models import RateBucket, RunningSlot

#: How long a limit's catalog call may wait for a lock, a connection or its statement before it fails.
WAIT_SECONDS = 2.0
#: The retry time given when a bucket changed under three attempts in a row (replicas racing for it).
_CONTENDED_SECONDS = 0.1
#: Rate buckets untouched this long are deleted (full again for any rate above a burst a day).
_IDLE_BUCKET_SECONDS = 86_400.0
#: The advisory lock class of slot admissions (PostgreSQL's two-key form; the second key is the principal's).
_SLOT_LOCK_CLASS = 0x4E46_4C53  # "NFLS"

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
_LOCK = text("SELECT pg_advisory_xact_lock(:space, :lock)")


def _slot_insert(total: bool, per_source: bool):
    row = select(bindparam("id"), bindparam("key"), bindparam("source"), bindparam("replica"), _now,
                 bindparam("expires", type_=Float))
    if total:
        row = row.where(_running < bindparam("total"))
    if per_source:
        row = row.where(_running_on < bindparam("per_source"))
    names = ["id", "accounting_key", "source", "replica", "started_at", "expires_at"]
    # Without the option SQLAlchemy reports no row count for an INSERT on PostgreSQL.
    return insert(RunningSlot).from_select(names, row).execution_options(preserve_rowcount=True)


#: The slot insert for each combination of limits (total, per source).
_HOLD = {(t, s): _slot_insert(t, s) for t in (False, True) for s in (False, True)}


def stored_key(key: str) -> str:
    """How an accounting key is stored: as itself, or as its SHA-256 when longer than 200 characters."""
    return key if len(key) <= 200 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def limits_engine(url: URL) -> Engine:
    """An engine on the catalog's database whose calls wait at most ``WAIT_SECONDS`` (no ping before each use)."""
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, pool_timeout=WAIT_SECONDS,
                               connect_args={"check_same_thread": False, "timeout": WAIT_SECONDS})

        @event.listens_for(engine, "connect")
        def _no_sync_per_commit(dbapi_connection, _record) -> None:
            # These connections' commits skip the fsync (the WAL is synced at checkpoints): a counter lost to a
            # power cut costs nothing, and a fsync per query would (about 0.5 ms).
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        return engine
    if url.get_backend_name() != "postgresql":
        return create_engine(url, pool_timeout=WAIT_SECONDS)
    engine = create_engine(url, pool_timeout=WAIT_SECONDS,
                           connect_args={"connect_timeout": max(1, round(WAIT_SECONDS))})
    wait_ms = int(WAIT_SECONDS * 1000)

    @event.listens_for(engine, "connect")
    def _short_waits(dbapi_connection, _record) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {wait_ms}")
            cursor.execute(f"SET lock_timeout = {wait_ms}")
        dbapi_connection.commit()

    return engine


class CatalogLimitRows:
    """``SharedLimitRows`` (``server/query/shared_limit_counts.py``) over ``rate_buckets`` and ``running_slots``.

    Every call raises what the database raises.

    Args:
        engine: On a catalog at the current schema version (``limits_engine(store.engine.url)``).

    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: One statement, one round trip: each statement here is atomic on its own.
        self._single = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._postgres = self.engine.dialect.name == "postgresql"
        dialect = postgresql if self._postgres else sqlite
        self._first_token = (dialect.insert(RateBucket)
                             .values(accounting_key=bindparam("key"), tokens=_capacity - 1.0, counted_at=_now)
                             .on_conflict_do_nothing(index_elements=["accounting_key"])
                             .execution_options(preserve_rowcount=True))

    def take_token(self, key: str, per_second: float, capacity: float, now: float) -> float:
        """Take one of ``key``'s tokens: 0.0 when taken, else the seconds until the next one (nothing written)."""
        values = {"key": stored_key(key), "per_second": per_second, "capacity": capacity, "now": now}
        with self._single.connect() as connection:
            for _ in range(3):
                if connection.execute(_TAKE, values).rowcount == 1:
                    return 0.0
                level = connection.execute(_LEVEL, values).scalar()
                if level is None:  # the principal's first query: a full bucket less this token
                    if connection.execute(self._first_token, values).rowcount == 1:
                        return 0.0
                elif level < 1.0:
                    return (1.0 - float(level)) / per_second
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
        statement = _HOLD[(total is not None, per_source is not None)]
        # SQLite: the one statement alone; PostgreSQL: with the principal's lock, in one transaction.
        with self.engine.begin() if self._postgres else self._single.connect() as connection:
            if self._postgres:
                lock = int.from_bytes(hashlib.sha256(values["key"].encode()).digest()[:4], "big", signed=True)
                connection.execute(_LOCK, {"space": _SLOT_LOCK_CLASS, "lock": lock})
            if connection.execute(statement, values).rowcount == 1:
                return None
            running, running_on = connection.execute(_COUNTS, values).one()
        if total is not None and running >= total:
            return "max_concurrent_queries"
        return "max_concurrent_queries_per_source"

    def release(self, slot_ids: Iterable[str]) -> None:
        """Delete the rows of ``slot_ids``."""
        ids = list(slot_ids)
        with self._single.connect() as connection:
            connection.execute(delete(RunningSlot).where(RunningSlot.id.in_(ids)))

    def renew(self, slot_ids: Iterable[str], expires: float) -> None:
        """Extend the lease of ``slot_ids`` to ``expires``."""
        ids = list(slot_ids)
        with self._single.connect() as connection:
            connection.execute(update_rows(RunningSlot).where(RunningSlot.id.in_(ids)).values(expires_at=expires))

    def purge(self, now: float) -> None:
        """Delete slots whose lease has expired and buckets idle for a day."""
        with self.engine.begin() as connection:
            connection.execute(delete(RunningSlot).where(RunningSlot.expires_at < now))
            connection.execute(delete(RateBucket).where(RateBucket.counted_at < now - _IDLE_BUCKET_SECONDS))

    def running(self, key: str, source: str, now: float) -> tuple[int, int]:
        """The live slots of ``key`` on every replica: in all, and on ``source``."""
        with self.engine.connect() as connection:
            found = connection.execute(_COUNTS, {"key": stored_key(key), "source": source, "now": now}).one()
        return int(found[0]), int(found[1])

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

