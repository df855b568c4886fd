"""BigQuery, over google-cloud-bigquery (results streamed page by page, or through the Storage Read API).

One source is one project (its catalog); datasets are schemas. Every statement is first dry-run: BigQuery types
the result without running or billing it (``get_schema`` uses only that), and names the statement type — anything
but ``SELECT`` is refused here, whatever the validator let through (the second line of defence: a job cannot be
made read-only, so give the source a credential with only ``bigquery.dataViewer`` + ``bigquery.jobUser`` too).
Before even the dry run, the statement must have read (the plan's tree, sqlglot's BigQuery dialect) as exactly
one query: an emulator's dry run of a script was seen running the script's DELETE.

Jobs carry ``maximum_bytes_billed`` (the source's cost guard), ``job_timeout_ms`` from the query timeout, and the
label ``nexus_correlation_id``; the gateway's ``?`` parameters are BigQuery's own positional parameters, typed by
the bound value (int → INT64, Decimal → NUMERIC or BIGNUMERIC, aware datetime → TIMESTAMP, naive → DATETIME ...).
A NULL has no type of its own: it takes the type of what its placeholder is compared with (``col = ?``,
``? BETWEEN a AND b``, ``CAST(? AS T)``, ``LIMIT ?``), which BigQuery's dry run reports — the same types the
gateway announces as the statement's parameter schema —, else STRING.
Cancel (a client's, or the server's time limit) calls ``cancel_job``.

Auth: a service-account key (``service_account_json``, from the vault), an OAuth2 access token (``token``), or a
refresh token with ``client_id``/``client_secret`` — google-auth refreshes it before it expires —, application
default credentials when none is given, and anonymous access only towards an explicit ``endpoint`` (emulators).

Types (BigQuery → Arrow): INT64 int64, FLOAT64 float64, NUMERIC decimal128(38, 9), BIGNUMERIC decimal256(76, 38),
BOOL bool, STRING utf8, BYTES binary, DATE date32, DATETIME timestamp[us] (naive), TIMESTAMP timestamp[us, UTC],
TIME time64[us], GEOGRAPHY utf8 (WKT), JSON utf8, ARRAY list, STRUCT struct, RANGE<T> struct<start: T, end: T>,
INTERVAL month_day_nano_interval.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import threading
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any, ClassVar

import pyarrow as pa
from google.api_core import exceptions as gexc
from google.cloud import bigquery
from pydantic import BaseModel
from sqlglot import exp

from nexus_flight.backends.base import Backend, Capabilities, Execution, TableInfo, parameter_schema
from nexus_flight.backends.engine_messages import scrub
from nexus_flight.backends.options.bigquery import BigQueryConfig
from nexus_flight.backends.parameter_types import infer_parameter_types, quiet_probe
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
    RetryLaterError,
)
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.source import QueryLimits, SourceSpec

_READ_ONLY_SCOPE = "https://www.googleapis.com/auth/bigquery"


def credentials_for(config: BigQueryConfig):
    """The google-auth credentials the configuration names (see the module docstring for the order)."""
    if config.service_account_json is not None:
        from google.oauth2 import service_account

        info = json.loads(config.service_account_json.get_secret_value())
        return service_account.Credentials.from_service_account_info(info, scopes=[_READ_ONLY_SCOPE])
    if config.token is not None or config.refresh_token is not None:
        from google.oauth2.credentials import Credentials

        return Credentials(
            token=config.token.get_secret_value() if config.token else None,
            refresh_token=config.refresh_token.get_secret_value() if config.refresh_token else None,
            client_id=config.client_id,
            client_secret=config.client_secret.get_secret_value() if config.client_secret else None,
            token_uri="https://oauth2.googleapis.com/token",
            scopes=[_READ_ONLY_SCOPE],
        )
    if config.endpoint:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    import google.auth

    return google.auth.default(scopes=[_READ_ONLY_SCOPE])[0]


# -- types ---------------------------------------------------------------------------------------------------

_SCALARS = {
    "INTEGER": pa.int64(),
    "INT64": pa.int64(),
    "FLOAT": pa.float64(),
    "FLOAT64": pa.float64(),
    "NUMERIC": pa.decimal128(38, 9),
    "BIGNUMERIC": pa.decimal256(76, 38),
    "BOOLEAN": pa.bool_(),
    "BOOL": pa.bool_(),
    "STRING": pa.utf8(),
    "BYTES": pa.binary(),
    "DATE": pa.date32(),
    "DATETIME": pa.timestamp("us"),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "TIME": pa.time64("us"),
    "GEOGRAPHY": pa.utf8(),
    "JSON": pa.utf8(),
    "INTERVAL": pa.month_day_nano_interval(),
}


def arrow_type(field: bigquery.SchemaField) -> pa.DataType:
    """The Arrow type of one BigQuery column (REPEATED as a list)."""
    kind = field.field_type.upper()
    if kind in ("RECORD", "STRUCT"):
        inner: pa.DataType = pa.struct([arrow_field(f) for f in field.fields])
    elif kind == "RANGE":
        element = _SCALARS.get((field.range_element_type.element_type or "DATE").upper(), pa.date32())
        inner = pa.struct([("start", element), ("end", element)])
    else:
        inner = _SCALARS.get(kind, pa.utf8())
    return pa.list_(inner) if field.mode == "REPEATED" else inner


def arrow_field(field: bigquery.SchemaField) -> pa.Field:
    """The Arrow field of one BigQuery column, its description as ``comment`` metadata."""
    metadata = {"comment": field.description} if field.description else None
    return pa.field(field.name, arrow_type(field), field.mode != "REQUIRED", metadata=metadata)


def arrow_schema(fields: Sequence[bigquery.SchemaField]) -> pa.Schema:
    """The Arrow schema of a BigQuery result or table."""
    return pa.schema([arrow_field(f) for f in fields])


#: The BigQuery type a NULL is sent as, by the Arrow type its placeholder was inferred to have.
_KIND_OF_ARROW = {
    pa.int64(): "INT64",
    pa.float64(): "FLOAT64",
    pa.bool_(): "BOOL",
    pa.utf8(): "STRING",
    pa.binary(): "BYTES",
    pa.date32(): "DATE",
    pa.timestamp("us"): "DATETIME",
    pa.timestamp("us", tz="UTC"): "TIMESTAMP",
    pa.time64("us"): "TIME",
    pa.month_day_nano_interval(): "INTERVAL",
}


def kind_of_arrow(t: pa.DataType) -> str:
    """The BigQuery scalar type of an Arrow type from ``arrow_type`` (STRING for anything else)."""
    if pa.types.is_decimal(t):
        return "NUMERIC" if isinstance(t, pa.Decimal128Type) else "BIGNUMERIC"
    return _KIND_OF_ARROW.get(t, "STRING")


def query_parameter(value: Any, null_kind: str = "STRING"):
    """A positional BigQuery parameter for one bound Python value (a NULL sent as ``null_kind``)."""
    if isinstance(value, list | tuple):
        kinds = {_scalar_kind(v) for v in value if v is not None}
        return bigquery.ArrayQueryParameter(None, kinds.pop() if len(kinds) == 1 else "STRING", list(value))
    if value is None:
        return bigquery.ScalarQueryParameter(None, null_kind, None)
    return bigquery.ScalarQueryParameter(None, _scalar_kind(value), value)


def _scalar_kind(value: Any) -> str:
    if value is None or isinstance(value, str):
        return "STRING"
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64" if -(1 << 63) <= value < (1 << 63) else "BIGNUMERIC"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, Decimal):
        _, digits, exponent = value.as_tuple()
        scale = max(0, -int(exponent))
        return "NUMERIC" if scale <= 9 and len(digits) - scale <= 29 else "BIGNUMERIC"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP" if value.tzinfo else "DATETIME"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, dt.time):
        return "TIME"
    if isinstance(value, bytes | bytearray | memoryview):
        return "BYTES"
    return "STRING"


# -- errors --------------------------------------------------------------------------------------------------


def classify(exc: BaseException, source: str, secrets: Sequence[str]) -> GatewayError:
    """Return the gateway error for a google-api-core or transport error; BigQuery's text first."""
    text = getattr(exc, "message", None) or str(exc)
    text = re.sub(r"^(?:GET|POST|PUT|PATCH|DELETE) \S+: ", "", text).split("\n\nLocation")[0].strip()
    text = scrub(text, secrets)
    message = f"[bigquery] {text}"
    lowered = text.lower()
    if "bytes billed" in lowered or "bytesbilledlimitexceeded" in lowered:
        return LimitExceededError(f"{message}: the query would bill more than maximum_bytes_billed", source=source)
    if isinstance(exc, gexc.NotFound):  # "Not found: Table …" or "… Dataset …", as the other families answer
        return NotFoundError(message, source=source)
    if isinstance(exc, gexc.Unauthenticated):
        return AuthenticationError(message, source=source)
    if isinstance(exc, gexc.Forbidden):
        return _forbidden(exc, message, source)
    if "timeout" in lowered or "timed out" in lowered or isinstance(exc, gexc.DeadlineExceeded):
        return QueryTimeoutError(message, source=source)
    if "cancel" in lowered or "stopped" in lowered:
        return QueryCancelledError(message, source=source)
    if isinstance(exc, gexc.BadRequest):
        return InvalidQueryError(message, source=source)
    if isinstance(exc, gexc.ServiceUnavailable | gexc.TooManyRequests | ConnectionError | OSError):
        return BackendUnavailableError(message, source=source)
    if type(exc).__module__.startswith(("requests", "urllib3")):
        return BackendUnavailableError(message, source=source)
    return BackendError(message, source=source)


