"""The catalog as the Flight SQL server sees it: a directory of sources, a history observer, ``system``.

:class:`CatalogSourceDirectory` implements ``server.query.directory.SourceDirectory`` over the catalog store: every
source that is not disabled is a Flight SQL catalog, plus ``system``. Its backends open lazily; metadata
(schemas, tables, table schemas) comes from the schema cache while it is fresh, from the source when it is
not, and from the cache marked stale when the source is down. A query that finds its source unreachable moves
the source to ``error``, where the health checker takes over. :func:`history_observer` writes one history row
per query the server reports.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Sequence
from datetime import timedelta
from typing import Any

import pyarrow as pa

from nexus_flight.backends.base import Backend, Capabilities, Execution, TableInfo, TableLineage
from nexus_flight.backends.pool import PoolBusyError
from nexus_flight.backends.profile import source_profile
from nexus_flight.backends.registry import backend_class
from nexus_flight.catalog.connect import family_class, open_source
from nexus_flight.catalog.health import record_failure
from nexus_flight.catalog.history import PHASES, QueryRecord, QueryRecorder
from nexus_flight.catalog.history_writer import HistoryWriter, WriterCounts
from nexus_flight.catalog.models import utcnow
from nexus_flight.catalog.record_journal import journal_of
from nexus_flight.catalog.schema_cache import (
    CachedSchema,
    cached_schema,
    cached_table_schema,
    cached_tables,
    mark_stale,
    save_schema,
    snapshot_backend,
)
from nexus_flight.catalog.source_types import suggest
from nexus_flight.catalog.store import CatalogStore, SourceInfo
from nexus_flight.catalog.system_backend import DEFAULT_MAX_LOG_ROWS, SYSTEM_CATALOG, SystemBackend
from nexus_flight.core.errors import (
    SOURCE_FAILURES,
    BackendUnavailableError,
    CatalogUnavailableError,
    GatewayError,
    NotFoundError,
)
from nexus_flight.core.identifiers import IdentifierRules, identifier_rules, rules_of
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.source import QueryLimits, SourceProfile, SourceSpec
from nexus_flight.core.throttled_log import ThrottledLog

log = logging.getLogger(__name__)
_WARNINGS = ThrottledLog(log)
#: How long the cached schema read last answers without asking the catalog whether it changed.
_REUSE_SECONDS = 1.0
#: The least time between two background refreshes of one source's metadata (one that is down is not hammered).
_REFRESH_RETRY_SECONDS = 10.0


def _family(info: SourceInfo) -> type[Backend] | None:
    """The backend class of a source's family; None when it has no adapter or its driver is missing."""
    try:
        return backend_class(info.family)
    except GatewayError:
        return None  # nothing runs on such a source anyway


