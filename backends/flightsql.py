"""Any upstream Flight SQL server as a source, over adbc-driver-flightsql.

Dremio, the Doris/StarRocks Flight SQL ports, InfluxDB 3, ROAPI and another Nexus Flight all qualify.

Read-only: nothing can be enforced on a remote Flight SQL server from here. Queries go out as
``CommandStatementQuery`` (never ``CommandStatementUpdate``) and statements that do not start with a query
keyword are refused locally, but a server may still execute side effects inside a "query" (ROAPI, for one,
accepts ``CREATE TABLE ... AS``). The real guarantees are the gateway's validator and read-only credentials
on the upstream.

The upstream's catalogs and schemas appear under the source as ``db_schema`` names ``catalog.schema`` (just
``schema`` when the source's ``catalog`` option pins one upstream catalog). Types pass through, except
``string_view``/``binary_view`` (→ utf8/binary, also inside lists, maps and structs) and extension types (→ their
storage), which not every client reads; field metadata is dropped. A message from the upstream may be as large as
the source's ``max_message_bytes`` (256 MiB by default): one row must fit in one message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from collections.abc import Sequence
from typing import Any

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql_dbapi
import adbc_driver_manager
import pyarrow as pa

from nexus_flight.backends.adbc_backend import AdbcBackend
from nexus_flight.backends.base import Capabilities, Execution, TableInfo, catalog_column, parameter_schema
from nexus_flight.backends.engine_messages import scrub
from nexus_flight.backends.file_groups import file_group
from nexus_flight.backends.options.flightsql import FlightSQLConfig
from nexus_flight.backends.result_types import plain_schema
from nexus_flight.backends.sql_text import require_query
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
    UnsupportedError,
)
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.source import QueryLimits

log = logging.getLogger(__name__)


def _db_kwargs(c: FlightSQLConfig) -> dict[str, str]:
    options = adbc_driver_flightsql.DatabaseOptions
    kwargs: dict[str, str] = {
        options.TIMEOUT_QUERY.value: str(c.query_timeout_seconds),
        options.TIMEOUT_FETCH.value: str(c.query_timeout_seconds),
        options.WITH_MAX_MSG_SIZE.value: str(c.max_message_bytes),
    }
    if c.username is not None:
        kwargs["username"] = c.username
        kwargs["password"] = c.password.get_secret_value() if c.password else ""
    if c.token is not None:
        kwargs[options.AUTHORIZATION_HEADER.value] = f"Bearer {c.token.get_secret_value()}"
    if c.tls_root_certs:
        kwargs[options.TLS_ROOT_CERTS.value] = c.tls_root_certs
    if c.tls_skip_verify:
        kwargs[options.TLS_SKIP_VERIFY.value] = "true"
    if c.tls_override_hostname:
        kwargs[options.TLS_OVERRIDE_HOSTNAME.value] = c.tls_override_hostname
    if c.mtls_cert_chain:
        kwargs[options.MTLS_CERT_CHAIN.value] = c.mtls_cert_chain
    if c.mtls_private_key:
        kwargs[options.MTLS_PRIVATE_KEY.value] = c.mtls_private_key.get_secret_value()
    return kwargs


_GRPC_CODE = re.compile(r"\((\w+); \w+[^)]*\)")
#: Upstreams that send every error as INTERNAL (ROAPI, Sail): their words for a table they do not know …
_UNKNOWN_TABLE = re.compile(r"\btable '[^']*' not found|TABLE_OR_VIEW_NOT_FOUND")
#: … and for a query they cannot plan or run (DataFusion's, Spark's analyser, Arrow's kernels: a division by zero).
_QUERY_FAULTS = ("error during planning", "sql error", "parsererror", "not found", "syntax", "schema error",
                 "arrow error", "error in arrow", "invalid argument", "analysis error", "unknown function")
#: Where in its own source an upstream raised the error (ROAPI appends `at src/…/flight_sql.rs:404`).
_UPSTREAM_SOURCE_LINE = re.compile(r" at [\w./-]+\.rs:\d+")
_TOO_LARGE = re.compile(r"received message larger than max \((\d+) vs\. (\d+)\)")


def _without_views(t: pa.DataType) -> pa.DataType:
    """``t`` with every string_view/binary_view in it, nested ones too, as utf8/binary."""
    if pa.types.is_string_view(t):
        return pa.utf8()
    if pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_map(t):
        key, item = t.key_field, t.item_field
        return pa.map_(
            key.with_type(_without_views(key.type)), item.with_type(_without_views(item.type)), t.keys_sorted
        )
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        value = t.value_field.with_type(_without_views(t.value_type))
        if pa.types.is_fixed_size_list(t):
            return pa.list_(value, t.list_size)
        return pa.large_list(value) if pa.types.is_large_list(t) else pa.list_(value)
    if pa.types.is_struct(t):
        return pa.struct([field.with_type(_without_views(field.type)) for field in t])
    return t


def _view_rule(f: pa.Field):
    """Turn views (string_view, binary_view), also inside lists, maps and structs, into layouts every client reads."""
    target = _without_views(f.type)
    if target.equals(f.type):
        return None
    return target, lambda a: a.cast(target)


class FlightSQLBackend(AdbcBackend):
    """An upstream Flight SQL server, pooled, with streamed results."""

    kind = "flightsql"
    dialect = "postgres"  # most Flight SQL engines (DataFusion, Dremio, Doris) accept ANSI/PG-like SQL
    capabilities = Capabilities(parameters=True, cancel=True, keys=False, schema_without_execution=True)
    read_only_guard = (
        "none can be enforced on a remote Flight SQL server: only query statements are sent (as "
        "CommandStatementQuery); rely on the validator and on read-only credentials upstream"
    )
    config_model = FlightSQLConfig
    config: FlightSQLConfig
    field_rule = staticmethod(_view_rule)

    def _classify(self, exc: BaseException) -> GatewayError:
        """Map by the gRPC status the driver names in its message, e.g. ``(Unavailable; Prepare)``."""
        text = scrub(str(exc).strip(), self._secrets)
        match = _GRPC_CODE.search(text)
        code = match.group(1) if match else ""
        text = re.sub(r"^[A-Z_]+: \[FlightSQL\] ", "", text)
        text = re.split(r" \(\w+; ", text)[0].split(". Vendor code")[0].strip()
        text = _UPSTREAM_SOURCE_LINE.sub("", text)
        message = f"[flightsql] {text.splitlines()[0] if text else type(exc).__name__}"
        lowered = text.lower()
        if too_large := _TOO_LARGE.search(text):
            return LimitExceededError(
                f"[flightsql] the upstream sent a message of {int(too_large.group(1)) / 1e6:.1f} MB, over the "
                f"{too_large.group(2)} bytes this source accepts: raise the source's max_message_bytes option",
                source=self.name,
            )
        if "placeholder" in lowered and "was not provided a value" in lowered:
            # Described with its placeholders unbound (GetFlightInfo of the text): an upstream without prepared
            # statements (Sail). INVALID_ARGUMENT, not UNIMPLEMENTED, which sends ADBC's execute into bulk ingestion.
            return InvalidQueryError(
                "[flightsql] the upstream cannot prepare statements, so it cannot bind parameters: write the values "
                "into the query",
                source=self.name,
            )
        if "ingesttargettable" in lowered:
            # The driver binds values to a statement it could not prepare as if they were rows to ingest.
            return UnsupportedError(
                "[flightsql] the upstream cannot prepare statements, so it cannot bind parameters: write the values "
                "into the query",
                source=self.name,
            )
        if "returned inconsistent schema" in lowered:
            return BackendError(
                "[flightsql] the upstream announced one schema and streamed another, which the Flight SQL client "
                "refuses (ROAPI does so for dictionary and large_list columns): cast such columns in the query, "
                "e.g. CAST(col AS VARCHAR)",
                source=self.name,
            )
        if code == "Unavailable" or "connection refused" in lowered or "error while dialing" in lowered:
            return BackendUnavailableError(message, source=self.name)
        if code == "Unauthenticated":
            return AuthenticationError(message, source=self.name)
        if code == "PermissionDenied":
            return ForbiddenError(message, source=self.name)
        if code == "NotFound" or _UNKNOWN_TABLE.search(text):
            return NotFoundError(message, source=self.name)
        if code == "DeadlineExceeded":
            return QueryTimeoutError(message, source=self.name)
        if code == "Canceled":
            return QueryCancelledError(message, source=self.name)
        if code == "Unimplemented" or isinstance(exc, adbc_driver_manager.NotSupportedError):
            return UnsupportedError(message, source=self.name)
        if code == "InvalidArgument" or any(s in lowered for s in _QUERY_FAULTS):
            return InvalidQueryError(message, source=self.name)
        return BackendError(message, source=self.name)

    def _open(self):
        connection = flightsql_dbapi.connect(self.config.uri, db_kwargs=_db_kwargs(self.config), autocommit=True)
        try:
            connection.adbc_get_info()  # dial now, so a wrong address fails here and not mid-query
        except BaseException:
            connection.close()
            raise
        return connection

    @staticmethod
    def _ping_connection(connection) -> None:
        """Ask the upstream for its SqlInfo."""
        connection.adbc_get_info()

    def _guard(self, plan: QueryPlan) -> str:
        return require_query(plan.sql, self.name, "flightsql")

    # -- queries ---------------------------------------------------------------------------------------------

    def get_schema(self, plan: QueryPlan) -> pa.Schema:
        """Ask the upstream for the schema (GetSchema, else GetFlightInfo); no result is fetched."""
        statement = self._guard(plan)
        try:
            described = self._describe(statement)
        except UnsupportedError:
            described = self._flight_info_schema(statement)  # Sail, for one, has no GetSchema
        return plain_schema(described, self.field_rule)

    def _flight_info_schema(self, statement: str) -> pa.Schema:
        """The schema of the FlightInfo the upstream answers for ``statement``; its endpoints are left unread."""
        with self._cursor() as cursor:
            _partitions, schema = cursor.adbc_execute_partitions(statement)
            return schema

    def get_parameter_schema(self, plan: QueryPlan) -> pa.Schema:
        """Return the upstream's parameter schema from a prepared statement; utf8 where it says nothing."""
        parameter_count = plan.parameter_count
        if parameter_count == 0:
            return pa.schema([])
        statement = self._guard(plan)
        described = None
        with contextlib.suppress(GatewayError):
            described = self._prepare(statement)
        types = [f.type for f in plain_schema(described, self.field_rule)] if described is not None else []
        types = [t if not pa.types.is_null(t) else pa.utf8() for t in types][:parameter_count]
        types += [pa.utf8()] * (parameter_count - len(types))
        return parameter_schema(types)

    def execute(self, plan: QueryPlan, parameters: Sequence[Sequence[Any]] | None, limits: QueryLimits) -> Execution:
        """Run the query upstream and stream its endpoints, or read the upstream endpoints the plan names."""
        if plan.upstream_partitions is None:
            return self._stream(self._guard(plan), parameters, limits)

        def read(cursor: Any, partition: bytes) -> pa.RecordBatchReader:
            try:
                cursor.adbc_read_partition(partition)
                return cursor.fetch_record_batch()
            except Exception as exc:
                if not plan.upstream_whole:
                    raise
                # Some servers' tickets (ROAPI's) cannot be redeemed later or from another connection: the
                # one endpoint was the whole result, so the query is run again.
                log.info("source %s refused its own ticket (%s): running the query again", self.name, exc)
                cursor.execute(self._guard(plan))
                return cursor.fetch_record_batch()

        return self._stream_each(read, plan.upstream_partitions, limits)

    def split(self, plan: QueryPlan, most: int) -> list[QueryPlan]:
        """One plan per group of the upstream's own endpoints for the query (one plan reading its one endpoint).

        The query runs upstream now (GetFlightInfo is where a Flight SQL server plans or runs it); each group is
        read later, on whichever replica redeems its ticket. A result of one endpoint is read the same way, and run
        again only when the upstream refuses its ticket then (some servers' tickets, ROAPI's, are not redeemable
        later from another connection); a query whose rows are ordered stays whole, its endpoints would have to be
        read in order; a query with parameters is not asked for.
        """
        query = plan.query
        if most < 2 or plan.upstream_partitions is not None or plan.parameter_count:
            return [plan]
        if query is None or plan.keyword not in ("select", "with") or query.args.get("order") is not None:
            return [plan]
        with self._cursor() as cursor:
            partitions, _schema = cursor.adbc_execute_partitions(self._guard(plan))
        if not partitions:
            return [plan]
        if len(partitions) == 1:  # the whole result: redeemed later, instead of asking the upstream again
            return [dataclasses.replace(plan, upstream_partitions=(partitions[0],), upstream_whole=True)]
        count = min(most, len(partitions))
        return [dataclasses.replace(plan, upstream_partitions=tuple(file_group(count, index, list(partitions))))
                for index in range(count)]

    # -- metadata --------------------------------------------------------------------------------------------

    def _objects(self, depth: str, db_schema: str | None = None) -> list[dict]:
        catalog, schema = self._split(db_schema) if db_schema else (self.config.catalog, None)
        with self._pool.connection() as connection, self._map_errors():
            try:
                reader = connection.adbc_get_objects(
                    depth=depth, catalog_filter=catalog, db_schema_filter=schema
                )
                return reader.read_all().to_pylist()
            except adbc_driver_manager.InternalError as exc:
                if "Invalid schema returned" in str(exc):
                    raise UnsupportedError(
                        "[flightsql] the upstream's metadata answer does not match the Flight SQL schema "
                        "(ROAPI is known to do this); queries still work, catalog browsing does not",
                        source=self.name,
                    ) from exc
                raise

    def _name(self, catalog: str | None, schema: str) -> str:
        if self.config.catalog is not None or not catalog:
            return schema
        return f"{catalog}.{schema}"

    def _split(self, db_schema: str) -> tuple[str | None, str]:
        if self.config.catalog is not None:
            return self.config.catalog, db_schema
        catalog, dot, schema = db_schema.partition(".")
        return (catalog, schema) if dot else (None, db_schema)

    def list_schemas(self) -> list[str]:
        """List the upstream's schemas, as ``catalog.schema`` unless one catalog is pinned."""
        names = []
        for catalog in self._objects("db_schemas"):
            for schema in catalog["catalog_db_schemas"] or []:
                names.append(self._name(catalog["catalog_name"], schema["db_schema_name"]))
        return sorted(names)

    def list_tables(self, db_schema: str | None = None) -> list[TableInfo]:
        """List the upstream's tables and views."""
        tables = []
        for catalog in self._objects("tables", db_schema):
            for schema in catalog["catalog_db_schemas"] or []:
                name = self._name(catalog["catalog_name"], schema["db_schema_name"])
                for table in schema["db_schema_tables"] or []:
                    kind = "VIEW" if "VIEW" in (table["table_type"] or "").upper() else "TABLE"
                    tables.append(TableInfo(name, table["table_name"], kind))
        return tables

    def table_schema(self, db_schema: str, table: str) -> pa.Schema:
        """Return the upstream's schema of one table (CommandGetTables with schemas)."""
        catalog, schema = self._split(db_schema) if db_schema else (self.config.catalog, None)
        with self._pool.connection() as connection:
            try:
                with self._map_errors():
                    found = connection.adbc_get_table_schema(
                        table, catalog_filter=catalog, db_schema_filter=schema
                    )
            except (InvalidQueryError, BackendError, NotFoundError) as exc:
                raise NotFoundError(
                    f"table {db_schema}.{table} not found: {exc.message}", source=self.name
                ) from exc
        # The upstream's own type names (its ARROW:FLIGHT:SQL:TYPE_NAME) are the database's.
        names = [(f.metadata or {}).get(b"ARROW:FLIGHT:SQL:TYPE_NAME", b"").decode() or None for f in found]
        plain = plain_schema(found, self.field_rule)
        return pa.schema([catalog_column(f, name, f.nullable) for f, name in zip(plain, names, strict=True)])
