"""MySQL and every MySQL-protocol engine (MariaDB, TiDB, OceanBase, Doris, StarRocks ...) via DuckDB.

Why this path (1M rows x 6 columns from MariaDB on this 2-core machine, benchmarks/mysql_bench.py): connectorx
is 4x faster (2.3M rows/s here, on a quiet machine) but materializes whole results, rewrites SQL for its
schema probe, widens DECIMAL(12,2) to decimal(38,10), panics on type drift, and its read-only session did not
hold for every query shape; pymysql + pyarrow runs at 0.13M rows/s and guesses decimal precision from
values. DuckDB's MySQL scanner (pip ``duckdb-extension-mysql-scanner``, the signed binary matching
``duckdb==1.5.5``, LOADed by file path, never INSTALLed) streams 0.55M rows/s in bounded batches with
exact types (DECIMAL(p,s) as decimal128(p,s)), and its attachment is read-only in two ways:

* the catalog is ATTACHed ``READ_ONLY``: DuckDB refuses INSERT/UPDATE/DELETE/DDL and ``mysql_execute``;
* the server only ever sees the scanner's own SELECTs, each inside ``START TRANSACTION READ ONLY``;
  expressions are evaluated by DuckDB, so a MySQL stored function (one that writes, say) cannot be called.

The scanner's pass-through ``mysql_query()`` runs outside that transaction and did run a writing function in
a test, so client SQL naming any ``mysql_*`` function, or anything sqlglot cannot parse, is refused here;
the DuckDB configuration is locked afterwards.

Queries arrive in the MySQL dialect and are transpiled to DuckDB's with sqlglot; they address tables as
``database.table`` exactly as in MySQL (each MySQL database is a schema of the source). Text arrives as UTF-8
whatever the column charset (utf8mb4, GBK, latin1 ...): the scanner's connections use utf8mb4 and the server
converts.

Cancel and timeouts interrupt DuckDB, which stops reading at once; but a statement the server is still
computing before its first row (a slow view, ``SLEEP``) runs on until the server answers, because the
scanner's connections are not ours to ``KILL QUERY``. MySQL honours the scanner's ``MAX_EXECUTION_TIME``
hint (set from ``statement_timeout_seconds``); MariaDB ignores it, so give the source's user a
``max_statement_time`` there.

Type mapping: TINYINT(1)/BIT(1) → bool, TINYINT..BIGINT → int8..int64 (UNSIGNED one size up), DECIMAL(p,s) →
decimal128(p,s), FLOAT/DOUBLE → float32/float64, CHAR/VARCHAR/TEXT/ENUM/SET/JSON → utf8, BINARY/BLOB → binary,
DATE → date32, DATETIME → timestamp[us], TIMESTAMP → timestamp[us, UTC], TIME → utf8 (may exceed a day).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import duckdb_extension_mysql_scanner  # a missing package becomes NotInstalledError in the registry
import pyarrow as pa
import sqlglot
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlglot import exp

from backends.adbc_common import scrub
from backends.base import (
    FK_RULE_CODES,
    Execution,
    ForeignKeyColumn,
    KeyColumn,
    QueryLimits,
    SourceSpec,
    TableInfo,
    catalog_column,
)
from backends.duckdb import DuckDBBackend, _map_errors, _quote
from backends.errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConfigError,
    GatewayError,
    InvalidQueryError,
    NotFoundError,
    QueryCancelledError,
    QueryTimeoutError,
    ReadOnlyViolationError,
)

_SYSTEM_DATABASES = ("information_schema", "mysql", "performance_schema", "sys")
_CATALOG = "src"


class MySQLConfig(BaseModel):
    """Options and secrets of a MySQL-family source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(3306, ge=1, le=65535)
    database: str
    username: str = "root"
    password: SecretStr | None = None
    ssl_mode: str | None = Field(None, pattern="^(disabled|preferred|required|verify_ca|verify_identity)$")
    ssl_ca: str | None = None
    statement_timeout_seconds: float = Field(300.0, gt=0)
    pool_size: int = Field(8, ge=1)
    pool_max_lifetime_seconds: float = Field(3600.0, gt=0)
    pool_idle_timeout_seconds: float = Field(60.0, gt=0)
    #: Idle connections are closed after this long (and after ``pool_idle_timeout_seconds``, whichever is less).
    pool_recycle_seconds: float | None = Field(None, gt=0)
    #: The server's charset for the source's text. Results are UTF-8 whatever it is: the scanner's connections
    #: use utf8mb4 and the server converts every column (GBK, GB18030, latin1 ...) to it.
    charset: str | None = Field(None, pattern=r"^[A-Za-z0-9_]+$")
    pool_timeout_seconds: float = Field(30.0, gt=0)
    memory_limit: str = "1GB"
    threads: int = Field(2, ge=1)