#: 403 reasons that free themselves (a rate or a quota): retry later, the source is not down.
_RETRY_LATER = {"rateLimitExceeded", "quotaExceeded"}


def _forbidden(exc: BaseException, message: str, source: str) -> GatewayError:
    """BigQuery's 403 by its reason: a rate or quota, an object the login may not read, else the credentials."""
    reasons = {e.get("reason") for e in getattr(exc, "errors", None) or [] if isinstance(e, dict)}
    if reasons & _RETRY_LATER:
        return RetryLaterError(f"{message}: retry later", source=source)
    if "accessDenied" in reasons:  # a table or dataset the service account may not read: the source's refusal
        return ForbiddenError(message, source=source)
    return AuthenticationError(message, source=source)


# -- execution -----------------------------------------------------------------------------------------------


class BigQueryExecution(Execution):
    """One query job per parameter row, its result read page by page (or stream by stream)."""

    def __init__(
        self, backend: BigQueryBackend, plan: QueryPlan, rows, limits: QueryLimits, schema: pa.Schema
    ) -> None:
        self._backend = backend
        self._plan = plan
        self._rows = list(rows) if rows else [None]
        self._limits = limits
        self._schema = schema
        self._lock = threading.Lock()
        self._job: bigquery.QueryJob | None = None
        self._finished = self._cancelled = False
        self._reader = pa.RecordBatchReader.from_batches(schema, self._batches())

    @property
    def reader(self) -> pa.RecordBatchReader:
        """The lazy result stream."""
        return self._reader

    @property
    def job_ids(self) -> list[str]:
        """The id of the job started last (for tests and the history)."""
        return [self._job.job_id] if self._job is not None else []

    def _batches(self) -> Iterator[pa.RecordBatch]:
        try:
            for row in self._rows:
                if self._cancelled:
                    raise self._stopped()
                with self._backend.map_errors():
                    job = self._backend.start_job(self._plan, row, self._limits)
                with self._lock:
                    self._job = job
                if self._cancelled:
                    self._backend.cancel_job(job)
                    raise self._stopped()
                with self._backend.map_errors():
                    rows = job.result(page_size=self._backend.config.page_size, timeout=self._limits.timeout_seconds)
                    pages = rows.to_arrow_iterable(bqstorage_client=self._backend.storage_client())
                    for batch in pages:
                        if self._cancelled:
                            raise self._stopped()
                        batch = _conformed(batch, self._schema)
                        for offset in range(0, max(batch.num_rows, 1), self._limits.batch_rows):
                            if self._cancelled:
                                raise self._stopped()
                            yield batch.slice(offset, self._limits.batch_rows)
        except GatewayError as exc:
            if self._cancelled and not isinstance(exc, QueryCancelledError | QueryTimeoutError):
                raise self._stopped() from exc
            raise
        finally:
            self._finish()

    def _stopped(self) -> GatewayError:
        """A stream we cancelled (why, a client or the server's time limit, is the query service's to tell)."""
        return QueryCancelledError("the query was cancelled", source=self._backend.name)

    def cancel(self) -> None:
        """Cancel the job in BigQuery; the stream stops at the next page."""
        with self._lock:
            if self._finished or self._cancelled:
                return
            self._cancelled = True
            job = self._job
        if job is not None:
            self._backend.cancel_job(job)

    def _finish(self) -> None:
        with self._lock:
            self._finished = True

    def close(self) -> None:
        """Abandon the stream: cancel the job if it still runs."""
        if not self._finished:
            self.cancel()
            self._finish()