class CatalogBackend(Backend):
    """One catalog source: its real backend opened on first use, metadata through the schema cache."""

    read_only_guard = "that of the source's backend family"

    def __init__(self, store: CatalogStore, info: SourceInfo, schema_ttl_seconds: float = 300.0) -> None:
        super().__init__(
            SourceSpec(name=info.name, kind=info.family)
        )  # no secrets here: the real backend has them
        self.kind = info.family
        self.dialect = info.dialect
        self.info = info
        self.store = store
        self.schema_ttl = timedelta(seconds=schema_ttl_seconds)
        self._live: Backend | None = None
        self._lock = threading.Lock()
        # Calls under way; once retired, the backend that replaced this one (None: the source is gone).
        self._calls = 0
        self._retired = False
        self._successor: CatalogBackend | None = None
        self._family_class = _family(info)
        #: The source's data as it was when this backend was made (``Backend.content_identity``).
        self.identity = self.current_identity()
        #: Read metadata from the source rather than the cache once (the data it names was swapped).
        self.reread_metadata = False
        # The cached schema read last (``_content``), when, and the background refresh under way.
        self._known: CachedSchema | None = None
        self._known_at = float("-inf")
        self._refreshing = False
        self._refresh_started = float("-inf")
        #: When a snapshot with nothing cached last failed because the source could not be reached, and why.
        self._snapshot_failed: tuple[float, GatewayError] | None = None

    def current_identity(self) -> Hashable | None:
        """What names the source's data now (a DuckDB file's inode and time); None where nothing is watched."""
        family = self._family_class
        return family.content_identity(self.info.options) if family is not None else None

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        """The capabilities of the source's backend family."""
        if self._live is not None:
            return self._live.capabilities
        try:
            return family_class(self.info.type).capabilities
        except GatewayError:
            return Capabilities()

    @property
    def default_schema(self) -> str | None:  # type: ignore[override]
        """The schema unqualified names resolve in, as the source's backend family declares it."""
        try:
            return family_class(self.info.type).default_schema_for(self.info.options)
        except GatewayError:
            return None

    @property
    def query_memory_limit(self) -> str | None:
        """The source's ``memory_limit`` option, if it sets one."""
        value = self.info.options.get("memory_limit")
        return str(value) if value else None

    @property
    def identifier_rules(self) -> IdentifierRules:
        """How the source compares names: its dialect's, or where its server decides, the live backend's.

        Such a source is opened to ask its server; one that cannot be reached compares table names exactly
        (refusing more, never less) until it can.
        """
        rules = identifier_rules(self.dialect)
        try:
            if not family_class(self.info.type).identifiers_from_server:
                return rules
            return self._call(rules_of)
        except GatewayError:
            return dataclasses.replace(rules, tables_exact=True)

    def pool_sizes(self) -> tuple[int, int] | None:
        """The pool of the source's backend, once it is open."""
        live = self._live
        return live.pool_sizes() if live is not None else None

    def _backend(self) -> Backend:
        with self._lock:
            if self._live is not None:
                return self._live
            try:
                self._live = open_source(self.store, self.name)
                return self._live
            except CatalogUnavailableError:  # the gateway's catalog is away, not the source
                raise
            except BackendUnavailableError as exc:
                failure = exc
        self._record_failure(failure.message)
        raise failure

    def _call(self, action: Callable[[Backend], Any]) -> Any:
        """Run an action on the live backend; an unreachable source is recorded (status error) and that backend dropped.

        A refusal for a full connection pool is load, not the source being away: the backend and its pool stay
        (a new pool would open connections beyond ``pool_size`` while the old ones still run). Once the
        source's configuration changed (``retire``), new calls run on the backend that replaced this one; once
        it was removed or disabled, they are refused.
        """
        with self._lock:
            retired, successor = self._retired, self._successor
            if not retired:
                self._calls += 1
        if successor is not None:
            return successor._call(action)
        if retired:
            raise BackendUnavailableError(f"source {self.name!r} was removed or disabled", source=self.name)
        try:
            live = self._backend()
            try:
                return action(live)
            except (PoolBusyError, CatalogUnavailableError):
                raise
            except BackendUnavailableError as exc:
                self._unavailable(exc.message, live)
                raise
        finally:
            self._call_ended()

    def _call_ended(self) -> None:
        with self._lock:
            self._calls -= 1
            last = self._retired and self._calls == 0
            live = self._live if last else None
            if last:
                self._live = None
        if live is not None:
            live.close()

    def retire(self, successor: CatalogBackend | None) -> None:
        """The source's configuration changed and ``successor`` serves it now (None: it was removed or disabled).

        This backend closes. Calls under way finish on it first (the last one closes it), so a query that was
        starting when the change landed neither fails on a closed pool nor marks the source in error; a caller
        still holding this backend is served by the successor (or told the source is gone) rather than opening a
        pool nobody would close. Executions already running keep what they borrowed: pools close a lent
        connection when it comes back.
        """
        with self._lock:
            self._retired, self._successor = True, successor
            live = None
            if self._calls == 0:
                live, self._live = self._live, None
        if live is not None:
            live.close()

    def _unavailable(self, message: str, failed: Backend) -> None:
        with self._lock:
            # Only the backend that failed is dropped: another call may have opened a fresh one meanwhile.
            dropped = self._live is failed
            if dropped:
                self._live = None
        if dropped:
            try:
                failed.close()
            except GatewayError:
                pass
        self._record_failure(message)

    def _record_failure(self, message: str) -> None:
        try:
            if self.store.get_source(self.name).status not in ("error", "inactive"):
                record_failure(self.store, self.name, message)
        except GatewayError as exc:  # removed or disabled meanwhile
            log.info("could not record the failure of %s: %s", self.name, exc.message)

    # -- queries: always the live backend --------------------------------------------------------------------

    def get_schema(self, plan: QueryPlan) -> pa.Schema:
        """Delegate to the source's backend."""
        return self._call(lambda live: live.get_schema(plan))

    def get_parameter_schema(self, plan: QueryPlan) -> pa.Schema:
        """Delegate to the source's backend."""
        return self._call(lambda live: live.get_parameter_schema(plan))

    def get_bound_schema(self, plan: QueryPlan, parameters: Sequence[Sequence[Any]]) -> pa.Schema | None:
        """Delegate to the source's backend (its result types may follow the bound values)."""
        return self._call(lambda live: live.get_bound_schema(plan, parameters))

    def execute(self, plan: QueryPlan, parameters: Sequence[Sequence[Any]] | None, limits: QueryLimits) -> Execution:
        """Delegate to the source's backend."""
        return self._call(lambda live: live.execute(plan, parameters, limits))

    def split(self, plan: QueryPlan, most: int) -> list[QueryPlan]:
        """Delegate to the source's backend."""
        return self._call(lambda live: live.split(plan, most))

    def primary_keys(self, db_schema, table):
        """Delegate to the source's backend."""
        return self._call(lambda live: live.primary_keys(db_schema, table))

    def foreign_keys(self, db_schema=None, table=None):
        """Delegate to the source's backend."""
        return self._call(lambda live: live.foreign_keys(db_schema, table))

    def ping(self) -> None:
        """Delegate to the source's backend."""
        self._call(lambda live: live.ping())

    def view_definition(self, db_schema: str, view: str) -> str | None:
        """Delegate to the source's backend (a view's definition is read from the source, never cached here)."""
        return self._call(lambda live: live.view_definition(db_schema, view))

    def table_lineage(self) -> TableLineage:
        """Delegate to the source's backend (read from the source, never cached here)."""
        return self._call(lambda live: live.table_lineage())

    def view_database(self) -> str | None:
        """Delegate to the source's backend (``Backend.view_database``)."""
        return self._call(lambda live: live.view_database())

    @property
    def view_names_schema(self) -> str | None:  # type: ignore[override]
        """Where the family's view definitions leave unqualified names (``Backend.view_names_schema``)."""
        try:
            return family_class(self.info.type).view_names_schema
        except GatewayError:
            return None

    # -- metadata: through the schema cache ------------------------------------------------------------------

    def _content(self) -> dict[str, Any]:
        """The source's cached metadata; read from the source when there is none yet or its data was swapped.

        Past ``schema_cache_ttl_seconds`` (or marked stale) the cached content still answers at once while one
        refresh runs in the background: a BI tool's metadata request neither waits for a snapshot of a large
        source (seconds for thousands of tables) nor for a source that is down. The content read last is reused
        while the catalog's version is unchanged, and for a moment without asking the catalog at all: GetTables
        with schemas asks for every table of the source in turn.
        """
        known = self._known
        if known is not None and not self.reread_metadata and time.monotonic() - self._known_at < _REUSE_SECONDS:
            return known.content
        try:
            cached = cached_schema(self.store, self.name, known=known)
        except CatalogUnavailableError:  # the catalog is away: the source itself answers, nothing is cached
            _WARNINGS.warning("schema", "the catalog did not answer; metadata read from the sources themselves")
            return self._call(snapshot_backend)
        if cached is None or self.reread_metadata or not self.schema_ttl:  # a TTL of 0: always the source's own
            return self._read_source(cached, remember_failure=cached is None)
        self._known, self._known_at = cached, time.monotonic()
        if cached.stale or utcnow() - cached.refreshed_at >= self.schema_ttl:
            self._refresh_in_background()
        return cached.content

    def _read_source(self, cached: CachedSchema | None, remember_failure: bool = False) -> dict[str, Any]:
        """Snapshot the source into the cache; if it cannot be reached, mark what is cached stale and answer it.

        ``remember_failure``: with nothing cached, a source that could not be reached is not asked again for
        ``_REFRESH_RETRY_SECONDS``: browsing every catalog would otherwise wait its connect timeout each time.
        """
        failed = self._snapshot_failed
        if remember_failure and failed is not None and time.monotonic() - failed[0] < _REFRESH_RETRY_SECONDS:
            raise failed[1]
        try:
            content = self._call(snapshot_backend)
        except SOURCE_FAILURES as exc:
            if cached is None:
                if remember_failure and not isinstance(exc, CatalogUnavailableError):  # the source's, not ours
                    self._snapshot_failed = (time.monotonic(), exc)
                raise
            if not isinstance(exc, BackendUnavailableError):
                raise
            mark_stale(self.store, self.name, exc.message)
            log.warning("source %s is unreachable; answering metadata from its stale cached schema", self.name)
            return cached.content
        self.reread_metadata = False
        self._known, self._snapshot_failed = None, None
        try:
            save_schema(self.store, self.name, content)
        except CatalogUnavailableError:  # kept next time the catalog answers
            _WARNINGS.warning("schema", "the catalog did not answer; metadata read from the sources themselves")
        return content

    def _refresh_in_background(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._refreshing or self._retired or now - self._refresh_started < _REFRESH_RETRY_SECONDS:
                return
            self._refreshing, self._refresh_started = True, now
        threading.Thread(target=self._refresh, name=f"schema-refresh-{self.name}", daemon=True).start()

    def _refresh(self) -> None:
        try:
            self._read_source(self._known)
        except GatewayError as exc:  # answered from the cache meanwhile; the next request after the retry delay
            log.info("metadata of %s not refreshed: %s", self.name, exc.message)
        except Exception:
            log.exception("metadata of %s not refreshed", self.name)
        finally:
            with self._lock:
                self._refreshing = False

    def list_schemas(self) -> list[str]:
        """List schema names, from the cache when fresh or the source is down."""
        return sorted(self._content()["schemas"])

    def list_tables(self, db_schema: str | None = None) -> list[TableInfo]:
        """Tables, from the cache when fresh or the source is down."""
        return cached_tables(self._content(), db_schema)

    def table_schema(self, db_schema: str, table: str) -> pa.Schema:
        """Return a table's Arrow schema, from the cache when fresh or the source is down.

        Raises:
            NotFoundError: no such table.

        """
        schema = cached_table_schema(self._content(), db_schema, table)
        if schema is None:
            return self._call(lambda live: live.table_schema(db_schema, table))
        return schema

    def close(self) -> None:
        """Close the source's backend if it was opened."""
        with self._lock:
            live, self._live = self._live, None
        if live is not None:
            live.close()


class CatalogSourceDirectory:
    """``server.query.directory.SourceDirectory`` over the catalog store, plus the ``system`` catalog.

    Args:
        store: The catalog.
        fallback: Another directory (the demo) whose sources are served too; catalog sources win on a clash.
        default: The default source's name.
        system: Serve the ``system`` catalog.
        refresh_seconds: How long the list of sources is reused before the store is asked again.
        schema_ttl_seconds: How long a cached schema answers metadata without asking the source.
        memory_limit: The ``system`` catalog's DuckDB memory limit (the server's ``memory_limit``).
        system_table_rows: The most history or audit rows one ``system`` query may read (None: no limit).

    """

    def __init__(
        self,
        store: CatalogStore,
        *,
        fallback=None,
        default: str | None = None,
        system: bool = True,
        refresh_seconds: float = 2.0,
        schema_ttl_seconds: float = 300.0,
        history: HistoryObserver | None = None,
        memory_limit: str = "2GB",
        system_table_rows: int | None = DEFAULT_MAX_LOG_ROWS,
    ) -> None:
        self.store = store
        self.fallback = fallback
        self._default = default
        self._system = (
            SystemBackend(store, before_read=history.flush if history else None, memory_limit=memory_limit,
                          max_log_rows=system_table_rows)
            if system
            else None
        )
        self.refresh_seconds = refresh_seconds
        self.schema_ttl_seconds = schema_ttl_seconds
        self._sources: dict[str, SourceInfo] = {}
        self._listed_once = False
        self._listing = False
        self._loaded_at = float("-inf")
        self._backends: dict[str, CatalogBackend] = {}
        self._lock = threading.Lock()

    def _catalog_sources(self) -> dict[str, SourceInfo]:
        """The catalog's sources (not disabled), listed again once ``refresh_seconds`` old.

        One caller lists while the others go on with the list as it was (except for the first listing: there is
        nothing to go on with), so a catalog with hundreds of sources, or a slow one, does not stall every query.
        """
        with self._lock:
            if self._listing or time.monotonic() - self._loaded_at < self.refresh_seconds:
                return self._sources
            if not self._listed_once:
                sources, gone = self._take(self._read())
            else:
                self._listing, sources, gone = True, None, []
        if sources is None:
            try:
                listed = self._read()
            except BaseException:
                with self._lock:
                    self._listing = False
                raise
            with self._lock:
                self._listing = False
                sources, gone = self._take(listed)
        for backend in gone:
            backend.retire(None)
        return sources

    def _read(self) -> list[SourceInfo] | None:
        """The catalog's sources; None when it does not answer and a list was taken before (it goes on serving)."""
        try:
            return self.store.list_sources()
        except CatalogUnavailableError:
            if not self._listed_once:
                raise
            # The catalog is away (a restart, a failover): the sources as last listed go on serving.
            _WARNINGS.warning("sources", "the catalog did not answer; serving its sources as last listed")
            return None

    def _take(self, listed: list[SourceInfo] | None) -> tuple[dict[str, SourceInfo], list[CatalogBackend]]:
        """Keep a new listing (lock held); return the sources and the backends of those gone, to retire."""
        gone: list[CatalogBackend] = []
        if listed is not None:
            self._sources = {s.name: s for s in listed if s.status != "inactive"}
            self._listed_once = True
            # A removed or disabled source's pool would otherwise keep its connections open for good.
            gone = [self._backends.pop(name) for name in list(self._backends) if name not in self._sources]
        self._loaded_at = time.monotonic()
        return self._sources, gone

    def names(self) -> list[str]:
        """Catalog sources that are not disabled, the fallback's sources and ``system``, sorted."""
        names = set(self._catalog_sources())
        if self.fallback is not None:
            names.update(self.fallback.names())
        if self._system is not None:
            names.add(SYSTEM_CATALOG)
        return sorted(names)

    def default(self) -> str | None:
        """Return the configured default, else the fallback's, else the first catalog source."""
        if self._default:
            return self._default
        if self.fallback is not None and self.fallback.default():
            return self.fallback.default()
        return next(iter(sorted(self._catalog_sources())), None)

    def route_target(self, name: str) -> SourceProfile:
        """Dialect and own data locations of a source."""
        if self._system is not None and name == SYSTEM_CATALOG:
            return source_profile(SystemBackend, {})
        info = self._catalog_sources().get(name)
        if info is not None:
            return source_profile(_family(info), info.options, info.dialect)
        return self._fallback(name).route_target(name)

    def backend(self, name: str) -> Backend:
        """Return a source's backend, opened on first use and again after its configuration changed."""
        if self._system is not None and name == SYSTEM_CATALOG:
            return self._system
        info = self._catalog_sources().get(name)
        if info is None:
            return self._fallback(name).backend(name)
        with self._lock:
            current = self._backends.get(name)
        swapped = False
        if current is not None and current.info.updated_at == info.updated_at:
            swapped = current.identity != current.current_identity()
            if not swapped:
                return current
        fresh = CatalogBackend(self.store, info, self.schema_ttl_seconds)
        fresh.reread_metadata = swapped
        with self._lock:
            existing = self._backends.get(name)
            if existing is not None and existing is not current:  # another call replaced it first
                return existing
            self._backends[name] = fresh
        if swapped:
            log.info("source %s: its data was replaced (a new file at its path); queries from now on read it", name)
        if current is not None:
            current.retire(fresh)
        return fresh

    def _fallback(self, name: str):
        if self.fallback is not None and name in self.fallback.names():
            return self.fallback
        try:
            if self.store.get_source(name).status == "inactive":
                raise BackendUnavailableError(
                    f"source {name!r} is disabled; enable it with `nexus-flight sources enable {name}`",
                    source=name,
                )
        except NotFoundError:
            pass
        names = self.names()
        raise NotFoundError(
            f"unknown catalog {name!r}{suggest(name, names)}; known catalogs: {', '.join(names)}"
        )

    def opened(self) -> dict[str, Backend]:
        """The backends open now, by source name (metrics read their pools; nothing is opened)."""
        with self._lock:
            opened = dict(self._backends)
        if self.fallback is not None:
            opened = {**self.fallback.opened(), **opened}
        return opened

    def close(self) -> None:
        """Close every open backend."""
        with self._lock:
            backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            backend.close()
        if self._system is not None:
            self._system.close()
        if self.fallback is not None:
            self.fallback.close()


class HistoryObserver:
    """A ``QueryService`` observer that writes each ``QueryEvent`` to the query history, off the query's path.

    The history row's id is the query id the server reports in errors, so a client's error leads to its row.
    """

    def __init__(
        self, store: CatalogStore, *, record_parameters: bool = False, background: bool = True
    ) -> None:
        recorder = QueryRecorder(store, record_parameters=record_parameters)
        self._writer = HistoryWriter(recorder, journal=journal_of(store, "history")) if background else None
        self._write = self._writer or recorder

    def __call__(self, event) -> None:
        """Record one finished query."""
        timings = dict(event.timings_ms)
        try:
            query_id = str(uuid.UUID(event.query_id))
        except (ValueError, TypeError, AttributeError):
            query_id = None
        self._write(
            QueryRecord(
                id=query_id,
                sql=event.sql,
                status=event.status,
                source=event.source,
                user=event.user,
                parameters=event.parameters or None,
                error=event.error,
                rows=event.rows,
                bytes=event.bytes,
                total_ms=timings.pop("total", None),
                phases_ms={k: v for k, v in timings.items() if k in PHASES},
                correlation_id=event.correlation_id,
                table_version=event.table_version,
                auth_method=event.auth_method,
                client_address=event.client_address,
                policy_rewritten=getattr(event, "policy_rewritten", None),
                ticket_sha256=getattr(event, "ticket_sha256", None),
            )
        )

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every query reported so far is in the catalog."""
        return self._writer.flush(timeout) if self._writer else True

    def counts(self) -> WriterCounts:
        """History rows written, dropped and pending (none counted when written in the caller's thread)."""
        return self._writer.counts() if self._writer else WriterCounts()

    def close(self) -> None:
        """Write what is pending and stop the writer thread."""
        if self._writer is not None:
            self._writer.close()


def history_observer(
    store: CatalogStore, *, record_parameters: bool = False, background: bool = True
) -> HistoryObserver:
    """Build the observer ``QueryService`` calls when a query ends (see :class:`HistoryObserver`)."""
    return HistoryObserver(store, record_parameters=record_parameters, background=background)
