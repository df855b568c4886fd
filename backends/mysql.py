"""MySQL and every MySQL-protocol engine (MariaDB, TiDB, OceanBase, Doris, StarRocks …), over MariaDB Connector/C.

The client's statement runs on the server itself, so answers carry the engine's own semantics (AVG over DECIMAL
stays DECIMAL, ``d - INTERVAL 1 DAY`` stays a DATE) and the column names the client wrote. The driver is
MariaDB Connector/Python (``pip install mariadb``, built against Debian's ``libmariadb-dev``), chosen on
measurement (``benchmarks/mysql_bench.py``): it speaks the binary protocol, so every statement is a server-side
prepared statement and ``?`` parameters are bound by the protocol, never pasted into SQL text; results are read
unbuffered (``SSCursor``-style) in batches of the size the pipeline asks for, so nothing holds a whole result.

Read-only, behind the validator:

* the login is checked at every connect with ``SHOW GRANTS``: anything beyond SELECT / SHOW VIEW (FILE, SUPER,
  PROCESS, EXECUTE, any write) refuses the source, unless its options say ``allow_privileged_login = true``
  (``backends/mysql_grants.py``);
* every session is ``SET SESSION TRANSACTION READ ONLY`` and every statement runs inside
  ``START TRANSACTION READ ONLY``, rolled back afterwards; a connection going back to the pool is reset
  (``COM_RESET_CONNECTION``: session variables, user-level locks, temporary tables) and set up again;
* statements are prepared one at a time: a second statement after ``;`` is a syntax error on the server.

Cancel and timeouts reach the server: ``KILL QUERY <connection id>`` from a second connection stops the statement
(also while the server computes the first row), and the session's ``max_statement_time`` (MariaDB) or
``max_execution_time`` (MySQL, SELECT only) bounds it on the server as well.

Result schemas are known before a query runs: the statement is probed with ``sql_select_limit = 0``, or, when
it sets its own LIMIT or is a UNION, as ``SELECT * FROM (<query>) LIMIT 0``; the server answers both from its
plan without reading rows. Subqueries without a table (``SELECT (SELECT f())``, a CTE of constants) are evaluated
while planning, so a probe is bounded by the source's ``statement_timeout_seconds`` like any statement.
Types: ``backends/mysql_arrow.py``; an error the server sends where a row was expected: ``backends/mysql_rows.py``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import mariadb  # a missing package becomes NotInstalledError in the registry
import pyarrow as pa
from sqlglot import exp

from nexus_flight.backends.base import (
    FK_RULE_CODES,
    Backend,
    Capabilities,
    Execution,
    ForeignKeyColumn,
    KeyColumn,
    TableInfo,
    TableLineage,
    catalog_column,
    parameter_schema,
)
from nexus_flight.backends.early_cancel import EarlyCancel
from nexus_flight.backends.engine_messages import scrub
from nexus_flight.backends.mysql_arrow import columns_of, result_schema, to_batch
from nexus_flight.backends.mysql_grants import excess_privileges, refusal
from nexus_flight.backends.mysql_rows import RowFetcher
from nexus_flight.backends.options.mysql import MySQLConfig
from nexus_flight.backends.parameter_types import infer_parameter_types, quiet_probe
from nexus_flight.backends.pool import ConnectionPool
from nexus_flight.backends.source_config import secret_values, source_config
from nexus_flight.core.errors import (
    AuthenticationError,
    BackendError,
    BackendUnavailableError,
    ConfigError,
    ForbiddenError,
    GatewayError,
    InvalidQueryError,
    NotFoundError,
    QueryCancelledError,
    QueryTimeoutError,
    ReadOnlyViolationError,
)
from nexus_flight.core.identifiers import IdentifierRules, mysql_rules
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.source import QueryLimits, SourceSpec

log = logging.getLogger(__name__)


# -- errors --------------------------------------------------------------------------------------------------

#: How soon a cancel kills again a statement the server may not have received yet (each KILL opens a connection).
_KILL_AGAIN_SECONDS = 0.1
_UNAVAILABLE = {1040, 1053, 1129, 1130, 2002, 2003, 2005, 2006, 2012, 2013, 2026, 2055}
_AUTHENTICATION = {1045, 1251, 1698}
_FORBIDDEN = {1044, 1095, 1142, 1143, 1227, 1370}
_READ_ONLY = {1290, 1792, 1836}
_NOT_FOUND = {1049, 1146}
_DENIED_COMMAND = re.compile(r"^(\w+(?: \w+)?) command denied", re.IGNORECASE)
_INTERRUPTED = 1317
_STATEMENT_TIMEOUT = {1969, 3024}


def _classify(exc: BaseException, source: str, secrets: Sequence[str], connecting: bool = False) -> GatewayError:
    """The gateway error for a driver error: the server's text first, its error number in the details.

    "Access denied" refuses the gateway's login only while ``connecting``; on a statement it is the server's
    answer about an object (a view whose definer no longer exists): the login's permissions, not its credentials.
    """
    errno = getattr(exc, "errno", None)
    text = scrub(str(getattr(exc, "errmsg", None) or exc).strip() or type(exc).__name__, secrets)
    message = f"[mysql] {text}"
    details = {"source": source, "vendor_code": errno, "sqlstate": getattr(exc, "sqlstate", None)}
    if errno in _STATEMENT_TIMEOUT:
        return QueryTimeoutError(message, **details)
    if errno == _INTERRUPTED:
        return QueryCancelledError(message, **details)
    if errno in _AUTHENTICATION:
        return AuthenticationError(message, **details) if connecting else ForbiddenError(message, **details)
    if errno in _READ_ONLY:
        return ReadOnlyViolationError(message, **details)
    if errno in _FORBIDDEN:
        denied = _DENIED_COMMAND.match(text)
        if denied and denied.group(1).upper() not in ("SELECT", "SHOW VIEW"):
            # A write the login may not make: the read-only refusal it is.
            return ReadOnlyViolationError(f"{message} (the source's login may only read)", **details)
        return ForbiddenError(f"{message} (the source's login may only read)", **details)
    if errno in _NOT_FOUND:
        return NotFoundError(message, **details)
    if errno in _UNAVAILABLE or isinstance(exc, mariadb.InterfaceError):
        return BackendUnavailableError(message, **details)
    if isinstance(exc, mariadb.Error) and not isinstance(exc, mariadb.OperationalError | mariadb.InternalError):
        return InvalidQueryError(message, **details)
    if isinstance(exc, ValueError | OverflowError | SystemError):
        # The driver cannot represent a value (a zero date '0000-00-00', say).
        return InvalidQueryError(f"[mysql] a value of the result cannot be read: {text}", **details)
    if errno is not None and 1000 <= errno < 2000:
        return InvalidQueryError(message, **details)
    return BackendError(message, **details)


# -- SQL -----------------------------------------------------------------------------------------------------

def _probe(sql: str) -> str:
    """A statement that returns ``sql``'s columns without reading rows (the newline ends a trailing comment)."""
    return f"SELECT * FROM (\n{sql}\n) AS nexus_schema_probe LIMIT 0"


