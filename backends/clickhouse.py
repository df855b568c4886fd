"""ClickHouse (and every product speaking its HTTP interface), over clickhouse-connect.

Each source keeps a pool of clickhouse-connect HTTP clients (``backends.pool``), without sessions, so nothing a
query does outlives it. Every query is sent with ``readonly=1`` (or 2, see ``readonly``), ``max_execution_time``
from the query timeout and ``max_memory_usage`` from the memory limit, all as request settings; with
``readonly=1`` the query can change none of them (``SETTINGS``/``SET`` are refused by ClickHouse), with
``readonly=2`` it can change settings but still write nothing. The validator refuses writes first; this is the
second line of defence.

Results stream as ClickHouse's ArrowStream format, read batch by batch from the HTTP response; each column is
converted from ClickHouse's Arrow encoding to the type its ClickHouse type means (``backends/clickhouse_types.py``:
DateTime as timestamps, Enum as labels, IPs and UUIDs as text, (U)Int128/256 exact). The result schema comes from
``DESCRIBE (query)``, which ClickHouse answers without running the query; the answer serves the same statement for
a few seconds, so a client's GetFlightInfo and DoGet cost one DESCRIBE, not two.

Parameters: each ``?`` becomes a server-side placeholder ``{p1:Type}``, the type following the bound Python value
(int → Int64, Decimal → Decimal(P, S), date → Date32, aware datetime → DateTime64(6, 'UTC') ...); values travel
as ``param_p1`` request parameters and ClickHouse parses them as that type: no value is formatted into the SQL.

The result format travels in the ``X-ClickHouse-Format`` request header (the HTTP interface's default format),
never as text appended to the statement: a statement ending in a ``--`` comment stays whole, and ClickHouse's
error for a broken statement speaks of the statement alone. Where the gateway wraps a statement (``DESCRIBE``,
a ``LIMIT 0`` probe) the statement stands on lines of its own for the same reason. A response in any other
format (the statement's own ``FORMAT`` clause wins over the header) is refused.

Cancel closes the HTTP response (ClickHouse cancels a query whose client went away) and sends
``KILL QUERY WHERE query_id = {id:String} ASYNC`` for the query id the gateway chose; the deadline does the same
and reports a timeout.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.exceptions import ClickHouseError
from pydantic import BaseModel

from nexus_flight.backends.base import Backend, Capabilities, Execution, TableInfo
from nexus_flight.backends.clickhouse_types import arrow_mapping, parse_type
from nexus_flight.backends.engine_messages import scrub
from nexus_flight.backends.limits import planning_limits
from nexus_flight.backends.options.clickhouse import ClickHouseConfig
from nexus_flight.backends.pool import STATEMENT_ERRORS, ConnectionPool
from nexus_flight.backends.result_types import plain_schema, type_plan
from nexus_flight.backends.source_config import secret_values, source_config
from nexus_flight.core.errors import (
    AuthenticationError,
    BackendError,
    BackendUnavailableError,
    ForbiddenError,
    GatewayError,
    InvalidQueryError,
    LimitExceededError,
    NotFoundError,
    QueryCancelledError,
    QueryTimeoutError,
    ReadOnlyViolationError,
)
from nexus_flight.core.plan import QueryPlan, replace_placeholders
from nexus_flight.core.source import QueryLimits, SourceSpec

#: Databases that hold ClickHouse's own tables, hidden from the metadata commands.
_SYSTEM_DATABASES = ("system", "INFORMATION_SCHEMA", "information_schema")
_VIEW_ENGINES = ("View", "MaterializedView", "LiveView", "WindowView")
#: How long a DESCRIBE answer is reused for the same statement.
_DESCRIBED_SECONDS = 5.0


# -- errors --------------------------------------------------------------------------------------------------

_CODE = re.compile(r"\b[Cc]ode: (\d+)")
_ENGINE_TEXT = re.compile(
    r"(?:Code: \d+\. )?DB::Exception: (.*?)(?: \(version [^)]*\))?(?: \(for url [^)]*\))?\s*$", re.S
)
#: ClickHouse error codes by the gateway error they are.
_INVALID = {
    1, 6, 27, 32, 33, 36, 38, 41, 42, 43, 44, 46, 47, 48, 49, 51, 53, 62, 69, 70, 72, 115, 117, 130, 131,
    179, 184, 190, 215, 352, 386, 395, 403, 407, 456, 457, 458, 477, 517, 620, 701,
}
#: UNKNOWN_TABLE, UNKNOWN_DATABASE: the object asked for does not exist.
_NOT_FOUND = {60, 81}
_READONLY = {164}
#: ACCESS_DENIED: the login's grants do not cover the statement (its credentials were accepted: that is _AUTH).
_FORBIDDEN = {497}
_AUTH = {192, 193, 194, 516}
_TIMEOUT = {159, 160}
_CANCELLED = {394}
_MEMORY = {241}
_UNAVAILABLE = {209, 210, 999}
#: INTO OUTFILE (358) would write a file on the server: the HTTP interface refuses it.
_FILE_WRITE = {358}

#: The HTTP interface's default format for the request: results are read as one Arrow IPC stream.
ARROW_STREAM = "ArrowStream"
_ARROW_HEADERS = {"X-ClickHouse-Format": ARROW_STREAM}


def classify(exc: BaseException, source: str, secrets: Sequence[str]) -> GatewayError:
    """Return the gateway error for a clickhouse-connect, urllib3 or Arrow error; engine text first."""
    raw = str(exc)
    match = _CODE.search(raw)
    code = int(match.group(1)) if match else None
    engine = _ENGINE_TEXT.search(raw)
    text = scrub((engine.group(1) if engine else raw.split(" (for url")[0]).strip(), secrets)
    message = f"[clickhouse] {text}"
    details = {"source": source, "vendor_code": code}
    if code in _READONLY or code in _FILE_WRITE:
        return ReadOnlyViolationError(message, **details)
    if code in _FORBIDDEN:
        return ReadOnlyViolationError(message, **details) if "readonly" in text.lower() else ForbiddenError(
            message, **details
        )
    if code in _AUTH:
        return AuthenticationError(message, **details)
    if code in _TIMEOUT:
        return QueryTimeoutError(message, **details)
    if code in _CANCELLED:
        return QueryCancelledError(message, **details)
    if code in _MEMORY:
        return LimitExceededError(f"{message}: the query needs more memory than max_memory_usage allows", **details)
    if code in _NOT_FOUND:
        return NotFoundError(message, **details)
    if code in _INVALID:
        return InvalidQueryError(message, **details)
    lowered = raw.lower()
    if code in _UNAVAILABLE or any(
        s in lowered
        for s in ("connection refused", "max retries exceeded", "name or service not known", "timed out", "reset by")
    ):
        return BackendUnavailableError(message, **details)
    if isinstance(exc, pa.ArrowInvalid):
        return BackendError(f"[clickhouse] the result stream broke off: {text}", **details)
    return BackendError(message, **details)


# -- parameters ----------------------------------------------------------------------------------------------


def _decimal_type(value: Decimal) -> str:
    sign, digits, exponent = value.as_tuple()
    scale = max(0, -int(exponent))
    precision = min(76, max(len(digits), scale + 1))
    return f"Decimal({precision}, {scale})"


def parameter_type(value: Any) -> str:
    """The ClickHouse type a bound Python value is sent as."""
    if value is None:
        return "Nullable(Nothing)"
    if isinstance(value, bool):
        return "Bool"
    if isinstance(value, int):
        if -(1 << 63) <= value < (1 << 63):
            return "Int64"
        return "UInt64" if 0 <= value < (1 << 64) else "Int256"
    if isinstance(value, float):
        return "Float64"
    if isinstance(value, Decimal):
        return _decimal_type(value)
    if isinstance(value, dt.datetime):
        return "DateTime64(6, 'UTC')" if value.tzinfo else "DateTime64(6)"
    if isinstance(value, dt.date):
        return "Date32"
    if isinstance(value, uuid.UUID):
        return "UUID"
    if isinstance(value, list | tuple):
        inner = {parameter_type(v) for v in value if v is not None}
        element = inner.pop() if len(inner) == 1 else "String"
        return f"Array({'Nullable(' + element + ')' if None in value else element})"
    return "String"


def _parameter_value(value: Any) -> Any:
    """The value clickhouse-connect sends for a server-side parameter (aware datetimes in UTC)."""
    if isinstance(value, dt.datetime) and value.tzinfo:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "surrogateescape")
    return value


def bind_placeholders(sql: str, placeholders: Sequence[int], row: Sequence[Any] | None) -> tuple[str, dict[str, Any]]:
    """Rewrite each ``?`` (at ``placeholders``) to ``{pN:Type}`` by the bound value's type; return SQL and values."""
    if not row:
        return sql, {}
    types = [parameter_type(v) for v in row]
    bound = replace_placeholders(
        sql, placeholders, lambda n: f"{{p{n}:{types[n - 1] if n <= len(types) else 'String'}}}"
    )
    return bound, {f"p{i + 1}": _parameter_value(v) for i, v in enumerate(row)}


