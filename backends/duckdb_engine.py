"""One DuckDB database opened the gateway's way, for every adapter that runs SQL in DuckDB.

The DuckDB adapter opens a database file (or an in-memory database prepared by setup statements); the lake
adapters and the ``system`` catalog open an empty database and bind Arrow objects to each query's cursor.
Either way the database is opened read-only where DuckDB allows it, with extensions never installed or
loaded, external access switched off and the configuration locked once it is set up, so that even SQL that
slipped past the validator cannot write, read the gateway's file system or load code; the memory limit, the
worker threads and the spill directory are the source's.

Planning and metadata run on cursors of the engine's own database. Each query runs on a cursor of a DuckDB
database instance it has to itself for as long as it runs (``query_cursor``): DuckDB's ``memory_limit`` and
``max_temp_directory_size`` are settings of a database instance, shared by all of its connections, so an instance
per running query is what holds each query to its own limit. The instance opens an empty file of its own
read-only and attaches the source's file read-only (or runs the in-memory database's setup statements again),
spills to a directory of its own under the spill root (``configure_spill``: the gateway's data dir; its disk cap
is held by ``spill_guard``), and goes
back to a small idle pool when the query ends (what idle instances hold counts in the gateway's memory budget,
which closes them to make room: ``IdleQueryInstances``); queries run in parallel and an interrupt stops exactly one
of them.

The engine plans (``schema_of``), runs (``execute``) and maps DuckDB's errors into the gateway's tree
(planning under the watchdog's deadline; a query's own time limit is the query service's,
``server/query/results.py``); what a cursor sees besides the database (a lake query's tables) is the
caller's to register before handing the cursor over.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from nexus_flight.backends.base import Execution
from nexus_flight.backends.early_cancel import EarlyCancel
from nexus_flight.backends.engine_messages import first_line
from nexus_flight.backends.file_identity import file_identity
from nexus_flight.backends.limits import planning_limits, timeout_error
from nexus_flight.backends.spill_folders import process_folder
from nexus_flight.backends.spill_guard import SPILL_GUARD, Watch
from nexus_flight.backends.watchdog import WATCHDOG, Deadline
from nexus_flight.core.errors import (
    BackendError,
    BackendUnavailableError,
    GatewayError,
    InvalidQueryError,
    LimitExceededError,
    NotFoundError,
    QueryCancelledError,
    ReadOnlyViolationError,
    RetryLaterError,
)
from nexus_flight.core.sizes import parse_size
from nexus_flight.core.source import QueryLimits

_WRITE_TO_VIEW = re.compile(r"Can only (insert into|delete from|update) base table")
#: A table, view, schema or catalog that does not exist (NOT_FOUND); a function or type that does not is the
#: query's fault (INVALID_ARGUMENT), as every other family answers.
_MISSING_OBJECT = re.compile(r"\b(?:Table|View|Schema|Catalog) with name .* does not exist")

#: The share of a query's memory limit its DuckDB instance gets: the rest is for what DuckDB allocates outside its
#: buffer manager and for the Arrow batches on their way to the client, which the query's limit covers too.
ENGINE_SHARE = 0.8


@dataclass
class _QueryInstances:
    """How query instances spill and how many stay idle (set once by the gateway: ``configure_spill``)."""

    root: str | None = None
    max_size: str = "10GB"
    #: Idle query instances an engine keeps per memory limit, ready for the next query (more are closed).
    idle: int = 8


#: For every connection of a database, its cursors included: a plain ``SET TimeZone`` holds only for the
#: connection that runs it, and each cursor starts in the host's zone — so ``CAST(ts AS DATE)``, ``date_trunc``,
#: a naive timestamp compared with a TIMESTAMPTZ and the zone of every TIMESTAMPTZ column would follow the host.
PIN_UTC = "SET GLOBAL TimeZone = 'Etc/UTC'"

#: Database file path -> which file it named (``database_file_identity``) when this process opened its instance.
_OPENED_FILES: dict[str, tuple[int, ...] | None] = {}


def database_file_identity(path: str) -> tuple[int, ...] | None:
    """Which file ``path`` names now, its content included (DuckDB would not see a copy over it in place)."""
    return file_identity(path, with_content=True)

_INSTANCES = _QueryInstances()
#: Every open engine, for the memory their idle query instances hold (``IdleQueryInstances``).
_ENGINES: weakref.WeakSet[DuckDBEngine] = weakref.WeakSet()


def configure_spill(root: str | Path | None, max_size: str = "10GB", idle_instances: int = 8) -> None:
    """Set where query instances spill (sources without their own ``temp_directory``) and how many stay idle.

    ``max_size`` caps each instance's spill; ``idle_instances`` is kept per engine and memory limit.
    """
    new_cap = max_size != _INSTANCES.max_size
    _INSTANCES.root = str(root) if root is not None else None
    if root is not None:  # what a killed gateway left there goes as this one starts, not at its first query
        process_folder(str(root))
    _INSTANCES.max_size = max_size
    _INSTANCES.idle = idle_instances
    for engine in list(_ENGINES):  # a lower count applies to the instances idle now; a new cap to every query
        engine.keep_idle(0 if new_cap else idle_instances)


class IdleQueryInstances:
    """The memory idle query instances hold, as DuckDB reports it, and trimmed to make room.

    An idle instance keeps the blocks its last query read, up to that query's memory limit; the memory budget
    counts what DuckDB says the instance holds (asked once per idle spell, when the budget first wants to know)
    until the instance is reused or closed (``server/query/memory_budget.py``).
    """

    def held(self) -> int:
        """Bytes idle instances of every open engine hold."""
        return sum(engine.idle_bytes for engine in list(_ENGINES))

    def most(self) -> int:
        """The most idle instances can hold: their queries' limits (nothing is asked of DuckDB)."""
        return sum(engine.idle_limit_bytes for engine in list(_ENGINES))

    def trim(self, nbytes: int) -> int:
        """Close idle instances until ``nbytes`` are freed (``DuckDBEngine.trim_idle``); return bytes freed."""
        freed = 0
        for engine in list(_ENGINES):
            if freed >= nbytes:
                break
            freed += engine.trim_idle(nbytes - freed)
        return freed