# -- the backend ---------------------------------------------------------------------------------------------


class BigQueryBackend(Backend):
    """A BigQuery project: dry-run first (schema, statement type), then a job streamed back as Arrow."""

    kind = "bigquery"
    dialect = "bigquery"
    capabilities = Capabilities(parameters=True, cancel=True, keys=False, schema_without_execution=True)
    read_only_guard = (
        "every statement is dry-run first and refused unless BigQuery types it as a SELECT; jobs carry "
        "maximum_bytes_billed; use a credential with only dataViewer and jobUser roles as well"
    )
    config_model: ClassVar[type[BaseModel]] = BigQueryConfig
    config: BigQueryConfig

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self.config = source_config(BigQueryConfig, spec)
        self.secrets = secret_values(spec)
        self._client: bigquery.Client | None = None
        self._storage = None
        self._lock = threading.Lock()
        #: Inferred placeholder types by statement, for typing NULLs (bounded: statements repeat).
        self._placeholder_types: dict[tuple[str, int], list[pa.DataType]] = {}

    @contextlib.contextmanager
    def map_errors(self) -> Iterator[None]:
        """Translate google-api-core and transport errors into the gateway's error tree."""
        try:
            yield
        except GatewayError:
            raise
        except (gexc.GoogleAPIError, OSError, ValueError) as exc:
            raise classify(exc, self.name, self.secrets) from exc
        except Exception as exc:
            if type(exc).__module__.startswith(("requests", "urllib3", "google")):
                raise classify(exc, self.name, self.secrets) from exc
            raise

    @property
    def client(self) -> bigquery.Client:
        """The one google-cloud-bigquery client of this source (thread-safe, pools its HTTP connections)."""
        with self._lock:
            if self._client is None:
                from google.api_core.client_options import ClientOptions

                c = self.config
                with self.map_errors():
                    self._client = bigquery.Client(
                        project=c.project_id,
                        credentials=credentials_for(c),
                        location=c.location,
                        client_options=ClientOptions(api_endpoint=c.endpoint) if c.endpoint else None,
                    )
            return self._client

    def storage_client(self):
        """The Storage Read API client, when the source uses it (None: REST pages)."""
        if not self.config.use_storage_api:
            return None
        with self._lock:
            if self._storage is None:
                from google.cloud import bigquery_storage

                self._storage = bigquery_storage.BigQueryReadClient(credentials=self.client._credentials)
            return self._storage

    def query_parameters(self, plan: QueryPlan | None, row: Sequence[Any] | None) -> list:
        """BigQuery's positional parameters for one row; NULLs typed from their placeholders' context."""
        if not row:
            return []
        types = self.placeholder_types(plan) if plan is not None and None in row else []
        kinds = [kind_of_arrow(t) for t in types] + ["STRING"] * (len(row) - len(types))
        return [query_parameter(v, kind) for v, kind in zip(row, kinds, strict=True)]

    def placeholder_types(self, plan: QueryPlan) -> list[pa.DataType]:
        """The Arrow type of each ``?``: of the expression it is compared with, typed by a dry run."""
        key = (plan.sql, plan.parameter_count)
        found = self._placeholder_types.get(key)
        if found is None:
            # Each probe is a query the gateway wrote from the plan's own tree: dry-run as it is.
            found = infer_parameter_types(plan, quiet_probe(self._probe_schema))
            if len(self._placeholder_types) >= 256:
                self._placeholder_types.clear()
            self._placeholder_types[key] = found
        return found

    def _probe_schema(self, sql: str) -> pa.Schema:
        return arrow_schema(self._dry_run(sql, None, None).schema or [])

    def get_parameter_schema(self, plan: QueryPlan) -> pa.Schema:
        """One type per placeholder, from what it is compared with (BigQuery does not describe parameters)."""
        return parameter_schema(self.placeholder_types(plan))

    def job_config(
        self, row: Sequence[Any] | None, limits: QueryLimits | None, dry_run: bool = False,
        plan: QueryPlan | None = None,
    ):
        """The job's configuration: parameters, cost guard, timeout, labels, default dataset."""
        c = self.config
        config = bigquery.QueryJobConfig(
            dry_run=dry_run,
            use_legacy_sql=False,
            query_parameters=self.query_parameters(plan, row),
            maximum_bytes_billed=c.maximum_bytes_billed,
            default_dataset=f"{c.project_id}.{c.dataset}" if c.dataset else None,
        )
        if limits is not None:
            config.job_timeout_ms = int(min(limits.timeout_seconds, c.statement_timeout_seconds) * 1000)
            correlation = getattr(limits, "correlation_id", None)
            labels = {"nexus_gateway": "true"}
            if correlation:
                labels["nexus_correlation_id"] = _label(correlation)
            config.labels = labels
        return config

    def dry_run(self, plan: QueryPlan, row: Sequence[Any] | None) -> bigquery.QueryJob:
        """Dry-run a plan: the result schema and statement type, nothing run or billed; refuses non-queries.

        Nothing is sent, not even the dry run, unless the statement reads as one query (the plan's tree is a
        query): a dry run should run nothing, but an emulator's dry run of a script runs the script's DML.
        """
        if not _is_one_query(plan):
            raise ReadOnlyViolationError(
                "[bigquery] the statement is not sent to the source: it does not read as one query, "
                "and only queries (SELECT) run",
                source=self.name,
            )
        return self._dry_run(plan.sql, row, plan)

    def _dry_run(self, sql: str, row: Sequence[Any] | None, plan: QueryPlan | None) -> bigquery.QueryJob:
        with self.map_errors():
            job = self.client.query(sql, job_config=self.job_config(row, None, dry_run=True, plan=plan))
        # No type named (emulators leave it out for set operations): the statement already reads as a query.
        kind = (job.statement_type or "SELECT").upper()
        if kind != "SELECT":
            raise ReadOnlyViolationError(
                f"[bigquery] {kind} is not sent to the source: BigQuery typed the statement as {kind}, "
                "and only queries (SELECT) run",
                source=self.name,
            )
        return job

    def start_job(self, plan: QueryPlan, row: Sequence[Any] | None, limits: QueryLimits) -> bigquery.QueryJob:
        """Start the query job (already dry-run)."""
        return self.client.query(plan.sql, job_config=self.job_config(row, limits, plan=plan))

    def cancel_job(self, job: bigquery.QueryJob) -> None:
        """Ask BigQuery to cancel a job (best effort: it may have finished)."""
        with contextlib.suppress(Exception):
            self.client.cancel_job(job.job_id, location=job.location)

    # -- queries ---------------------------------------------------------------------------------------------

    def get_schema(self, plan: QueryPlan) -> pa.Schema:
        """The dry run's schema: nothing runs, nothing is billed."""
        count = plan.parameter_count
        return arrow_schema(self.dry_run(plan, [None] * count if count else None).schema or [])

    def execute(self, plan: QueryPlan, parameters: Sequence[Sequence[Any]] | None, limits: QueryLimits) -> Execution:
        """Dry-run (schema, read-only check), then stream the job's result."""
        first = parameters[0] if parameters else None
        schema = arrow_schema(self.dry_run(plan, first).schema or [])
        return BigQueryExecution(self, plan, parameters, limits, schema)

    # -- metadata --------------------------------------------------------------------------------------------

    def list_schemas(self) -> list[str]:
        """The project's datasets."""
        with self.map_errors():
            return sorted(d.dataset_id for d in self.client.list_datasets(self.config.project_id))

    def list_tables(self, db_schema: str | None = None) -> list[TableInfo]:
        """Tables, views and materialized views of one dataset, or of all."""
        result = []
        for dataset in [db_schema] if db_schema else self.list_schemas():
            with self.map_errors():
                try:
                    tables = list(self.client.list_tables(f"{self.config.project_id}.{dataset}"))
                except gexc.NotFound:
                    continue
            for t in tables:
                kind = "VIEW" if (t.table_type or "").upper() in ("VIEW", "MATERIALIZED_VIEW") else "TABLE"
                result.append(TableInfo(dataset, t.table_id, kind))
        return sorted(result, key=lambda t: (t.db_schema, t.name))

    def table_schema(self, db_schema: str, table: str) -> pa.Schema:
        """The table's columns with their descriptions (``comment`` metadata)."""
        try:
            with self.map_errors():
                found = self.client.get_table(f"{self.config.project_id}.{db_schema}.{table}")
        except (InvalidQueryError, NotFoundError) as exc:
            raise NotFoundError(f"table {db_schema}.{table} not found", source=self.name) from exc
        schema = arrow_schema(found.schema)
        return schema.with_metadata({"comment": found.description}) if found.description else schema

    def ping(self) -> None:
        """List one dataset page: proves the credentials and the endpoint."""
        with self.map_errors():
            next(iter(self.client.list_datasets(self.config.project_id, max_results=1)), None)

    def close(self) -> None:
        """Close the HTTP client."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _is_one_query(plan: QueryPlan) -> bool:
    """True when the plan's statement read (BigQuery's dialect) as exactly one query: SELECT, WITH, set operation."""
    return isinstance(plan.tree, exp.Query)


def _conformed(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch in the announced schema: the client's extension metadata dropped, types cast where they drift."""
    columns = [c if c.type == f.type else c.cast(f.type) for c, f in zip(batch.columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _label(value: str) -> str:
    """A label value BigQuery accepts: lowercase letters, digits, ``-`` and ``_``, at most 63 characters."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in value.lower())
    return cleaned[:63]