# -- execution -----------------------------------------------------------------------------------------------


def arrow_response(client: Any, sql: str, parameters: Mapping[str, Any], settings: Mapping[str, Any]) -> _FullReads:
    """Send ``sql`` as it is, Arrow asked for in the request header; refuse a response in another format."""
    response = client.raw_stream(sql, parameters, settings, transport_settings=_ARROW_HEADERS)
    body = _FullReads(response)
    answered = response.headers.get("X-ClickHouse-Format") or ARROW_STREAM
    if answered != ARROW_STREAM:
        body.close()
        raise InvalidQueryError(
            f"[clickhouse] the statement asks for FORMAT {answered}: the gateway reads results as Arrow, "
            "leave the FORMAT clause out"
        )
    return body


class _FullReads:
    """A file object over an HTTP response whose ``read(n)`` returns n bytes unless the body ended."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self._response.read()
        parts, got = [], 0
        while got < n:
            data = self._response.read(n - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def tail(self, limit: int = 65_536) -> str:
        """What is left of the body (ClickHouse writes an exception there when a query fails mid-stream)."""
        with contextlib.suppress(Exception):
            return self._response.read(limit).decode("utf-8", "replace")
        return ""

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            self._response.close()


class ClickHouseExecution(Execution):
    """One query (once per parameter row) on one pooled client, streamed batch by batch."""

    def __init__(self, backend: ClickHouseBackend, statement: _Statement, rows, limits: QueryLimits, schema,
                 plan) -> None:
        self._backend = backend
        self._statement = statement
        self._rows = list(rows) if rows else [None]
        self._limits = limits
        self._plan = plan
        self._lock = threading.Lock()
        self._query_id: str | None = None
        self._body: _FullReads | None = None
        self._finished = self._cancelled = False
        self._item = backend.pool.acquire()
        self._reader = pa.RecordBatchReader.from_batches(schema, self._batches(schema))

    @property
    def reader(self) -> pa.RecordBatchReader:
        """The converted, lazy result stream."""
        return self._reader

    def _start(self, row) -> pa.RecordBatchReader:
        sql, parameters = self._statement.bound(row)
        query_id = str(uuid.uuid4())
        with self._lock:
            if self._cancelled:
                raise self._stopped_error()
            self._query_id = query_id
        settings = self._backend.query_settings(self._limits, query_id)
        with self._backend.map_errors():
            body = arrow_response(self._item.connection, sql, parameters, settings)
            with self._lock:
                self._body = body
            return pa.ipc.open_stream(body)

    def _batches(self, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        healthy = False
        try:
            for row in self._rows:
                reader = self._start(row)
                converters = self._plan(reader.schema)
                while True:
                    if self._cancelled:
                        raise self._stopped_error()
                    try:
                        with self._backend.map_errors():
                            batch = reader.read_next_batch()
                    except StopIteration:
                        break
                    except GatewayError as exc:
                        raise self._mid_stream_error(exc) from exc
                    columns = [c if f is None else f(c) for c, f in zip(batch.columns, converters, strict=True)]
                    converted = pa.RecordBatch.from_arrays(columns, schema=schema)
                    for offset in range(0, max(converted.num_rows, 1), self._limits.batch_rows):
                        if self._cancelled:
                            raise self._stopped_error()
                        yield converted.slice(offset, self._limits.batch_rows)
            healthy = True
        except STATEMENT_ERRORS:
            healthy = not self._cancelled
            raise
        except GatewayError as exc:
            if self._cancelled:
                raise self._stopped_error() from exc
            raise
        finally:
            self._finish(healthy)

    def _mid_stream_error(self, exc: GatewayError) -> GatewayError:
        """The stream broke: the cause is the exception ClickHouse wrote into the body, or our own cancel."""
        if self._cancelled:
            return self._stopped_error()
        tail = self._body.tail() if self._body else ""
        if "Exception" in tail:
            return classify(RuntimeError(tail.strip()), self._backend.name, self._backend.secrets)
        return exc

    def _stopped_error(self) -> GatewayError:
        """A stream we cancelled (why, a client or the server's time limit, is the query service's to tell)."""
        return QueryCancelledError("the query was cancelled", source=self._backend.name)

    def cancel(self) -> None:
        """Close the response and kill the query on the server."""
        with self._lock:
            if self._finished or self._cancelled:
                return
            self._cancelled = True
            body, query_id = self._body, self._query_id
        if body is not None:
            body.close()
        if query_id is not None:
            self._backend.kill(query_id)

    def _finish(self, healthy: bool) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
            body = self._body
        if body is not None and not healthy:
            body.close()
        self._backend.pool.release(self._item, healthy and not self._cancelled)

    def close(self) -> None:
        """Abandon the stream: kill what still runs."""
        with self._lock:
            finished = self._finished
        if not finished:
            self.cancel()
            self._finish(False)


# -- the backend ---------------------------------------------------------------------------------------------


class ClickHouseBackend(Backend):
    """A ClickHouse server over its HTTP interface: read-only settings on every query, pooled, streamed."""

    kind = "clickhouse"
    dialect = "clickhouse"
    capabilities = Capabilities(parameters=True, cancel=True, keys=False, schema_without_execution=True)
    read_only_guard = (
        "every query is sent with readonly=1 (or 2), max_execution_time and max_memory_usage as request settings, "
        "so ClickHouse refuses writes and DDL (code 164) and, with readonly=1, any setting a query tries to lift; "
        "give the source a user whose profile is readonly as well"
    )
    config_model: ClassVar[type[BaseModel]] = ClickHouseConfig
    config: ClickHouseConfig
    default_schema = None

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self.config = source_config(ClickHouseConfig, spec)
        self.secrets = secret_values(spec)
        self._server_timezone: str | None = None
        self._lock = threading.Lock()
        #: DESCRIBE answers by bound statement, kept for a moment: a client's GetFlightInfo and DoGet of one
        #: statement come moments apart, and its stream is then converted as the schema the client was given.
        self._described: dict[str, tuple[float, list[tuple[str, str]]]] = {}
        c = self.config
        self._pool = ConnectionPool(
            spec.name,
            self._connect,
            size=c.pool_size,
            recycle_seconds=c.pool_recycle_seconds,
            max_lifetime_seconds=c.pool_max_lifetime_seconds,
            acquire_timeout_seconds=c.pool_timeout_seconds,
            ping=self._ping_client,
        )

    # -- plumbing --------------------------------------------------------------------------------------------

    @property
    def pool(self) -> ConnectionPool:
        """The source's pool of HTTP clients."""
        return self._pool

    @contextlib.contextmanager
    def map_errors(self) -> Iterator[None]:
        """Translate clickhouse-connect, HTTP and stream errors into the gateway's error tree."""
        try:
            yield
        except GatewayError:
            raise
        except (ClickHouseError, pa.ArrowException, OSError) as exc:
            raise classify(exc, self.name, self.secrets) from exc
        except Exception as exc:  # urllib3 and friends: the source is not answering properly
            if type(exc).__module__.startswith(("urllib3", "http")):
                message = f"[clickhouse] {scrub(str(exc), self.secrets)}"
                raise BackendUnavailableError(message, source=self.name) from exc
            raise

    def _connect(self) -> Any:
        c = self.config
        with self.map_errors():
            client = clickhouse_connect.get_client(
                host=c.host,
                port=c.port or (8443 if c.protocol == "https" else 8123),
                interface=c.protocol,
                username=c.username,
                password=c.password.get_secret_value() if c.password else "",
                database=c.database,
                secure=c.protocol == "https",
                verify=c.verify,
                ca_cert=c.ca_cert,
                compress=c.compress,
                connect_timeout=c.connect_timeout_seconds,
                send_receive_timeout=max(c.statement_timeout_seconds, 30.0),
                autogenerate_session_id=False,
                query_limit=0,
            )
        if self._server_timezone is None:
            self._server_timezone = getattr(client, "server_tz", None) and str(client.server_tz) or "UTC"
        return client

    @staticmethod
    def _ping_client(client: Any) -> None:
        if not client.ping():
            raise OSError("ClickHouse did not answer /ping")

    def query_settings(self, limits: QueryLimits, query_id: str | None = None) -> dict[str, Any]:
        """The settings every query carries: read-only, its timeout and memory, and the Arrow encoding."""
        c = self.config
        timeout = min(limits.timeout_seconds, c.statement_timeout_seconds)
        query_memory = limits.memory_limit_bytes or 1 << 30
        memory = min(query_memory, c.max_memory_usage or query_memory)
        settings: dict[str, Any] = {
            "max_execution_time": max(1, int(-(-timeout // 1))),
            "timeout_overflow_mode": "throw",
            "max_memory_usage": memory,
            "output_format_arrow_string_as_string": 0 if c.strings_as_binary else 1,
            "output_format_arrow_low_cardinality_as_dictionary": 0,
            "output_format_arrow_compression_method": "lz4_frame" if c.compress else "none",
            "readonly": c.readonly,
        }
        if query_id:
            settings["query_id"] = query_id
        if limits.correlation_id:
            settings["log_comment"] = f"nexus correlation_id={limits.correlation_id}"
        return settings

    def _command_rows(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[tuple]:
        """Run a metadata query (read-only, short) and return its rows."""
        settings = self.query_settings(QueryLimits(timeout_seconds=self.config.statement_timeout_seconds))
        with self._pool.connection() as client, self.map_errors():
            body = arrow_response(client, sql, dict(parameters or {}), settings)
            try:
                table = pa.ipc.open_stream(body).read_all()
            finally:
                body.close()
        columns = [column.to_pylist() for column in table.columns]
        return list(zip(*columns, strict=True)) if columns else []

    def kill(self, query_id: str) -> None:
        """Ask the server to stop a query (best effort: it may have finished)."""
        with contextlib.suppress(Exception), self._pool.connection() as client:
            client.command("KILL QUERY WHERE query_id = {id:String} ASYNC", parameters={"id": query_id})

    # -- queries ---------------------------------------------------------------------------------------------

    def _describe(self, statement: _Statement, row: Sequence[Any] | None) -> list[tuple[str, str]]:
        bound, parameters = statement.bound(row)
        now = time.monotonic()
        with self._lock:
            recent = self._described.get(bound)
        if recent is not None and now - recent[0] < _DESCRIBED_SECONDS:
            return recent[1]
        rows = self._command_rows(f"DESCRIBE (\n{bound}\n)", parameters)
        described = [(r[0], r[1]) for r in rows]
        with self._lock:
            if len(self._described) >= 256:
                self._described.clear()
            self._described[bound] = (now, described)
        return described

    def _target(self, described: list[tuple[str, str]]):
        """The client schema of described columns, and a planner turning a wire schema into converters."""
        tz = self._server_timezone or "UTC"
        mappings = [arrow_mapping(parse_type(t), tz, self.config.strings_as_binary) for _, t in described]
        if any(m.arrow == pa.null() for m in mappings):
            return None, mappings
        schema = pa.schema([pa.field(name, m.arrow) for (name, _), m in zip(described, mappings, strict=True)])
        return schema, mappings

    def get_schema(self, plan: QueryPlan) -> pa.Schema:
        """``DESCRIBE (sql)``: ClickHouse types the result without running the query."""
        statement = _Statement(plan.statement, plan.placeholders)
        row = [None] * plan.parameter_count if plan.parameter_count else None
        described = self._describe_or_none(statement, row)
        schema = self._target(described)[0] if described is not None else None
        limits = planning_limits()
        if schema is None and described is not None:
            # A type without a fixed mapping: take what ClickHouse itself streams for no rows.
            execution = self._run(statement.wrapped("SELECT * FROM (\n", "\n) LIMIT 0"), row and [row], limits)
            try:
                return execution.reader.schema
            finally:
                execution.close()
        if schema is None:
            # DESCRIBE refused the statement: ClickHouse's own word on the statement as written.
            return self._wire_schema(statement, row, limits)
        return schema

    def execute(self, plan: QueryPlan, parameters: Sequence[Sequence[Any]] | None, limits: QueryLimits) -> Execution:
        """Stream the query from a pooled client under read-only, timeout and memory settings."""
        return self._run(_Statement(plan.statement, plan.placeholders), parameters, limits)

    def _run(self, statement: _Statement, parameters: Sequence[Sequence[Any]] | None, limits: QueryLimits) -> Execution:
        first = parameters[0] if parameters else None
        described = self._describe_or_none(statement, first)
        schema, mappings = self._target(described) if described is not None else (None, None)

        def plan(wire: pa.Schema):
            # Planned once per response: the ClickHouse type's conversion, else the generic extension clean-up.
            generic = type_plan(wire).converters
            own = [m.convert for m in mappings] if mappings and len(mappings) == len(wire) else [None] * len(wire)
            return [mine or fallback for mine, fallback in zip(own, generic, strict=True)]

        if schema is None:
            schema = self._wire_schema(statement, first, limits)
        return ClickHouseExecution(self, statement, parameters, limits, schema, plan)

    def _describe_or_none(self, statement: _Statement, row) -> list[tuple[str, str]] | None:
        """DESCRIBE the query; statements that are not queries (writes) have nothing to describe."""
        try:
            return self._describe(statement, row)
        except InvalidQueryError:
            return None  # let the statement itself reach ClickHouse, which says why it fails (or refuses it)
        except ReadOnlyViolationError:
            return None

    def _wire_schema(self, statement: _Statement, row, limits: QueryLimits) -> pa.Schema:
        """The schema ClickHouse streams for the statement (its refusal, for a write, is raised here)."""
        sql, parameters = statement.bound(row)
        settings = self.query_settings(limits, str(uuid.uuid4()))
        if not _looks_like_query(sql):
            # ClickHouse judges the statement itself: read-only settings refuse writes and DDL; whatever else
            # passes returns no rows and is not a query.
            try:
                with self._pool.connection() as client, self.map_errors():
                    client.command(sql, parameters=parameters, settings=settings)
                said = ""
            except InvalidQueryError as exc:
                said = f" ({exc.message})"
            raise ReadOnlyViolationError(
                f"[clickhouse] only queries are sent to the source through the gateway{said}", source=self.name
            )
        with self._pool.connection() as client, self.map_errors():
            body = arrow_response(client, sql, parameters, settings)
            try:
                return plain_schema(pa.ipc.open_stream(body).schema)
            finally:
                body.close()

    # -- metadata --------------------------------------------------------------------------------------------

    def list_schemas(self) -> list[str]:
        """Databases, ClickHouse's own hidden."""
        rows = self._command_rows("SELECT name FROM system.databases ORDER BY name")
        return [r[0] for r in rows if r[0] not in _SYSTEM_DATABASES]

    def list_tables(self, db_schema: str | None = None) -> list[TableInfo]:
        """Tables and views from ``system.tables``."""
        rows = self._command_rows(
            "SELECT database, name, engine FROM system.tables WHERE NOT is_temporary "
            "AND database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') "
            "AND ({db:Nullable(String)} IS NULL OR database = {db:Nullable(String)}) ORDER BY database, name",
            {"db": db_schema},
        )
        return [TableInfo(s, t, "VIEW" if engine in _VIEW_ENGINES else "TABLE") for s, t, engine in rows]

    def table_comments(self, db_schema: str, table: str) -> tuple[str, dict[str, str]]:
        """The table's comment and its columns' comments, from ``system.tables`` and ``system.columns``."""
        tables = self._command_rows(
            "SELECT comment FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            {"db": db_schema, "t": table},
        )
        columns = self._command_rows(
            "SELECT name, comment FROM system.columns WHERE database = {db:String} AND table = {t:String}",
            {"db": db_schema, "t": table},
        )
        return (tables[0][0] if tables else ""), {n: c for n, c in columns if c}

    def table_schema(self, db_schema: str, table: str) -> pa.Schema:
        """The table's columns from ``system.columns``, typed as queries return them; comments as metadata."""
        rows = self._command_rows(
            "SELECT name, type, comment FROM system.columns WHERE database = {db:String} AND table = {t:String} "
            "ORDER BY position",
            {"db": db_schema, "t": table},
        )
        if not rows:
            raise NotFoundError(f"table {db_schema}.{table} not found", source=self.name)
        tz = self._server_timezone or "UTC"
        fields = []
        for name, ch_type, comment in rows:
            mapping = arrow_mapping(parse_type(ch_type), tz, self.config.strings_as_binary)
            arrow = mapping.arrow if mapping.arrow != pa.null() else pa.utf8()
            nullable = ch_type.startswith(("Nullable(", "LowCardinality(Nullable("))
            metadata = {"comment": comment} if comment else None
            fields.append(pa.field(name, arrow, nullable, metadata=metadata))
        return pa.schema(fields)

    def ping(self) -> None:
        """Borrow a pooled client and check ``/ping`` answers."""
        with self._pool.connection() as client, self.map_errors():
            self._ping_client(client)

    def close(self) -> None:
        """Close the pool's clients."""
        self._pool.close()


_LEADING = re.compile(r"^(\s|--[^\n]*\n|/\*.*?\*/|\()*", re.S)
_QUERY_WORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS", "VALUES", "TABLE", "FROM")


@dataclass(frozen=True)
class _Statement:
    """A statement to send (trailing semicolons dropped, so that it can be wrapped) and where its ``?`` stand."""

    sql: str
    placeholders: tuple[int, ...] = ()

    def bound(self, row: Sequence[Any] | None) -> tuple[str, dict[str, Any]]:
        """The SQL with ClickHouse's typed parameters for ``row``, and their values."""
        return bind_placeholders(self.sql, self.placeholders, row)

    def wrapped(self, before: str, after: str) -> _Statement:
        """The statement inside ``before`` … ``after``."""
        return _Statement(before + self.sql + after, tuple(p + len(before) for p in self.placeholders))


def _looks_like_query(sql: str) -> bool:
    return _LEADING.sub("", sql).upper().startswith(_QUERY_WORDS)