def memory_text(nbytes: int) -> str:
    """A byte count as DuckDB's ``memory_limit`` takes it, in the largest unit that holds it exactly (``8MB``)."""
    for unit, size in (("TB", 10**12), ("TiB", 2**40), ("GB", 10**9), ("GiB", 2**30), ("MB", 10**6),
                       ("MiB", 2**20), ("KB", 10**3), ("KiB", 2**10)):
        if nbytes >= size and nbytes % size == 0:
            return f"{nbytes // size}{unit}"
    return f"{max(1, nbytes)}B"


#: The memory an instance's buffer manager holds (cached blocks, temporary data), in bytes.
_HELD_SQL = "SELECT coalesce(sum(memory_usage_bytes), 0)::BIGINT FROM duckdb_memory()"


@dataclass
class _Instance:
    """A DuckDB database instance that runs one query at a time, under its own memory limit."""

    db: duckdb.DuckDBPyConnection
    memory_limit: str
    #: The instance's own folder: its empty base database and its spill directory.
    folder: str
    alias: str | None
    #: What the instance holds while idle, as DuckDB reports it (None: not asked since it went idle).
    held: int | None = None
    #: The cursor validated queries share, already pointed at the source's database (made on first use).
    shared_cursor: duckdb.DuckDBPyConnection | None = None

    def cursor(self, shared: bool) -> duckdb.DuckDBPyConnection:
        """A cursor on the instance's database: the shared one, or a fresh one of the query's own.

        Only a statement the validator judged may take the shared cursor: what it can leave on a connection
        (temporary objects, variables, a random seed, prepared statements) is refused before it runs, and
        one query at a time runs on an instance. Sharing it saves a connection and its ``USE`` per query.
        """
        if shared and self.shared_cursor is not None:
            return self.shared_cursor
        cursor = self.db.cursor()
        if self.alias is not None:
            cursor.execute(f"USE {_identifier(self.alias)}")
        if shared:
            self.shared_cursor = cursor
        return cursor

    def idle_bytes(self) -> int:
        """What the idle instance holds: DuckDB's own count of its memory, asked once per idle spell.

        The caller holds the engine's pool lock, so no query runs on the instance meanwhile. If DuckDB cannot
        say, the query memory limit the instance was opened for (the most it can hold).
        """
        if self.held is None:
            try:
                self.held = int(self.db.execute(_HELD_SQL).fetchone()[0])
            except duckdb.Error:
                self.held = parse_size(self.memory_limit)
        return self.held

    def close(self) -> None:
        with contextlib.suppress(duckdb.Error):
            if self.shared_cursor is not None:
                self.shared_cursor.close()
            self.db.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class DuckDBEngine:
    """A DuckDB database under the gateway's guards, handing out one cursor per query.

    Args:
        source: The source's name (errors carry it).
        path: The database file, opened read-only, or ``:memory:`` for an in-memory database that
            ``setup_sql`` prepares (DuckDB cannot open one read-only: nothing but the locked configuration
            and the validator keep a query from creating objects in it).
        memory_limit: DuckDB's memory limit for planning and metadata on the engine's own database, e.g.
            ``"1GB"`` (the default); each query's own comes with the query (``QueryLimits.memory_limit_bytes``).
        threads: DuckDB's worker threads (None: one per core).
        temp_directory: Where DuckDB spills when memory runs short.
        setup_sql: Statements run once, before external access is switched off and the configuration locked.
        label: How messages name the engine (``[duckdb] ...``).

    Raises:
        BackendUnavailableError: the database file does not exist or cannot be opened.

    """

    def __init__(
        self,
        source: str,
        path: str = ":memory:",
        *,
        memory_limit: str | None = None,
        threads: int | None = None,
        temp_directory: str | None = None,
        setup_sql: Sequence[str] = (),
        label: str = "duckdb",
    ) -> None:
        self.source = source
        self.label = label
        memory_limit = memory_limit or "1GB"
        self.memory_limit = memory_limit
        self._path = path
        self._threads = threads
        self._temp_directory = temp_directory
        self._setup_sql = tuple(setup_sql)
        self._idle: dict[str, list[_Instance]] = {}
        self._leases: dict[int, _Instance] = {}
        self._pool_lock = threading.Lock()
        self._closed = False
        self._arrow_types: dict[str, pa.DataType] = {}
        self._cleanup: Callable[[], None] | None = None
        config: dict[str, Any] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": memory_limit,
        }
        if threads:
            config["threads"] = threads
        if temp_directory:
            config["temp_directory"] = temp_directory
        in_memory = path == ":memory:"
        self._base_folder: str | None = None
        self._use: str | None = None
        with self.errors():
            if not in_memory and not Path(path).exists():
                raise BackendUnavailableError(f"[{label}] database file not found: {Path(path).name}", source=source)
            self._db = duckdb.connect(path, read_only=not in_memory, config=config)
            shared = self._db.execute("SELECT current_setting('lock_configuration')").fetchone()[0]
            if not in_memory and shared and _OPENED_FILES.get(os.path.abspath(path)) != database_file_identity(path):
                # The process's open instance of this path is of the file it named before (renamed over since).
                self._db.close()
                self._db, shared = self._attached(path, config), False
            elif not in_memory and not shared:
                _OPENED_FILES[os.path.abspath(path)] = database_file_identity(path)
            # What DuckDB calls the database (``memory`` in memory, ``memory.duckdb`` is ``memory`` too,
            # ``system.duckdb`` ``system_db``): a file's query instances attach it under the same name, and an
            # in-memory source's are in memory themselves, so qualified names mean the same there.
            self._database_name: str = self._db.execute("SELECT current_database()").fetchone()[0]
            self._catalog_name: str | None = None if in_memory else self._database_name
            if shared:
                return  # the same file is already open in this process (DuckDB shares one instance), set up
            self._db.execute(PIN_UTC)
            for statement in setup_sql:
                self._db.execute(statement)
            # Once set up, nothing a query says can reach outside the database or change its settings.
            self._db.execute("SET enable_external_access = false")
            self._db.execute("SET lock_configuration = true")

    def _attached(self, path: str, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
        """An empty database of the engine's own, read-only, with the source's file attached read-only and in use.

        For a file renamed over a path whose old file the process still has open: ``duckdb.connect(path)`` would
        hand back the instance already open (the old file) for as long as this engine lived, while ``ATTACH``
        opens what the path names now. The attached database keeps the name DuckDB gives the file; the empty one
        is named apart from it. Every cursor of it is pointed at the attached one (``_cursor``).
        """
        folder = tempfile.mkdtemp(prefix="nexus-duckdb-")
        try:
            db, name = _attached_read_only(path, folder, "nexus_engine_base", config)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._base_folder, self._use = folder, f"USE {_identifier(name)}"
        return db

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A fresh cursor of the engine's database (a ``USE`` holds for one connection: each new one repeats it)."""
        cursor = self._db.cursor()
        if self._use is not None:
            cursor.execute(self._use)
        return cursor

    @property
    def catalog_name(self) -> str | None:
        """What DuckDB calls the file's database, the name query instances attach it under (None in memory)."""
        return self._catalog_name

    @property
    def database_name(self) -> str:
        """What DuckDB calls the database, in memory too (``current_database()``): views may qualify names with it."""
        return self._database_name

    @classmethod
    def empty(
        cls,
        source: str,
        *,
        memory_limit: str | None = None,
        threads: int | None = None,
        temp_directory: str | None = None,
        label: str = "duckdb",
    ) -> DuckDBEngine:
        """Open an empty database of the engine's own, read-only: a query can scan what its cursor binds, no more.

        An empty database file opened read-only makes DDL and DML fail in DuckDB itself (an in-memory database
        would accept ``CREATE TABLE``); Arrow objects registered on a cursor live in that cursor's temporary
        catalog. The file's directory is removed when the engine is closed (or collected).
        """
        directory = tempfile.mkdtemp(prefix="nexus-duckdb-")
        try:
            path = os.path.join(directory, "empty.duckdb")
            duckdb.connect(path).close()
            engine = cls(
                source,
                path,
                memory_limit=memory_limit,
                threads=threads,
                temp_directory=temp_directory,
                label=label,
            )
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        engine._cleanup = weakref.finalize(engine, shutil.rmtree, directory, ignore_errors=True)
        return engine

    # -- cursors and errors ------------------------------------------------------------------------------

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """Return a fresh cursor for one query (the caller registers what the query reads besides the database)."""
        with self.errors():
            return self._cursor()

    def query_memory(self, limits: QueryLimits) -> str:
        """A query's memory limit as DuckDB takes it: the limits' own, else the engine's (the source's option)."""
        return memory_text(limits.memory_limit_bytes) if limits.memory_limit_bytes else self.memory_limit

    def query_cursor(self, memory_limit: str, *, validated: bool = False) -> duckdb.DuckDBPyConnection:
        """Return a cursor of a database instance of its own, under ``memory_limit``, for one query.

        DuckDB's own limit in the instance is ``ENGINE_SHARE`` of the query's. A ``validated`` statement runs on
        the instance's shared cursor (``_Instance.cursor``); anything else, or a caller that registers objects
        on the cursor, gets a fresh one.

        The instance is lent until ``close_cursor`` (``execute``'s execution calls it when the query ends).
        """
        instance = self._take(memory_limit)
        try:
            with self.errors():
                cursor = instance.cursor(shared=validated)
        except BaseException:
            instance.close()
            raise
        with self._pool_lock:
            self._leases[id(cursor)] = instance
        return cursor

    def close_cursor(self, cursor: duckdb.DuckDBPyConnection, *, drained: bool = False) -> None:
        """Close a cursor; a query cursor's instance goes back to the idle pool (or is closed).

        An instance's shared cursor is kept only when its query's result was ``drained``: a query stopped early
        may still have its result read from another thread, so its cursor is closed and the next query opens one.
        """
        with self._pool_lock:
            instance = self._leases.pop(id(cursor), None)
        shared = instance is not None and cursor is instance.shared_cursor
        if shared and not drained and instance is not None:
            instance.shared_cursor = None
        if not shared or not drained:
            with contextlib.suppress(duckdb.Error):
                cursor.close()
        if instance is None:
            return
        with self._pool_lock:
            idle = self._idle.setdefault(instance.memory_limit, [])
            if len(idle) < _INSTANCES.idle and not self._closed:
                instance.held = None  # a new idle spell: what it holds now is asked for when needed
                idle.append(instance)
                _ENGINES.add(self)
                return
        instance.close()

    def _take(self, memory_limit: str) -> _Instance:
        with self._pool_lock:
            idle = self._idle.get(memory_limit)
            if idle:
                return idle.pop()
        return self._open_instance(memory_limit)

    @property
    def idle_bytes(self) -> int:
        """What the idle instances hold (DuckDB's count): counted in the gateway's memory budget."""
        with self._pool_lock:
            return sum(instance.idle_bytes() for pool in self._idle.values() for instance in pool)

    @property
    def idle_limit_bytes(self) -> int:
        """The most the idle instances can hold: the memory limits they were opened for."""
        with self._pool_lock:
            return sum(parse_size(limit) * len(pool) for limit, pool in self._idle.items())

    def trim_idle(self, nbytes: int) -> int:
        """Close idle instances until ``nbytes`` are freed (or none is left); return bytes freed.

        The largest go first (fewer instances to open again), each limit's longest idle first.
        """
        closing: list[_Instance] = []
        freed = 0
        with self._pool_lock:
            while freed < nbytes and any(self._idle.values()):
                pool = max((p for p in self._idle.values() if p), key=lambda p: p[0].idle_bytes())
                instance = pool.pop(0)
                freed += instance.idle_bytes()
                closing.append(instance)
        for instance in closing:
            instance.close()
        return freed

    def keep_idle(self, count: int) -> None:
        """Close the idle instances beyond ``count`` per memory limit, the longest idle first."""
        closing: list[_Instance] = []
        with self._pool_lock:
            for pool in self._idle.values():
                while len(pool) > count:
                    closing.append(pool.pop(0))
        for instance in closing:
            instance.close()

    def _open_instance(self, memory_limit: str) -> _Instance:
        """A fresh instance seeing what the engine's database holds, guarded like it.

        A file source's instance is opened read-only on an empty database file of its own (an in-memory one would
        accept ``ATTACH ':memory:'`` or ``CREATE TABLE``, and keep what a query made for the next one) and
        attaches the source's file read-only; an in-memory source's runs its setup statements, like the engine's.
        """
        root = self._temp_directory or _INSTANCES.root or os.path.join(tempfile.gettempdir(), "nexus-flight-spill")
        folder = tempfile.mkdtemp(prefix="query-", dir=process_folder(root))
        config: dict[str, Any] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": memory_text(int(parse_size(memory_limit) * ENGINE_SHARE)),
            "temp_directory": os.path.join(folder, "spill"),
            "max_temp_directory_size": _INSTANCES.max_size,
        }
        if self._threads:
            config["threads"] = self._threads
        alias = self._catalog_name
        try:
            with duckdb_errors(self.source, self.label, memory_limit):
                if alias is None:
                    db = duckdb.connect(":memory:", config=config)
                    db.execute(PIN_UTC)
                    for statement in self._setup_sql:
                        db.execute(statement)
                else:
                    db, _ = _attached_read_only(self._path, folder, "nexus_query_base", config, alias)
                    db.execute(PIN_UTC)
                db.execute("SET enable_external_access = false")
                db.execute("SET lock_configuration = true")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return _Instance(db, memory_limit, folder, alias)

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Translate DuckDB exceptions raised in the block into the gateway's error tree."""
        with duckdb_errors(self.source, self.label, self.memory_limit):
            yield

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """Run a short metadata query on a fresh cursor and return its rows."""
        cursor = self._cursor()
        try:
            with self.errors():
                return cursor.execute(sql, params).fetchall()
        finally:
            cursor.close()

    # -- planning ----------------------------------------------------------------------------------------

    def schema_of(
        self, sql: str, parameter_count: int = 0, cursor: duckdb.DuckDBPyConnection | None = None
    ) -> pa.Schema:
        """Return the result schema from DuckDB's binder, without running the query.

        A query is bound as a relation, not executed; its DuckDB types become Arrow types through a cache
        (each distinct type is asked once, as ``CAST(NULL AS type)``). A query with parameters is bound with
        NULL parameters under ``LIMIT 0``. Whatever DuckDB does while binding (folding constants, expanding a
        PIVOT) runs under the server's time limit; a statement that is not a query is not run (its schema is
        empty, and DuckDB judges it when it is executed). ``cursor`` (closed here) is a fresh one by default.
        """
        limits = planning_limits()
        if cursor is None:
            cursor = self.cursor()
        deadline = WATCHDOG.schedule(limits.timeout_seconds, cursor.interrupt)
        try:
            with _planning_errors(self.source, deadline, limits), self.errors():
                kind = _statement_kind(cursor, sql)
                if kind == "query" and parameter_count == 0:
                    schema = self._bound_schema(cursor, sql)
                    if schema is not None:
                        return schema
                if kind == "query":
                    schema = self._described_schema(cursor, sql, parameter_count)
                    if schema is not None:
                        return schema
                if kind == "query":
                    reader = cursor.execute(limit_zero(sql), [None] * parameter_count).to_arrow_reader()
                elif kind == "explain":
                    reader = cursor.execute(sql, [None] * parameter_count).to_arrow_reader()  # plans only
                else:
                    # Not a query (only with the validator off): nothing runs while planning; executing it
                    # later meets DuckDB's own refusal (read-only database, external access off).
                    return pa.schema([])
                return _plain_schema(reader.schema)
        finally:
            deadline.cancel()
            cursor.close()

    def expression_types(self, sql: str, cursor: duckdb.DuckDBPyConnection | None = None) -> pa.Schema | None:
        """Return the result schema of a probe query under ``LIMIT 0`` (None when DuckDB cannot bind it).

        ``cursor`` (closed here) is a fresh one by default.
        """
        limits = planning_limits()
        if cursor is None:
            cursor = self.cursor()
        deadline = WATCHDOG.schedule(limits.timeout_seconds, cursor.interrupt)
        try:
            return cursor.execute(limit_zero(sql)).to_arrow_reader().schema
        except duckdb.Error:
            if deadline.fired:
                raise timeout_error(limits.timeout_seconds, self.source, "planning") from None
            return None
        finally:
            deadline.cancel()
            cursor.close()

    def _bound_schema(self, cursor: duckdb.DuckDBPyConnection, sql: str) -> pa.Schema | None:
        relation = cursor.sql(sql)  # a query only: sql() would run anything else right away
        names, types = relation.columns, [str(t) for t in relation.types]
        # Duplicate names (``SELECT *`` over a join) stay duplicates, as DuckDB's export streams them: the
        # LIMIT 0 wrapper below would rename them (``id_1``) and announce a schema the stream does not have.
        return pa.schema([pa.field(n, self._arrow_type(t)) for n, t in zip(names, types, strict=True)])

    def _described_schema(self, cursor: duckdb.DuckDBPyConnection, sql: str, parameter_count: int) -> pa.Schema | None:
        """A query with parameters: DuckDB's DESCRIBE binds it with NULLs without running it (None if it cannot).

        Unlike the ``LIMIT 0`` wrapper, DESCRIBE keeps repeated column names as the query streams them.
        """
        try:
            rows = cursor.execute(f"DESCRIBE {sql}", [None] * parameter_count).fetchall()
        except duckdb.InterruptException:
            raise
        except duckdb.Error:
            return None
        return pa.schema([pa.field(name, self._arrow_type(str(kind))) for name, kind, *_ in rows])

    def _arrow_type(self, duckdb_type: str) -> pa.DataType:
        """Return the Arrow type DuckDB exports a DuckDB type as (asked once per type, then cached)."""
        arrow = self._arrow_types.get(duckdb_type)
        if arrow is None:
            cursor = self._cursor()
            try:
                probe = cursor.execute(f"SELECT CAST(NULL AS {duckdb_type}) AS t").to_arrow_reader().schema
            finally:
                cursor.close()
            arrow = _plain_type(probe.field(0).type)
            self._arrow_types[duckdb_type] = arrow
        return arrow

    # -- running -----------------------------------------------------------------------------------------

    def execute(
        self,
        sql: str,
        parameters: Sequence[Sequence[Any]] | None,
        limits: QueryLimits,
        cursor: duckdb.DuckDBPyConnection | None = None,
        *,
        validated: bool = False,
    ) -> DuckDBExecution:
        """Prepare the query on its cursor (a query instance's by default; the execution owns it).

        The query runs when the execution's reader is first read; each parameter row runs once and the
        results are concatenated in order, in batches of ``limits.batch_rows``. ``validated``: the validator
        judged the statement (it may run on the instance's shared cursor, ``query_cursor``).
        """
        memory_limit = self.query_memory(limits)
        if cursor is None:
            cursor = self.query_cursor(memory_limit, validated=validated)
        with self._pool_lock:
            instance = self._leases.get(id(cursor))
        spill = None if instance is None else SpillCap(os.path.join(instance.folder, "spill"), _INSTANCES.max_size)
        rows = list(parameters or [])

        def start(cur: duckdb.DuckDBPyConnection) -> pa.RecordBatchReader:
            with duckdb_errors(self.source, self.label, memory_limit):
                if len(rows) <= 1:
                    reader = cur.execute(sql, list(rows[0]) if rows else None).to_arrow_reader(limits.batch_rows)
                else:
                    reader = _execute_many(cur, sql, rows, limits)
                return _without_dictionaries(reader)

        def release(drained: bool) -> None:
            self.close_cursor(cursor, drained=drained)

        return DuckDBExecution(cursor, start, self.label, release, memory_limit, spill)

    def close(self) -> None:
        """Close the database and the idle query instances (and remove an empty one's file)."""
        with self._pool_lock:
            self._closed = True
            idle = [instance for instances in self._idle.values() for instance in instances]
            self._idle.clear()
        for instance in idle:
            instance.close()
        with contextlib.suppress(duckdb.Error):
            self._db.close()
        if self._base_folder is not None:
            shutil.rmtree(self._base_folder, ignore_errors=True)
        if self._cleanup is not None:
            self._cleanup()