def _wrap_to_probe(tree: exp.Expression | None) -> bool:
    """True when the statement has its own LIMIT or is a set operation, which ``sql_select_limit`` does not stop.

    The server answers ``sql_select_limit = 0`` without reading rows, except for these; a derived table with
    ``LIMIT 0`` stops them, but is evaluated at once when it has no table (``SELECT f()``): each probe is used
    where it reads nothing. The tree is the plan's (unknown: not wrapped).
    """
    if tree is None:
        return False
    return isinstance(tree, exp.SetOperation) or (isinstance(tree, exp.Query) and tree.args.get("limit") is not None)


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


#: Server modes that change how a statement is read (a backslash, another product's grammar: MariaDB's ORACLE mode
#: parses PL/SQL); the sessions drop them.
_READING_MODES = ("NO_BACKSLASH_ESCAPES", "ORACLE", "MSSQL", "DB2", "POSTGRESQL", "MAXDB", "ANSI")
#: The session's SQL mode as the gateway reads MySQL (``core/dialects.py``): ``"…"`` quotes an identifier
#: (ANSI_QUOTES, the quote the gateway announces) and a backslash escapes in strings, in MySQL's own grammar,
#: whatever the server's own modes; the validator, grants and policies then read a statement as the server runs it.
def _without_reading_modes() -> str:
    # Plain REPLACE on the comma-framed list (no REGEXP_REPLACE before MySQL 8): ',ORACLE,' -> ','.
    modes = "CONCAT(',', @@SESSION.sql_mode, ',')"
    for mode in _READING_MODES:
        modes = f"REPLACE({modes}, ',{mode},', ',')"
    return f"TRIM(BOTH ',' FROM {modes})"


