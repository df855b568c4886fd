"""Snowflake over adbc-driver-snowflake.

Read-only: Snowflake has no session switch that makes a connection read-only. The guarantee is the role the
source logs in with (grant it only USAGE and SELECT); statements that do not start like a query are refused
locally, and the validator stays in front.

Authentication: password, key pair (``private_key`` PEM, optional ``private_key_password``) or an OAuth
``token``. ``host``/``port``/``protocol`` address a non-default endpoint (private link, or the local emulator
used by the tests); without a host the driver derives ``<account>.snowflakecomputing.com``.

Type mapping: NUMBER(p,s) → decimal128(p,s) (also integers, which Snowflake stores as NUMBER(38,0): exact),
FLOAT → float64, VARCHAR → utf8, BINARY → binary, BOOLEAN → bool, DATE → date32, TIME → time64,
TIMESTAMP_NTZ → timestamp[ns], TIMESTAMP_LTZ/TZ → timestamp[ns, UTC], VARIANT/OBJECT/ARRAY → utf8 (JSON text).

Parameters: the driver binds booleans, numbers and text only; decimals, dates, times, timestamps and bytes are
sent as text cast back to their Snowflake type (``backends/snowflake_parameters.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import adbc_driver_manager
import adbc_driver_snowflake.dbapi as snowflake_dbapi
import pyarrow as pa

from nexus_flight.backends.adbc_backend import AdbcBackend, sqlstate_of
from nexus_flight.backends.base import (
    FK_RULE_CODES,
    Capabilities,
    Execution,
    ForeignKeyColumn,
    KeyColumn,
    TableInfo,
    catalog_column,
    parameter_schema,
)
from nexus_flight.backends.engine_messages import scrub
from nexus_flight.backends.limits import planning_limits
from nexus_flight.backends.options.snowflake import SnowflakeConfig
from nexus_flight.backends.parameter_types import infer_parameter_types, quiet_probe
from nexus_flight.backends.snowflake_parameters import snowflake_bindings
from nexus_flight.backends.sql_text import require_query
from nexus_flight.core.errors import (
    AuthenticationError,
    BackendError,
    BackendUnavailableError,
    ForbiddenError,
    GatewayError,
    InvalidQueryError,
    NotFoundError,
    QueryCancelledError,
    QueryTimeoutError,
    UnsupportedError,
)
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.source import QueryLimits

_PREFIX = "adbc.snowflake.sql."


def _db_kwargs(c: SnowflakeConfig) -> dict[str, str]:
    kwargs = {
        f"{_PREFIX}account": c.account,
        "username": c.username,
        f"{_PREFIX}client_option.login_timeout": f"{c.login_timeout_seconds:g}s",
    }
    if c.password is not None:
        kwargs["password"] = c.password.get_secret_value()
    if c.private_key is not None:
        kwargs[f"{_PREFIX}auth_type"] = "auth_jwt"
        kwargs[f"{_PREFIX}client_option.jwt_private_key_pkcs8_value"] = c.private_key.get_secret_value()
        if c.private_key_password is not None:
            kwargs[f"{_PREFIX}client_option.jwt_private_key_pkcs8_password"] = (
                c.private_key_password.get_secret_value()
            )
    if c.token is not None:
        kwargs[f"{_PREFIX}auth_type"] = "auth_oauth"
        kwargs[f"{_PREFIX}client_option.auth_token"] = c.token.get_secret_value()
    for key, value in (
        ("warehouse", c.warehouse),
        ("role", c.role),
        ("db", c.database),
        ("schema", c.db_schema),
        ("uri.host", c.host),
        ("uri.port", c.port),
    ):
        if value is not None:
            kwargs[f"{_PREFIX}{key}"] = str(value)
    kwargs[f"{_PREFIX}uri.protocol"] = c.protocol
    return kwargs


class SnowflakeBackend(AdbcBackend):
    """A Snowflake account (database/schema/warehouse/role from the source), pooled, streamed."""

    kind = "snowflake"
    #: Snowflake's type names and the XDBC data type of what clients get for them.
    xdbc_type_names = {
        "NUMBER": 3, "DECIMAL": 3, "INTEGER": 3, "FLOAT": 8, "VARCHAR": 12, "TEXT": 12, "BOOLEAN": -7, "DATE": 91,
        "TIME": 92, "TIMESTAMP_NTZ": 93, "TIMESTAMP_LTZ": 93, "TIMESTAMP_TZ": 93, "BINARY": -3, "VARIANT": 12,
        "OBJECT": 12, "ARRAY": 12,
    }  # fmt: skip
    dialect = "snowflake"
    capabilities = Capabilities(parameters=True, cancel=True, keys=True, schema_without_execution=False)
    read_only_guard = (
        "none on the session (Snowflake has no read-only switch): use a role with only USAGE and SELECT "
        "grants; "
        "statements that are not queries are refused locally"
    )
    config_model = SnowflakeConfig
    config: SnowflakeConfig

    def _classify(self, exc: BaseException) -> GatewayError:
        """Map by SQLSTATE / Snowflake error code; messages keep Snowflake's text."""
        state = sqlstate_of(exc) or ""
        text = scrub(str(exc).strip(), self._secrets)
        text = re.sub(r"^[A-Z_]+: \[Snowflake\] (\d+ \(\w+\): )+", "", text).split(". Vendor code")[0]
        text = re.sub(r"https?://\S+", "<endpoint>", text).splitlines()[0] if text else type(exc).__name__
        message = f"[snowflake] {text}"
        lowered = text.lower()
        if (
            "connection refused" in lowered
            or "no such host" in lowered
            or "timeout" in lowered
            and "login" in lowered
        ):
            return BackendUnavailableError(message, source=self.name, sqlstate=state or None)
        if (
            state.startswith("28")
            or "incorrect username or password" in lowered
            or "authentication" in lowered
        ):
            return AuthenticationError(message, source=self.name, sqlstate=state or None)
        if state == "57014" or "cancel" in lowered:
            if "timeout" in lowered:
                return QueryTimeoutError(message, source=self.name, sqlstate=state or None)
            return QueryCancelledError(message, source=self.name, sqlstate=state or None)
        if "database" in lowered and "does not exist" in lowered and "object" in lowered:
            return NotFoundError(message, source=self.name, sqlstate=state or None)
        if state in ("42S02", "02000") and "does not exist" in lowered and "function" not in lowered:
            # 002003: a table, view or schema that does not exist (the emulator says so of a function too)
            return NotFoundError(message, source=self.name, sqlstate=state or None)
        if state == "42501" or "insufficient privileges" in lowered:  # the role's grants held
            return ForbiddenError(message, source=self.name, sqlstate=state or None)
        if isinstance(exc, adbc_driver_manager.NotSupportedError):
            return UnsupportedError(message, source=self.name, sqlstate=state or None)
        # 02000 with vendor code 2043: "object does not exist, or operation cannot be performed" (an unknown
        # column, an ORDER BY position past the select list)
        if state.startswith(("42", "22", "0A", "02")) or isinstance(exc, adbc_driver_manager.ProgrammingError):
            return InvalidQueryError(message, source=self.name, sqlstate=state or None)
        if isinstance(exc, adbc_driver_manager.OperationalError):
            return BackendUnavailableError(message, source=self.name, sqlstate=state or None)
        return BackendError(message, source=self.name, sqlstate=state or None)

    def _open(self):
        return snowflake_dbapi.connect(db_kwargs=_db_kwargs(self.config), autocommit=True)

    # -- queries ---------------------------------------------------------------------------------------------

    def get_schema(self, plan: QueryPlan) -> pa.Schema:
        """Wrap the query in ``LIMIT 0``: Snowflake compiles it and returns no rows (no warehouse time)."""
        require_query(plan.sql, self.name, "snowflake")
        # The driver cannot bind a typeless NULL: placeholders become NULL literals for the compile-only run.
        return self._schema(plan.with_placeholders(lambda n: "NULL", plan.statement))

    def _schema(self, statement: str) -> pa.Schema:
        limits = planning_limits()
        try:
            execution = self._stream(f"SELECT * FROM ({statement}) LIMIT 0", None, limits, planning=True)
        except InvalidQueryError:
            execution = self._stream(statement, None, limits, planning=True)  # SHOW / DESCRIBE are not wrappable
        try:
            return execution.reader.schema
        finally:
            execution.close()

    def get_parameter_schema(self, plan: QueryPlan) -> pa.Schema:
        """Infer placeholder types from their neighbours (Snowflake does not describe parameters)."""
        return parameter_schema(infer_parameter_types(plan, quiet_probe(self._schema)))

    def execute(self, plan: QueryPlan, parameters: Sequence[Sequence[Any]] | None, limits: QueryLimits) -> Execution:
        """Run the query on a pooled connection and stream its result chunks.

        Parameter values the driver cannot bind (dates, decimals, bytes …) travel as text cast back to their
        Snowflake type (``backends/snowflake_parameters.py``); each row is bound as a one-row batch.
        """
        statement = require_query(plan.sql, self.name, "snowflake")
        if parameters:
            statement, parameters = snowflake_bindings(statement, plan.placeholders, parameters)
        return self._stream(statement, parameters, limits)

    def _bind(self, row: Any) -> Any:
        """Each parameter row is already the one-row batch ``snowflake_bindings`` made."""
        return row

    # -- metadata --------------------------------------------------------------------------------------------

    def _database(self) -> str:
        return _identifier(self.config.database) if self.config.database else "CURRENT_DATABASE()"

    def list_schemas(self) -> list[str]:
        """Schemas of the source's database."""
        rows = self._rows(
            f"SELECT schema_name FROM {self._database()}.information_schema.schemata ORDER BY 1"
        )
        return [r[0] for r in rows if r[0].upper() != "INFORMATION_SCHEMA"]

    def list_tables(self, db_schema: str | None = None) -> list[TableInfo]:
        """Tables and views of the source's database."""
        sql = f"SELECT table_schema, table_name, table_type FROM {self._database()}.information_schema.tables"
        sql += " WHERE table_schema <> 'INFORMATION_SCHEMA'"
        rows = (
            self._rows(sql + " AND table_schema = ? ORDER BY 1, 2", (db_schema,))
            if db_schema
            else self._rows(sql + " ORDER BY 1, 2")
        )
        return [TableInfo(s, t, "VIEW" if "VIEW" in kind.upper() else "TABLE") for s, t, kind in rows]

    def table_schema(self, db_schema: str, table: str) -> pa.Schema:
        """Return the Arrow schema of ``SELECT *`` from the table, with DESCRIBE TABLE's type names and NOT NULLs."""
        target = f"{_identifier(db_schema)}.{_identifier(table)}"
        try:
            described = self._schema(f"SELECT * FROM {target}")
        except (InvalidQueryError, NotFoundError) as exc:
            raise NotFoundError(
                f"table {db_schema}.{table} not found: {exc.message}", source=self.name
            ) from exc
        # DESCRIBE TABLE: name, type, kind, null? ('Y'/'N'), ...
        columns = {row[0]: (row[1], row[3] == "Y") for row in self._rows(f"DESCRIBE TABLE {target}")}
        return pa.schema([catalog_column(f, *columns.get(f.name, (None, f.nullable))) for f in described])

    def primary_keys(self, db_schema: str | None, table: str) -> list[KeyColumn]:
        """From ``SHOW PRIMARY KEYS IN TABLE``."""
        target = f"{_identifier(db_schema)}.{_identifier(table)}" if db_schema else _identifier(table)
        rows = self._rows(f"SHOW PRIMARY KEYS IN TABLE {target}")
        # created_on, database_name, schema_name, table_name, column_name, key_sequence, constraint_name, ...
        return [KeyColumn(r[2], r[3], r[4], int(r[5]), r[6]) for r in rows]

    def foreign_keys(self, db_schema: str | None = None, table: str | None = None) -> list[ForeignKeyColumn]:
        """From ``SHOW IMPORTED KEYS``, filtered to ``table`` on either side."""
        scope = f"IN SCHEMA {_identifier(db_schema)}" if db_schema else "IN DATABASE"
        result = []
        for r in self._rows(f"SHOW IMPORTED KEYS {scope}"):
            # created_on, pk_db, pk_schema, pk_table, pk_column, fk_db, fk_schema, fk_table, fk_column,
            # key_sequence, update_rule, delete_rule, fk_name, pk_name, ...
            if table is not None and table.upper() not in (str(r[3]).upper(), str(r[7]).upper()):
                continue
            result.append(
                ForeignKeyColumn(
                    pk=KeyColumn(r[2], r[3], r[4], int(r[9]), r[13]),
                    fk=KeyColumn(r[6], r[7], r[8], int(r[9]), r[12]),
                    update_rule=FK_RULE_CODES.get(str(r[10]).upper(), 3),
                    delete_rule=FK_RULE_CODES.get(str(r[11]).upper(), 3),
                )
            )
        return result


def _identifier(name: str) -> str:
    """Quote unless the name is a plain identifier (Snowflake upper-cases those, as users expect)."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'