def scanner_path() -> Path:
    """Return the mysql_scanner extension file the pip package ships for this exact DuckDB version."""
    return (
        Path(duckdb_extension_mysql_scanner.__file__).parent
        / "extensions"
        / f"v{duckdb.__version__}"
        / "mysql_scanner.duckdb_extension"
    )


class _MappedExecution(Execution):
    """DuckDB's stream with errors mapped: an interrupt is a cancel, or a timeout when nobody cancelled.

    Like the DuckDB execution it wraps, the query starts when the reader is first asked for, so ``cancel`` can
    reach it while DuckDB computes the first batch.
    """

    def __init__(self, inner: Execution, source: str, limits: QueryLimits) -> None:
        self._inner = inner
        self._source = source
        self._limits = limits
        self._cancelled = False
        self._reader: pa.RecordBatchReader | None = None

    @property
    def reader(self) -> pa.RecordBatchReader:
        """The mapped stream (starts the query on first access)."""
        if self._reader is None:
            try:
                schema = self._inner.reader.schema
            except QueryCancelledError as exc:
                raise self._interrupted() from exc
            self._reader = pa.RecordBatchReader.from_batches(schema, self._batches())
        return self._reader

    def _batches(self) -> Iterator[pa.RecordBatch]:
        reader = self._inner.reader
        try:
            while True:
                if self._cancelled:
                    # DuckDB may already hold the rest of a small result: a cancel still ends the stream.
                    raise self._interrupted()
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except (pa.ArrowException, OSError, duckdb.Error) as exc:
                    raise self._mapped(exc) from exc
                yield batch
        finally:
            self._inner.close()

    def _interrupted(self) -> GatewayError:
        if self._cancelled:
            return QueryCancelledError("[mysql] the query was cancelled", source=self._source)
        return QueryTimeoutError(
            f"the query ran longer than its timeout of {self._limits.timeout_seconds:g} s and was stopped",
            source=self._source,
        )

    def _mapped(self, exc: BaseException) -> GatewayError:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "INTERRUPT" in text.upper():
            return self._interrupted()
        try:
            with _map_errors(self._source):
                raise exc
        except GatewayError as mapped:
            return mapped

    def cancel(self) -> None:
        """Interrupt the query in DuckDB, which stops reading from the server."""
        self._cancelled = True
        self._inner.cancel()

    def close(self) -> None:
        """Release the DuckDB cursor."""
        self._inner.close()