_SQL_MODE = f"SESSION sql_mode = CONCAT_WS(',', NULLIF({_without_reading_modes()}, ''), 'ANSI_QUOTES')"


#: How long a described schema is reused (planning and running one statement), and how many are kept.
_DESCRIBED_SECONDS = 2.0
_DESCRIBED_KEPT = 256

#: Errors of the wrapped probe after which the statement is probed as itself: a syntax error (SHOW, DESCRIBE …)
#: or a repeated column name, which a derived table does not allow.
_UNWRAPPABLE = {1060, 1064}


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch of rows becomes Arrow.

    The driver creates a tuple per row and an object per value; the collector's passes over those (which hold no
    cycles) cost about a third of the read (benchmarks/RESULTS.md). Reference counting still frees everything;
    the pause lasts one batch and is undone only by the thread that made it.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _conformed(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` in the announced ``schema``, column by column (by position: the probe named them)."""
    columns = [column.cast(f.type) for column, f in zip(batch.columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


# -- execution -----------------------------------------------------------------------------------------------


class MySQLExecution(Execution):
    """One statement on one borrowed connection, streamed unbuffered, once per parameter row.

    The statement starts when the stream is first read, so ``cancel`` reaches it while the server computes the
    first row. ``cancel`` kills the running statement on the server from another connection; the connection is
    then closed instead of going back to the pool. The server's own statement timeout (the shorter of the
    query's and the source's) ends a statement too, reported as a timeout naming it.
    """

    def __init__(
        self,
        backend: MySQLBackend,
        sql: str,
        parameter_rows: Sequence[Sequence[Any]] | None,
        limits: QueryLimits,
        schema: pa.Schema,
    ) -> None:
        self._backend = backend
        self._sql = sql
        self._rows: list[Sequence[Any]] = [tuple(r) for r in parameter_rows] if parameter_rows else [()]
        self._limits = limits
        #: The server enforces the source's statement timeout too: the shorter one ends the statement.
        self._timeout = min(limits.timeout_seconds, backend.config.statement_timeout_seconds)
        self._schema = schema
        self._lock = threading.Lock()
        self._connection: Any = None
        #: The server's id of the connection, read by the thread that reads the stream: ``cancel`` runs on others,
        #: and the driver's connection is not to be touched from two threads (closing it frees it, GIL released).
        self._connection_id: int | None = None
        self._item: Any = None
        self._running = False
        self._finished = False
        self._cancelled = False
        #: A KILL QUERY that reaches the server before the statement does stops nothing: repeated meanwhile.
        self._early_cancel = EarlyCancel(self._kill, interval_seconds=_KILL_AGAIN_SECONDS)
        self._reader = pa.RecordBatchReader.from_batches(schema, self._batches())

    @property
    def reader(self) -> pa.RecordBatchReader:
        """The lazy result stream."""
        return self._reader

    def _batches(self) -> Iterator[pa.RecordBatch]:
        healthy = False
        try:
            self._item = self._backend.pool.acquire()
            connection = self._item.connection
            with self._lock:
                self._connection, self._connection_id = connection, int(connection.connection_id)
            for row in self._rows:
                yield from self._run_once(row)
            healthy = True
        except GatewayError as exc:
            raise self._stopped_error(exc) from exc
        except (mariadb.Error, ValueError, OverflowError, SystemError, pa.ArrowException) as exc:
            raise self._stopped_error(self._backend.classify(exc)) from exc
        finally:
            self._finish(healthy)

    def _run_once(self, row: Sequence[Any]) -> Iterator[pa.RecordBatch]:
        connection = self._connection
        with self._backend.read_only_transaction(connection, self._timeout):
            cursor = connection.cursor(binary=True, buffered=False)
            drained = False
            with self._lock:
                if self._cancelled:
                    raise self._stopped_error(None)
                self._running = True  # from here on, a cancel kills the statement on the server
            try:
                with self._early_cancel.starting():
                    cursor.execute(self._sql, tuple(self._backend.bindable(v) for v in row))
                if not cursor.description:
                    drained = True
                    return
                schema = result_schema(columns_of(cursor))
                conform = not schema.equals(self._schema)
                fetcher = RowFetcher(cursor)
                while True:
                    if self._cancelled:
                        raise self._stopped_error(None)
                    with _collector_paused():
                        rows = fetcher.fetch(self._limits.batch_rows)
                        batch = to_batch(rows, schema) if rows else None
                        del rows
                    if batch is None:
                        drained = True
                        break
                    # A parameter can change a column's type from what the probe announced: keep the announced one.
                    yield _conformed(batch, self._schema) if conform else batch
            finally:
                with self._lock:
                    self._running = False
                if drained:
                    with contextlib.suppress(mariadb.Error):
                        cursor.close()
                # Else rows are left unread: the connection is closed, never drained (that could take long).

    def _stopped_error(self, error: GatewayError | None) -> GatewayError:
        """The error of a stream we cancelled, the server's statement timeout naming its limit, else the engine's."""
        if isinstance(error, QueryTimeoutError):
            return QueryTimeoutError(
                f"the query ran longer than its timeout of {self._timeout:g} s and was stopped",
                source=self._backend.name,
            )
        if self._cancelled or error is None:
            return QueryCancelledError("[mysql] the query was cancelled", source=self._backend.name)
        return error

    def cancel(self) -> None:
        """Kill the running statement on the server; the stream ends at once."""
        with self._lock:
            if self._finished or self._cancelled:
                return
            self._cancelled = True
        self._kill()
        self._early_cancel.cancelled()

    def _kill(self) -> None:
        # A cancelled execution's connection is closed, never pooled: a late KILL reaches no other statement.
        with self._lock:
            connection_id = self._connection_id if self._running and not self._finished else None
        if connection_id is not None:
            self._backend.kill_query(connection_id)

    def _finish(self, healthy: bool) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
            item = self._item
        if item is not None:
            self._backend.pool.release(item, healthy and not self._cancelled)

    def close(self) -> None:
        """Abandon the stream: kill what still runs and drop the connection."""
        with self._lock:
            finished = self._finished
            started = self._item is not None
        if not finished:
            self.cancel()
            if not started:
                self._finish(False)
            else:
                self._reader.close()


def _lower_case_table_names(connection: Any) -> int:
    """The server's ``@@lower_case_table_names``: 0 compares database and table names exactly."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@lower_case_table_names")
        return int(cursor.fetchone()[0])


# -- the backend ---------------------------------------------------------------------------------------------


class MySQLBackend(Backend):
    """A MySQL-protocol database: the client's statements run on the server, read-only, pooled and streamed."""

    kind = "mysql"
    dialect = "mysql"
    capabilities = Capabilities(parameters=True, cancel=True, keys=True, schema_without_execution=True)
    #: MySQL's type names (information_schema's DATA_TYPE) and the XDBC data type of what clients get for them.
    xdbc_type_names = {
        "tinyint": -6, "smallint": 5, "mediumint": 4, "int": 4, "bigint": -5, "decimal": 3, "float": 7,
        "double": 8, "bit": -7, "char": 1, "varchar": 12, "tinytext": 12, "text": 12, "mediumtext": 12,
        "longtext": 12, "enum": 12, "set": 12, "json": 12, "binary": -3, "varbinary": -3, "blob": -3,
        "date": 91, "time": 92, "datetime": 93, "timestamp": 93, "year": 5,
    }  # fmt: skip
    read_only_guard = (
        "the login must hold SELECT only (SHOW GRANTS is checked at connect), every session is SET SESSION "
        "TRANSACTION READ ONLY and every statement runs in START TRANSACTION READ ONLY, one prepared statement at "
        "a time; pooled connections are reset before reuse"
    )
    config_model = MySQLConfig
    identifiers_from_server = True

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self.config = source_config(MySQLConfig, spec)
        self.default_schema = self.config.database
        self._secrets = secret_values(spec)
        self._mariadb: bool | None = None
        #: Products with sqlglot dialects of their own (Doris, StarRocks) read ``"…"`` as a string, as those do.
        self._ansi_quotes = spec.dialect in (None, "mysql")
        #: How the server compares names (``core/identifiers.py``): read from it at the first connection; until
        #: then table names compare exactly (refusing more, never less).
        self.identifier_rules: IdentifierRules = mysql_rules(0)
        self._table_case_read = False
        self._described: OrderedDict[tuple, tuple[float, pa.Schema]] = OrderedDict()
        self._described_lock = threading.Lock()
        c = self.config
        self._pool = ConnectionPool(
            spec.name,
            self._connect,
            size=c.pool_size,
            recycle_seconds=min(c.pool_idle_timeout_seconds, c.pool_recycle_seconds or c.pool_idle_timeout_seconds),
            max_lifetime_seconds=c.pool_max_lifetime_seconds,
            acquire_timeout_seconds=c.pool_timeout_seconds,
            ping=lambda connection: connection.ping(),
            reset=self._reset,
        )
        # Connect now: a wrong address, login or database, or a privileged login, is reported when the source opens.
        with self._pool.connection():
            pass

    @property
    def pool(self) -> ConnectionPool:
        """The source's connection pool."""
        return self._pool

    @classmethod
    def default_schema_for(cls, options: Mapping[str, Any]) -> str | None:
        """The source's database: unqualified names resolve in it."""
        database = options.get("database")
        return str(database) if database else None

    def classify(self, exc: BaseException, connecting: bool = False) -> GatewayError:
        """Map a driver error into the gateway's error tree (secrets scrubbed)."""
        return _classify(exc, self.name, self._secrets, connecting)

    @contextlib.contextmanager
    def _errors(self, connecting: bool = False) -> Iterator[None]:
        try:
            yield
        except GatewayError:
            raise
        except (mariadb.Error, ValueError, OverflowError, SystemError) as exc:
            raise self.classify(exc, connecting) from exc

    # -- connections -----------------------------------------------------------------------------------------

    def _open(self) -> Any:
        """A new driver connection with autocommit, utf8mb4 and nothing else set up."""
        c = self.config
        kwargs: dict[str, Any] = {
            "host": c.host,
            "port": c.port,
            "user": c.username,
            "database": c.database,
            "connect_timeout": c.connect_timeout_seconds,
            "autocommit": True,
        }
        if c.password is not None:
            kwargs["password"] = c.password.get_secret_value()
        if c.ssl_mode and c.ssl_mode != "disabled":
            kwargs["ssl"] = True
            kwargs["ssl_verify_cert"] = c.ssl_mode in ("verify_ca", "verify_identity")
            if c.ssl_ca:
                kwargs["ssl_ca"] = c.ssl_ca
        with self._errors(connecting=True):
            return mariadb.connect(**kwargs)

    def _connect(self) -> Any:
        connection = self._open()
        try:
            with self._errors():
                if self._mariadb is None:
                    self._mariadb = "mariadb" in (connection.server_info or "").lower()
                if not self._table_case_read:
                    self.identifier_rules = mysql_rules(_lower_case_table_names(connection))
                    self._table_case_read = True
                if not self.config.allow_privileged_login:
                    self._check_grants(connection)
                self._set_up(connection)
        except BaseException:
            with contextlib.suppress(Exception):
                connection.close()
            raise
        return connection

    def _check_grants(self, connection: Any) -> None:
        """Refuse a login that holds more than read privileges (``backends/mysql_grants.py``)."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            login = cursor.fetchone()[0]
            cursor.execute("SHOW GRANTS")
            grants = [r[0] for r in cursor.fetchall()]

            def grants_of_role(role: str) -> list[str] | None:
                try:
                    cursor.execute(f"SHOW GRANTS FOR {role}")  # the role's name as the server itself printed it
                except mariadb.Error:
                    return None
                return [r[0] for r in cursor.fetchall()]

            excess = excess_privileges(grants, grants_of_role)
        if excess:
            raise ConfigError(refusal(login, self.config.database, excess), source=self.name)

    def _set_up(self, connection: Any) -> None:
        """Make a session read-only, UTC (TIMESTAMP values then arrive as UTC) and in the gateway's SQL mode."""
        mode = f", {_SQL_MODE}" if self._ansi_quotes else ""
        with connection.cursor() as cursor:
            if self._mariadb:
                cursor.execute(f"SET time_zone = '+00:00', SESSION tx_read_only = 1{mode}")
            else:
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
                cursor.execute(f"SET time_zone = '+00:00'{mode}")

    def _reset(self, connection: Any) -> None:
        """Undo what the last statement left in the session (``COM_RESET_CONNECTION``), then set it up again."""
        connection.reset()
        self._set_up(connection)

    @contextlib.contextmanager
    def read_only_transaction(
        self, connection: Any, timeout_seconds: float, *, select_limit_zero: bool = False
    ) -> Iterator[None]:
        """Run a block in ``START TRANSACTION READ ONLY`` with the statement timeout set on the server.

        Nothing ends the transaction here: the connection's reset, when it goes back to the pool, rolls it back
        along with every session variable set for the block (one round trip instead of two).
        """
        if self._mariadb:
            settings = [f"max_statement_time = {float(timeout_seconds):.3f}"]
        else:
            settings = [f"max_execution_time = {max(1, int(timeout_seconds * 1000))}"]
        if select_limit_zero:
            settings.append("sql_select_limit = 0")
        with connection.cursor() as cursor:
            cursor.execute("SET " + ", ".join(f"SESSION {s}" for s in settings))
            cursor.execute("START TRANSACTION READ ONLY")
        yield

    def kill_query(self, connection_id: int) -> None:
        """Stop the statement the server's connection ``connection_id`` runs, from a connection of its own."""
        try:
            killer = self._open()
        except GatewayError as exc:
            log.warning("source %s: cannot connect to kill a query: %s", self.name, exc.message)
            return
        try:
            with killer.cursor() as cursor:
                cursor.execute(f"KILL QUERY {int(connection_id)}")
        except mariadb.Error as exc:
            log.warning("source %s: KILL QUERY failed: %s", self.name, self.classify(exc).message)
        finally:
            with contextlib.suppress(Exception):
                killer.close()

    @staticmethod
    def bindable(value: Any) -> Any:
        """A parameter as the driver binds it: zoned datetimes as UTC wall time (the session's zone)."""
        import datetime as dt

        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    # -- queries ---------------------------------------------------------------------------------------------

    def _describe(
        self, sql: str, parameter_count: int, *, tree: exp.Expression | None = None, nullability: bool = False
    ) -> pa.Schema:
        """The result schema of ``sql`` (whose tree is ``tree``, if known), from a probe that reads no rows.

        A statement is described when it is planned and again when it runs: the answer is kept for a moment.
        """
        key = (sql, parameter_count, nullability)
        now = time.monotonic()
        with self._described_lock:
            found = self._described.get(key)
            if found is not None and now - found[0] < _DESCRIBED_SECONDS:
                return found[1]
        schema = self._probe_schema(sql, _wrap_to_probe(tree), (None,) * parameter_count, nullability)
        with self._described_lock:
            self._described[key] = (now, schema)
            self._described.move_to_end(key)
            while len(self._described) > _DESCRIBED_KEPT:
                self._described.popitem(last=False)
        return schema

    def _probe_schema(self, statement: str, wrap: bool, nulls: tuple, nullability: bool) -> pa.Schema:
        timeout = self.config.statement_timeout_seconds
        with self._pool.connection() as connection, self._errors():
            with self.read_only_transaction(connection, timeout, select_limit_zero=not wrap):
                if wrap:
                    try:
                        return self._probe_columns(connection, _probe(statement), nulls, nullability)
                    except mariadb.Error as exc:
                        if getattr(exc, "errno", None) not in _UNWRAPPABLE:
                            raise
                    with connection.cursor() as cursor:
                        cursor.execute("SET SESSION sql_select_limit = 0")  # undone by the connection's reset
                return self._probe_columns(connection, statement, nulls, nullability)

    @staticmethod
    def _probe_columns(connection: Any, statement: str, parameters: tuple, nullability: bool) -> pa.Schema:
        cursor = connection.cursor(binary=True, buffered=True)
        try:
            cursor.execute(statement, parameters)
            if not cursor.description:
                return pa.schema([])
            return result_schema(columns_of(cursor), nullability=nullability)
        finally:
            cursor.close()

    def get_schema(self, plan: QueryPlan) -> pa.Schema:
        """The result schema, from a probe the server answers without reading rows (see the module docstring)."""
        return self._describe(plan.statement, plan.parameter_count, tree=plan.query)

    def get_parameter_schema(self, plan: QueryPlan) -> pa.Schema:
        """Placeholder types from what each one is compared with, typed by the server."""
        probe = quiet_probe(lambda candidate: self._describe(candidate, 0))
        return parameter_schema(infer_parameter_types(plan, probe))

    def execute(self, plan: QueryPlan, parameters: Sequence[Sequence[Any]] | None, limits: QueryLimits) -> Execution:
        """Announce the schema now, run the statement on the server when the stream is first read."""
        statement = plan.statement  # one statement: trailing semicolons would be a second to the server
        count = len(parameters[0]) if parameters else 0
        schema = self._describe(statement, count, tree=plan.query)
        return MySQLExecution(self, statement, parameters, limits, schema)

    # -- metadata (information_schema of the configured database) --------------------------------------------

    def _rows(self, sql: str, *params: Any) -> list[tuple]:
        with self._pool.connection() as connection, self._errors():
            cursor = connection.cursor(binary=True, buffered=True)
            try:
                cursor.execute(sql, params)
                return cursor.fetchall()
            finally:
                cursor.close()

    def _own(self, db_schema: str | None) -> bool:
        return db_schema is None or db_schema == self.config.database

    def list_schemas(self) -> list[str]:
        """The configured database: the only one the source exposes."""
        rows = self._rows(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", self.config.database
        )
        return [rows[0][0]] if rows else []

    def list_tables(self, db_schema: str | None = None) -> list[TableInfo]:
        """Tables and views of the configured database, as the server lists them now."""
        if not self._own(db_schema):
            return []
        rows = self._rows(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1",
            self.config.database,
        )
        return [TableInfo(self.config.database, t, "VIEW" if kind == "VIEW" else "TABLE") for t, kind in rows]

    def table_schema(self, db_schema: str, table: str) -> pa.Schema:
        """A table's Arrow schema with the server's type names and NOT NULLs, from its metadata (no rows read)."""
        columns = self._own(db_schema) and self._rows(
            "SELECT COLUMN_TYPE, IS_NULLABLE, DATETIME_PRECISION FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            self.config.database,
            table,
        )
        own = f"SELECT * FROM {_quote(db_schema)}.{_quote(table)}"
        if not columns:
            if self._own(db_schema):
                # information_schema hides the columns of a view the login cannot read: the server says why
                self._describe(own, 0, nullability=True)
            raise NotFoundError(f"table {db_schema}.{table} not found", source=self.name)
        described = self._describe(own, 0, nullability=True)
        pairs = zip(described, columns, strict=True)
        return pa.schema([catalog_column(f, type_name, nullable == "YES", None if digits is None else int(digits))
                          for f, (type_name, nullable, digits) in pairs])

    def view_definition(self, db_schema: str, view: str) -> str | None:
        """The query of a view of the configured database (``information_schema.VIEWS``), names qualified.

        The server shows it only to a login holding SHOW VIEW on it (the README's reader does); without it, or
        for a view of another database, there is none.
        """
        rows = self._own(db_schema) and self._rows(
            "SELECT VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            self.config.database,
            view,
        )
        if not rows or len(rows) != 1 or not rows[0][0]:
            return None
        text = rows[0][0]
        return text.decode() if isinstance(text, bytes | bytearray) else str(text)

    def table_lineage(self) -> TableLineage:
        """Tables of the configured database whose rows are another table's or another server's.

        A MERGE table reads the MyISAM tables it unites, a FEDERATED, CONNECT or SPIDER table a remote (or this)
        server's: the server lists each as a base table, and only its engine tells (``information_schema.TABLES``).
        MySQL's own partitions are not tables of their own (``t PARTITION (p0)`` still names ``t``).
        """
        rows = self._rows(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' "
            "AND UPPER(ENGINE) IN ('MRG_MYISAM', 'MERGE', 'FEDERATED', 'CONNECT', 'SPIDER') ORDER BY 1",
            self.config.database,
        )
        return TableLineage(foreign=tuple((self.config.database, table) for (table,) in rows))

    def primary_keys(self, db_schema: str | None, table: str) -> list[KeyColumn]:
        """PRIMARY KEY columns in key order."""
        if not self._own(db_schema):
            return []
        rows = self._rows(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, CONSTRAINT_NAME "
            "FROM information_schema.KEY_COLUMN_USAGE WHERE CONSTRAINT_NAME = 'PRIMARY' "
            "AND TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY 4",
            self.config.database,
            table,
        )
        return [KeyColumn(s, t, c, int(seq), name) for s, t, c, seq, name in rows]

    def foreign_keys(self, db_schema: str | None = None, table: str | None = None) -> list[ForeignKeyColumn]:
        """Foreign-key column pairs within the configured database, with their ON UPDATE / ON DELETE rules."""
        if not self._own(db_schema):
            return []
        sql = (
            "SELECT k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, "
            "k.TABLE_SCHEMA, k.TABLE_NAME, k.COLUMN_NAME, k.ORDINAL_POSITION, k.CONSTRAINT_NAME, "
            "r.UNIQUE_CONSTRAINT_NAME, r.UPDATE_RULE, r.DELETE_RULE "
            "FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
            "ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
            "WHERE k.REFERENCED_TABLE_NAME IS NOT NULL AND k.TABLE_SCHEMA = ? AND k.REFERENCED_TABLE_SCHEMA = ?"
        )
        params: list[str] = [self.config.database, self.config.database]
        if table is not None:
            sql += " AND (k.TABLE_NAME = ? OR k.REFERENCED_TABLE_NAME = ?)"
            params += [table, table]
        rows = self._rows(sql + " ORDER BY 4, 5, 8, 7", *params)
        return [
            ForeignKeyColumn(
                pk=KeyColumn(ps, pt, pc, int(seq), pk_name),
                fk=KeyColumn(fs, ft, fc, int(seq), fk_name),
                update_rule=FK_RULE_CODES.get(upd, 3),
                delete_rule=FK_RULE_CODES.get(dele, 3),
            )
            for ps, pt, pc, fs, ft, fc, seq, fk_name, pk_name, upd, dele in rows
        ]

    def ping(self) -> None:
        """Borrow a pooled connection and run ``SELECT 1``."""
        self._rows("SELECT 1")

    def close(self) -> None:
        """Close the pool's connections; lent ones close when they come back."""
        self._pool.close()