def _attached_read_only(path: str, folder: str, base_name: str, config: dict[str, Any],
                        alias: str | None = None) -> tuple[duckdb.DuckDBPyConnection, str]:
    """An empty database file of its own in ``folder``, read-only, with ``path`` attached read-only and in use.

    DDL and DML fail in DuckDB itself there. ``path`` is attached as ``alias``, else under the name DuckDB gives the
    file; returns the connection and that name. The empty database is ``base_name`` unless the attached one takes it.
    """
    taken = alias if alias is not None else Path(path).stem
    base_name = base_name if taken != base_name else f"{base_name}_"
    base = os.path.join(folder, f"{base_name}.duckdb")
    duckdb.connect(base).close()
    db = duckdb.connect(base, read_only=True, config=config)
    literal = "'" + str(path).replace("'", "''") + "'"
    db.execute(f"ATTACH {literal}{f' AS {_identifier(alias)}' if alias is not None else ''} (READ_ONLY)")
    name = alias if alias is not None else db.execute(
        "SELECT database_name FROM duckdb_databases() WHERE NOT internal AND database_name <> ?", [base_name]
    ).fetchone()[0]
    db.execute(f"USE {_identifier(name)}")
    return db, name


@dataclass(frozen=True)
class SpillCap:
    """Where a query instance spills and the most disk it may use there (``max_temp_directory_size``)."""

    folder: str
    max_size: str