def _idle_seconds(c: MySQLConfig) -> float:
    return min(c.pool_idle_timeout_seconds, c.pool_recycle_seconds or c.pool_idle_timeout_seconds)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class MySQLBackend(DuckDBBackend):
    """A MySQL-protocol server, read through a READ_ONLY DuckDB attachment with exact types."""

    kind = "mysql"
    dialect = "mysql"
    #: MySQL's type names (information_schema's DATA_TYPE) and the XDBC data type of what clients get for them.
    xdbc_type_names = {
        "tinyint": -6, "smallint": 5, "mediumint": 4, "int": 4, "bigint": -5, "decimal": 3, "float": 7,
        "double": 8, "bit": -7, "char": 1, "varchar": 12, "tinytext": 12, "text": 12, "mediumtext": 12,
        "longtext": 12, "enum": 12, "set": 12, "json": 12, "binary": -3, "varbinary": -3, "blob": -3,
        "date": 91, "time": 92, "datetime": 93, "timestamp": 93, "year": 5,
    }  # fmt: skip
    # The SQL is transpiled and run by DuckDB: DuckDB's own dangerous functions must be refused as well.
    engine_dialects = ("duckdb",)
    read_only_guard = (
        "the server is ATTACHed READ_ONLY (DuckDB refuses writes and mysql_execute), every scan runs in "
        "START TRANSACTION READ ONLY on the server, mysql_* pass-through functions are refused and the "
        "configuration is locked"
    )
    config_model = MySQLConfig

    def __init__(self, spec: SourceSpec) -> None:  # noqa: D107 - documented on the class
        self.spec = spec
        try:
            self.config = MySQLConfig(**{**spec.options, **spec.secrets})
        except ValueError as exc:
            raise ConfigError(f"invalid options for MySQL source: {exc}", source=spec.name) from exc
        self._secrets = [v for v in spec.secrets.values() if v]
        self._memory_limit = self.config.memory_limit
        config = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": self.config.memory_limit,
            "threads": self.config.threads,
        }
        self._db = duckdb.connect(":memory:", config=config)
        try:
            self._attach()
        except BaseException:
            self._db.close()
            raise

    def _attach(self) -> None:
        c = self.config
        timeout_ms = int(c.statement_timeout_seconds * 1000)
        with self._connect_errors():
            self._db.execute(f"LOAD {_literal(str(scanner_path()))}")
            for setting, value in (
                ("mysql_pool_size", c.pool_size),
                ("mysql_pool_acquire_mode", "'wait'"),
                ("mysql_pool_wait_timeout_millis", int(c.pool_timeout_seconds * 1000)),
                ("mysql_pool_connection_max_lifetime_millis", int(c.pool_max_lifetime_seconds * 1000)),
                ("mysql_pool_connection_idle_timeout_millis", int(_idle_seconds(c) * 1000)),
                # The scanner adds MAX_EXECUTION_TIME to what it sends: the server enforces the timeout too.
                ("mysql_query_timeout_max_ms", timeout_ms),
                ("mysql_query_timeout_min_ms", min(timeout_ms, 5000)),
                ("mysql_session_time_zone", "'+00:00'"),
            ):
                self._db.execute(f"SET {setting} = {value}")
            parts = [
                f"HOST {_literal(c.host)}",
                f"PORT {c.port}",
                f"USER {_literal(c.username)}",
                f"DATABASE {_literal(c.database)}",
            ]
            if c.password is not None:
                parts.append(f"PASSWORD {_literal(c.password.get_secret_value())}")
            if c.ssl_mode:
                parts.append(f"SSL_MODE {_literal(c.ssl_mode)}")
            if c.ssl_ca:
                parts.append(f"SSL_CA {_literal(c.ssl_ca)}")
            # A secret keeps the password out of the ATTACH string, which error messages echo.
            self._db.execute(f"CREATE TEMPORARY SECRET nexus_source (TYPE mysql, {', '.join(parts)})")
            self._db.execute(f"ATTACH '' AS {_CATALOG} (TYPE mysql, SECRET nexus_source, READ_ONLY)")
            self._db.execute(f"USE {_CATALOG}")
            self._db.execute("SET enable_external_access = false")
            self._db.execute("SET lock_configuration = true")

    @contextlib.contextmanager
    def _connect_errors(self) -> Iterator[None]:
        """Classify connection failures: refused or unknown host, bad credentials, unknown database."""
        try:
            with _map_errors(self.name):
                yield
        except GatewayError as exc:
            text = scrub(exc.message.replace("[duckdb] ", "[mysql] "), self._secrets)
            text = text.replace(' with parameters ""', "")
            if "Access denied" in text:
                raise AuthenticationError(text, source=self.name) from exc
            if "Unknown database" in text:
                raise NotFoundError(text, source=self.name) from exc
            if "Failed to connect" in text or "Can't connect" in text:
                raise BackendUnavailableError(text, source=self.name) from exc
            raise

    # -- SQL -------------------------------------------------------------------------------------------------

    def _to_duckdb(self, sql: str) -> str:
        """Transpile MySQL-dialect SQL to DuckDB's, refusing the scanner's pass-through functions."""
        try:
            trees = [t for t in sqlglot.parse(sql, read="mysql") if t is not None]
        except sqlglot.errors.SqlglotError as exc:
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines()[0]
            raise InvalidQueryError(f"[mysql] SQL does not parse: {text}", source=self.name) from exc
        if len(trees) != 1:
            raise InvalidQueryError("[mysql] exactly one statement is allowed", source=self.name)
        tree = trees[0]
        if isinstance(tree, exp.Command):
            # sqlglot could not parse it (CALL, LOAD, INSTALL ...): nothing we cannot read goes to DuckDB.
            raise ReadOnlyViolationError(
                f"[mysql] {tree.name.upper()} is not allowed: this source is read-only", source=self.name
            )
        for node in tree.find_all(exp.Func, exp.Table):
            name = (node.name if isinstance(node, exp.Table) else node.sql_name()) or ""
            if isinstance(node, exp.Anonymous):
                name = node.name
            if name.lower().startswith("mysql_"):
                raise ReadOnlyViolationError(
                    f"[mysql] {name} is not allowed: it bypasses the source's read-only transaction",
                    source=self.name,
                )
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            # Cursors do not inherit USE: qualify every table with the attachment (and the default database).
            if not isinstance(table.this, exp.Identifier) or table.args.get("catalog"):
                continue
            if not table.args.get("db") and table.name.lower() in ctes:
                continue
            if not table.args.get("db"):
                table.set("db", exp.to_identifier(self.config.database))
            table.set("catalog", exp.to_identifier(_CATALOG))
        return tree.sql(dialect="duckdb")

    def get_schema(self, sql: str, parameter_count: int = 0) -> pa.Schema:
        """Plan the transpiled query under ``LIMIT 0`` (pushed down to the server)."""
        return super().get_schema(self._to_duckdb(sql), parameter_count)

    def get_parameter_schema(self, sql: str, parameter_count: int) -> pa.Schema:
        """Infer placeholder types from what they are compared with, as the DuckDB backend does."""
        return super().get_parameter_schema(self._to_duckdb(sql), parameter_count)

    def execute(self, sql: str, parameters: Sequence[Sequence[Any]] | None, limits: QueryLimits) -> Execution:
        """Stream the transpiled query from the read-only attachment."""
        inner = super().execute(self._to_duckdb(sql), parameters, limits)
        return _MappedExecution(inner, self.name, limits)

    # -- metadata (MySQL's own information_schema, read with our fixed queries) ------------------------------

    def _information(self, sql: str, *params: Any) -> list[tuple]:
        """Run a fixed information_schema query on the server (the scanner's pushdown there drops rows)."""
        struct = ", ".join(_literal(str(p)) for p in params)
        wrapped = f"SELECT * FROM mysql_query('{_CATALOG}', {_literal(sql)}" + (
            f", params=row({struct}))" if params else ")"
        )
        cursor = self._db.cursor()
        try:
            with self._connect_errors():
                return cursor.execute(wrapped).fetchall()
        finally:
            cursor.close()

    def list_schemas(self) -> list[str]:
        """List the server's databases, system ones hidden."""
        rows = self._information("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
        return [r[0] for r in rows if r[0].lower() not in _SYSTEM_DATABASES]

    def list_tables(self, db_schema: str | None = None) -> list[TableInfo]:
        """Tables and views, of one database or of all non-system ones."""
        base = "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES"
        if db_schema is None:
            rows = self._information(base + " ORDER BY 1, 2")
        else:
            rows = self._information(base + " WHERE TABLE_SCHEMA = ? ORDER BY 1, 2", db_schema)
        return [
            TableInfo(s, t, "VIEW" if kind == "VIEW" else "TABLE")
            for s, t, kind in rows
            if s.lower() not in _SYSTEM_DATABASES
        ]

    def table_schema(self, db_schema: str, table: str) -> pa.Schema:
        """Return the table's Arrow schema as a query of it returns, with the server's type names and NOT NULLs."""
        columns = self._information(
            "SELECT COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? "
            "AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            db_schema,
            table,
        )
        if not columns:
            raise NotFoundError(f"table {db_schema}.{table} not found", source=self.name)
        described = DuckDBBackend.get_schema(self, f"SELECT * FROM {_CATALOG}.{_quote(db_schema)}.{_quote(table)}")
        pairs = zip(described, columns, strict=True)
        return pa.schema([catalog_column(f, type_name, nullable == "YES") for f, (type_name, nullable) in pairs])

    def primary_keys(self, db_schema: str | None, table: str) -> list[KeyColumn]:
        """PRIMARY KEY columns in key order."""
        sql = (
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, CONSTRAINT_NAME "
            "FROM information_schema.KEY_COLUMN_USAGE WHERE CONSTRAINT_NAME = 'PRIMARY' AND TABLE_NAME = ?"
        )
        rows = (
            self._information(sql + " AND TABLE_SCHEMA = ? ORDER BY 1, 4", table, db_schema)
            if db_schema
            else self._information(sql + " ORDER BY 1, 4", table)
        )
        return [KeyColumn(s, t, c, int(seq), name) for s, t, c, seq, name in rows]

    def foreign_keys(self, db_schema: str | None = None, table: str | None = None) -> list[ForeignKeyColumn]:
        """Foreign-key column pairs with their ON UPDATE / ON DELETE rules."""
        sql = (
            "SELECT k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, "
            "k.TABLE_SCHEMA, k.TABLE_NAME, k.COLUMN_NAME, k.ORDINAL_POSITION, k.CONSTRAINT_NAME, "
            "r.UNIQUE_CONSTRAINT_NAME, r.UPDATE_RULE, r.DELETE_RULE "
            "FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
            "ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
            "WHERE k.REFERENCED_TABLE_NAME IS NOT NULL"
        )
        params: list[str] = []
        if table is not None:
            sql += " AND (k.TABLE_NAME = ? OR k.REFERENCED_TABLE_NAME = ?)"
            params += [table, table]
        if db_schema is not None:
            sql += " AND (k.TABLE_SCHEMA = ? OR k.REFERENCED_TABLE_SCHEMA = ?)"
            params += [db_schema, db_schema]
        rows = self._information(sql + " ORDER BY 4, 5, 8, 7", *params)
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
        """Run ``SELECT 1`` on the server."""
        self._information("SELECT 1")
