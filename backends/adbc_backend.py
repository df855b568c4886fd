"""The backend skeleton the ADBC engines (PostgreSQL, Snowflake, SQLite, upstream Flight SQL) share.

Each engine's module keeps what is its own: the options model, how a connection is opened, how the driver's
errors read, its SQL rewrites and its catalog queries. ``AdbcBackend`` does the rest once: it validates the
options into ``ConfigError``, keeps the secret values to scrub from messages, pools connections, lends cursors
under the error mapping and streams results through ``AdbcExecution``.
"""

from __future__ import annotations

import abc
import contextlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import adbc_driver_manager
import pyarrow as pa
from pydantic import BaseModel

from nexus_flight.backends.adbc_execution import AdbcExecution
from nexus_flight.backends.base import Backend, Execution
from nexus_flight.backends.pool import ConnectionPool
from nexus_flight.backends.result_types import FieldRule
from nexus_flight.backends.source_config import secret_values, source_config
from nexus_flight.core.errors import GatewayError
from nexus_flight.core.source import QueryLimits, SourceSpec

_SQLSTATE = re.compile(r"SQLSTATE: ([0-9A-Z]{5})")


def sqlstate_of(exc: BaseException) -> str | None:
    """Return the SQLSTATE of an ADBC error, also when it surfaced from the Arrow stream as text."""
    state = getattr(exc, "sqlstate", None)
    if state:
        return state
    match = _SQLSTATE.search(str(exc))
    return match.group(1) if match else None


class AdbcBackend(Backend):
    """A source read through an ADBC driver: validated options, a connection pool and streamed results.

    Subclasses set ``config_model`` and implement ``_open`` (one driver connection) and
    ``_classify`` (a driver error as a gateway error); the other hooks have defaults.
    """

    config_model: ClassVar[type[BaseModel]]
    #: The engine's own result-type rule, applied before the generic extension-type clean-up.
    field_rule: ClassVar[FieldRule | None] = None

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self.config = source_config(self.config_model, spec)
        self._secrets = secret_values(spec)
        self._pool = ConnectionPool(spec.name, self._connect, **self._pool_options())

    # -- hooks -----------------------------------------------------------------------------------------------

    def _pool_options(self) -> Mapping[str, Any]:
        """Keyword arguments of the ``ConnectionPool``, from the pool settings most engines' options share."""
        return {
            "size": self.config.pool_size,
            "recycle_seconds": self.config.pool_recycle_seconds,
            "max_lifetime_seconds": self.config.pool_max_lifetime_seconds,
            "ping": self._ping_connection,
        }

    @abc.abstractmethod
    def _open(self) -> Any:
        """Open one driver connection (its errors are mapped by the caller)."""

    @abc.abstractmethod
    def _classify(self, exc: BaseException) -> GatewayError:
        """Return the gateway error for a driver, Arrow or OS error; engine text first, secrets scrubbed."""

    @staticmethod
    def _ping_connection(connection: Any) -> None:
        """Check a connection answers (pool pre-ping and ``ping``)."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()

    def _bind(self, row: Sequence[Any] | pa.RecordBatch) -> tuple | pa.RecordBatch:
        """Turn one parameter row into what the driver binds (a record batch passes as it is)."""
        return row if isinstance(row, pa.RecordBatch) else tuple(row)

    # -- plumbing --------------------------------------------------------------------------------------------

    @property
    def pool(self) -> ConnectionPool:
        """The source's connection pool (for health checks and tests)."""
        return self._pool

    @contextlib.contextmanager
    def _map_errors(self) -> Iterator[None]:
        """Translate driver and stream exceptions into the gateway's error tree, once, for every call."""
        try:
            yield
        except GatewayError:
            raise
        except (adbc_driver_manager.Error, pa.ArrowException, OSError) as exc:
            raise self._classify(exc) from exc

    def _connect(self) -> Any:
        with self._map_errors():
            return self._open()

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        """Lend a cursor on a pooled connection, errors mapped; the connection goes back afterwards."""
        with self._pool.connection() as connection, self._map_errors(), connection.cursor() as cursor:
            yield cursor

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a metadata query and return all its rows."""
        with self._cursor() as cursor:
            cursor.execute(sql, tuple(params) if params else None)
            return cursor.fetchall()

    def _describe(self, statement: str) -> pa.Schema:
        """Return the driver's result schema of ``statement`` without running it."""
        with self._cursor() as cursor:
            return cursor.adbc_execute_schema(statement)

    def _prepare(self, statement: str) -> pa.Schema | None:
        """Prepare ``statement`` and return the parameter schema the engine inferred (None if it says none)."""
        with self._cursor() as cursor:
            return cursor.adbc_prepare(statement)

    def _stream(
        self,
        statement: str,
        parameters: Sequence[Sequence[Any]] | None,
        limits: QueryLimits,
        *,
        described: pa.Schema | None = None,
        statement_options: Mapping[str, str] | None = None,
        columns: Sequence[FieldRule | None] = (),
        skip_rows: int = 0,
        planning: bool = False,
    ) -> Execution:
        """Stream ``statement`` once per parameter row from a pooled connection, in ``limits.batch_rows``.

        ``described`` is the result schema when it is known before running; ``statement_options`` are set on
        each ADBC statement before it runs; ``columns`` are this query's own type rules, by position;
        ``skip_rows`` leading rows of each result are the backend's own and are dropped. A ``planning`` stream
        (a schema read from the first rows) stops itself at ``limits.timeout_seconds``; a query's own stream
        is timed by the query service.
        """

        def run(cursor: Any, row: Sequence[Any] | None) -> pa.RecordBatchReader:
            if statement_options:
                cursor.adbc_statement.set_options(**statement_options)
            cursor.execute(statement, None if row is None else self._bind(row))
            return cursor.fetch_record_batch()

        return self._stream_each(run, parameters, limits, described=described, columns=columns,
                                 skip_rows=skip_rows, planning=planning)

    def _stream_each(
        self,
        run: Callable[[Any, Any], pa.RecordBatchReader],
        items: Sequence[Any] | None,
        limits: QueryLimits,
        *,
        described: pa.Schema | None = None,
        columns: Sequence[FieldRule | None] = (),
        skip_rows: int = 0,
        planning: bool = False,
    ) -> Execution:
        """Stream ``run(cursor, item)`` for each of ``items`` (once with None when there are none), concatenated."""
        return AdbcExecution(
            source=self.name,
            pool=self._pool,
            run=run,
            parameter_rows=items,
            rule=self.field_rule,
            map_errors=self._map_errors,
            planning_seconds=limits.timeout_seconds if planning else None,
            batch_rows=limits.batch_rows,
            described=described,
            columns=columns,
            skip_rows=skip_rows,
        )

    def ping(self) -> None:
        """Borrow a pooled connection (pre-pinged when idle) and check it answers."""
        with self._pool.connection() as connection, self._map_errors():
            self._ping_connection(connection)

    def close(self) -> None:
        """Close the pool's connections; lent ones close when they come back."""
        self._pool.close()