class DuckDBExecution(Execution):
    """A query on its own DuckDB cursor; it starts when the reader is first asked for.

    Starting lazily lets the caller register the execution (so cancel can reach it) before DuckDB blocks
    computing the first batch, which for an aggregation is the whole query. Whether a failure after a cancel
    was the cancel or the server's time limit is the query service's to say (``server/query/results.py``).
    A query on an instance of its own (``spill``) is stopped when its spill folder passes the disk cap.
    """

    def __init__(
        self,
        cursor: duckdb.DuckDBPyConnection,
        start: Callable[[duckdb.DuckDBPyConnection], pa.RecordBatchReader],
        label: str = "duckdb",
        release: Callable[[bool], None] | None = None,
        memory_limit: str | None = None,
        spill: SpillCap | None = None,
    ) -> None:
        self._cursor = cursor
        #: Called once when the execution closes, with whether DuckDB's result was read to its end.
        self._release = release or (lambda _drained: cursor.close())
        self._drained = False
        self._memory_limit = memory_limit
        self._spill = spill
        self._spill_watch: Watch | None = None
        self._start = start
        self._reader: pa.RecordBatchReader | None = None
        self._label = label
        self._lock = threading.Lock()
        self._cancelled = False
        self._spilled_over = False
        self._closed = False
        #: DuckDB forgets an interrupt sent before its query begins: repeated while ``_start`` runs.
        self._early_cancel = EarlyCancel(self._interrupt)

    @property
    def reader(self) -> pa.RecordBatchReader:
        """DuckDB's result stream (started on first access); failures after the first batch are mapped too."""
        if self._reader is None:
            with self._early_cancel.starting():
                if self._cancelled:
                    raise QueryCancelledError(f"[{self._label}] query cancelled before it started")
                if self._spill is not None:
                    cap = parse_size(self._spill.max_size)
                    self._spill_watch = SPILL_GUARD.watch(self._spill.folder, cap, self._spill_over)
                try:
                    engine = self._start(self._cursor)
                except QueryCancelledError as exc:
                    raise self._spill_error() if self._spilled_over else exc from None
            self._reader = pa.RecordBatchReader.from_batches(engine.schema, self._mapped(engine))
        return self._reader

    def _spill_over(self) -> None:
        """The spill folder passed the cap: stop the query (it fails naming the cap, not as cancelled)."""
        self._spilled_over = True  # read only after the interrupt below ends the engine's work
        self.cancel()

    def _spill_error(self) -> LimitExceededError:
        size = self._spill.max_size if self._spill is not None else "?"
        return LimitExceededError(f"[{self._label}] the query spilled more than its disk cap "
                                  f"(max_temp_directory_size={size}); add a filter or raise max_temp_directory_size")

    def _mapped(self, engine: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        """DuckDB's batches, unchanged; an error mid-stream as the gateway's error."""
        try:
            yield from engine
        except pa.ArrowException as exc:
            raise self._stream_error(exc) from None
        self._drained = not self._cancelled

    def _stream_error(self, exc: Exception) -> Exception:
        text = first_line(exc).split(". Detail:")[0]
        if self._spilled_over:
            return self._spill_error()
        if self._cancelled or "INTERRUPT" in text:
            return QueryCancelledError(f"[{self._label}] query interrupted")
        if "Out of Memory" in text:
            return LimitExceededError(f"[{self._label}] {text}: the query needs more than its memory limit "
                                      f"(memory_limit={self._memory_limit}) and could not spill the rest")
        return InvalidQueryError(f"[{self._label}] {text}")

    def cancel(self) -> None:
        """Interrupt the query in DuckDB (again while it may still be starting: ``backends/early_cancel.py``)."""
        self._cancelled = True
        self._interrupt()
        self._early_cancel.cancelled()

    def _interrupt(self) -> None:
        with self._lock:  # never once the cursor went back to its instance for another query
            if not self._closed:
                self._cursor.interrupt()

    def close(self) -> None:
        """Release the cursor."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._spill_watch is not None:
            self._spill_watch.stop()
        with contextlib.suppress(duckdb.Error):
            self._release(self._drained)


@contextlib.contextmanager
def duckdb_errors(source: str, label: str = "duckdb", memory_limit: str | None = None) -> Iterator[None]:
    """Translate DuckDB exceptions into the gateway's error tree, once, for every call."""
    try:
        yield
    except GatewayError:
        raise
    except duckdb.InterruptException as exc:
        raise QueryCancelledError(f"[{label}] query interrupted", source=source) from exc
    except duckdb.OutOfMemoryException as exc:
        text = first_line(exc)
        if "bad allocation" in text:  # the process's own ceiling, not DuckDB's buffer pool
            limit = "the server's process_memory_limit; a single value this large cannot be built"
        else:
            limit = f"memory_limit={memory_limit}); add a filter or raise the source's memory_limit"
            limit = f"the memory limit ({limit}"
        raise LimitExceededError(f"[{label}] {text}: the query needs more than {limit}", source=source) from exc
    except duckdb.PermissionException as exc:
        raise ReadOnlyViolationError(f"[{label}] {first_line(exc)}", source=source) from exc
    except duckdb.InvalidInputException as exc:
        text = first_line(exc)
        if "read-only" in text or "read only" in text:
            raise ReadOnlyViolationError(f"[{label}] {text}", source=source) from exc
        if "get_next failed(): IOError" in text:  # an Arrow dataset's store failed under DuckDB's scan
            gone = _gone_file(text)
            if gone is not None:  # named without the server's path
                raise NotFoundError(f"[{label}] a data file of the table is gone ({gone}): it was removed after the "
                                    "table's files were listed (a VACUUM, a rewrite); query again, or read a later "
                                    "version", source=source) from exc
            raise BackendUnavailableError(f"[{label}] {text}", source=source) from exc
        raise InvalidQueryError(f"[{label}] {text}", source=source) from exc
    except duckdb.CatalogException as exc:
        text = first_line(exc)
        if "read-only" in text or "read only" in text or text.endswith("is not an table"):
            raise ReadOnlyViolationError(f"[{label}] {text}", source=source) from exc
        if _MISSING_OBJECT.search(text):
            raise NotFoundError(f"[{label}] {text}", source=source) from exc
        raise InvalidQueryError(f"[{label}] {text}", source=source) from exc
    # DataError: a value that does not convert, or is out of its type's range (an overflow)
    except (duckdb.ParserException, duckdb.BinderException, duckdb.DataError) as exc:
        text = first_line(exc)
        if _WRITE_TO_VIEW.search(text):  # DML aimed at a view (or a registered Arrow object)
            raise ReadOnlyViolationError(f"[{label}] {text}", source=source) from exc
        raise InvalidQueryError(f"[{label}] {text}", source=source) from exc
    except (duckdb.IOException, duckdb.HTTPException) as exc:
        if "Could not set lock on file" in str(exc):  # named without the server's path and the writer's PID
            raise RetryLaterError(f"[{label}] the database file is held by another process that writes it: DuckDB "
                                  "lets a file be read only while no process has it open for writing; retry once the "
                                  "writer closes it (or have it write a new file and rename it over this one)",
                                  source=source) from exc
        raise BackendUnavailableError(f"[{label}] {first_line(exc)}", source=source) from exc
    except duckdb.Error as exc:
        text = first_line(exc)
        if "read-only" in text or "read only" in text:
            raise ReadOnlyViolationError(f"[{label}] {text}", source=source) from exc
        raise BackendError(f"[{label}] {text}", source=source) from exc


#: pyarrow's words for a file it listed that is no longer there (local disks and object stores).
_GONE = re.compile(r"(?:Object at location (?P<object>\S+) not found|Failed to open local file '(?P<local>[^']+)'"
                   r".*No such file or directory)")


def _gone_file(text: str) -> str | None:
    """The name of the data file a scan found gone (its last path part), or None for any other I/O failure."""
    found = _GONE.search(text)
    if found is None:
        return None
    return (found.group("object") or found.group("local")).rstrip("/").rsplit("/", 1)[-1]


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def limit_zero(sql: str) -> str:
    """``sql`` as a subquery under ``LIMIT 0``: bound and planned, never run.

    The query goes on lines of its own, so that a trailing ``-- comment`` cannot swallow the closing
    parenthesis, and without its trailing semicolons (found with DuckDB's own lexer, comments after them too).
    """
    data = sql.encode("utf-8")  # DuckDB's token offsets count bytes
    tokens = duckdb.tokenize(sql)
    end = len(data)
    while tokens and data.startswith(b";", tokens[-1][0]):
        end = tokens.pop()[0]
    return f"SELECT * FROM (\n{data[:end].decode('utf-8')}\n) AS q LIMIT 0"


def _statement_kind(cursor: duckdb.DuckDBPyConnection, sql: str) -> str:
    """Say what DuckDB's parser reads ``sql`` as: ``query``, ``explain`` or ``other``.

    DESCRIBE, SHOW, SUMMARIZE and a PIVOT with its temporary ENUM type are queries.
    """
    types = [statement.type for statement in cursor.extract_statements(sql)]
    if types in ([duckdb.StatementType.SELECT], [duckdb.StatementType.CREATE, duckdb.StatementType.SELECT]):
        return "query"
    if types == [duckdb.StatementType.EXPLAIN]:
        return "explain"
    return "other"


@contextlib.contextmanager
def _planning_errors(source: str, deadline: Deadline, limits: QueryLimits) -> Iterator[None]:
    """An interrupt from the planning deadline is the server's time limit, said so."""
    try:
        yield
    except (QueryCancelledError, duckdb.InterruptException):
        if deadline.fired:
            raise timeout_error(limits.timeout_seconds, source, "planning") from None
        raise


def _execute_many(
    cursor: duckdb.DuckDBPyConnection, sql: str, rows: list, limits: QueryLimits
) -> pa.RecordBatchReader:
    """Several parameter rows: one execution each, results concatenated in order."""
    first = cursor.execute(sql, list(rows[0])).to_arrow_reader(limits.batch_rows)

    def batches() -> Iterator[pa.RecordBatch]:
        yield from first
        for row in rows[1:]:
            yield from cursor.execute(sql, list(row)).to_arrow_reader(limits.batch_rows)

    return pa.RecordBatchReader.from_batches(first.schema, batches())


def _plain_type(t: pa.DataType) -> pa.DataType:
    """Dictionary (ENUM) columns become their value type: JDBC and ODBC cannot decode dictionaries."""
    if pa.types.is_dictionary(t):
        return t.value_type
    return t


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    if not any(pa.types.is_dictionary(f.type) for f in schema):
        return schema
    return pa.schema([f.with_type(_plain_type(f.type)) for f in schema], metadata=schema.metadata)


def _without_dictionaries(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """Decode dictionary columns; the common case (none) hands DuckDB's reader through untouched."""
    target = _plain_schema(reader.schema)
    if target is reader.schema:
        return reader
    return reader.cast(target)
