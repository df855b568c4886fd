"""The source-type registry: every source type the gateway knows, declared once.

Each :class:`SourceType` says which backend family serves it (many products share one family: TiDB, Doris and
OceanBase speak MySQL; Redshift, KingbaseES and openGauss speak PostgreSQL), its default port, the sqlglot
dialect
its queries are written in, its options and secrets (typed, so validation, redaction and documentation come
from
the same declaration) and the auth types it accepts with the secrets each one needs.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

FieldKind = Literal[
    "str",
    "int",
    "float",
    "bool",
    "host",
    "port",
    "url",
    "endpoint",
    "path",
    "tables",
    "charset",
    "choice",
    "list",
    "dict",
]

#: Auth types the vault records (``none``: the source needs no credentials).
AUTH_TYPES = ("none", "basic", "oauth2", "iam", "kerberos", "jwt", "sas", "pat", "keypair")

#: Backend families with an adapter in ``backends/`` (or being written); any other family is not implemented.
KNOWN_FAMILIES = (
    "duckdb",
    "postgres",
    "mysql",
    "flightsql",
    "snowflake",
    "sqlite",
    "files",
    "iceberg",
    "delta",
    "hudi",
    "clickhouse",
    "bigquery",
)


@dataclass(frozen=True)
class FieldSpec:
    """One option or secret of a source type."""

    name: str
    kind: FieldKind = "str"
    required: bool = False
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None
    #: Allowed values of a ``choice``, allowed URL schemes of a ``url``.
    choices: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class SourceType:
    """One source type: its family, defaults, fields and auth types."""

    name: str
    family: str
    dialect: str
    default_port: int | None
    fields: tuple[FieldSpec, ...]
    #: auth type -> secrets it requires.
    auth: Mapping[str, tuple[str, ...]]
    #: Schemes a ``location`` option may use (DS-015); empty when the type has no location.
    location_schemes: tuple[str, ...] = ()
    #: Table options the type implies, filled into tables that do not set them (``format`` of ``s3_csv``).
    implied_table_options: Mapping[str, object] = field(default_factory=dict)
    #: A valid configuration (options, secrets, auth type), used by documentation and tests.
    example: tuple[Mapping[str, object], Mapping[str, str], str] = field(default=({}, {}, "none"))

    @property
    def options(self) -> dict[str, FieldSpec]:
        """The non-secret fields by name."""
        return {f.name: f for f in self.fields if not f.secret}

    @property
    def secrets(self) -> dict[str, FieldSpec]:
        """The secret fields by name."""
        return {f.name: f for f in self.fields if f.secret}

    @property
    def default_auth(self) -> str:
        """The auth type assumed when none is given: ``none`` if allowed, else the first declared."""
        return "none" if "none" in self.auth else next(iter(self.auth))


def _f(name: str, kind: FieldKind = "str", **kw) -> FieldSpec:
    return FieldSpec(name, kind, **kw)


def _secret(name: str, description: str = "") -> FieldSpec:
    return FieldSpec(name, "str", secret=True, description=description)


def _requiring(fields: tuple[FieldSpec, ...], name: str) -> tuple[FieldSpec, ...]:
    """Return ``fields`` with the one called ``name`` made required."""
    return tuple(dataclasses.replace(f, required=True) if f.name == name else f for f in fields)


# Field groups shared by many types. Names follow the backend families' option models (``config_model``),
# which validate the same options again when the family is installed.
_POOL_SIZE = _f("pool_size", "int", minimum=1, maximum=100)
#: When pooled connections are re-checked and when they are replaced (every ADBC family's pool has both).
_POOL_AGES = (
    _f("pool_recycle_seconds", "float", minimum=0, maximum=86_400),
    _f("pool_max_lifetime_seconds", "float", minimum=1, maximum=86_400),
)
_POOL = (_POOL_SIZE, _f("pool_timeout_seconds", "float", minimum=1, maximum=600), *_POOL_AGES)
_STATEMENT_TIMEOUT = _f("statement_timeout_seconds", "float", minimum=1, maximum=86_400)
_NETWORK = (
    _f("host", "host", required=True),
    _f("port", "port"),
    _f("database"),
    _f("username"),
    _STATEMENT_TIMEOUT,
    *_POOL,
    _secret("password"),
)
_POSTGRES = (
    *_requiring(_NETWORK, "database"),
    _f("sslmode", "choice", choices=("disable", "allow", "prefer", "require", "verify-ca", "verify-full")),
    _f("sslrootcert", "path"),
    _f("application_name"),
    _f("connect_timeout_seconds", "int", minimum=1, maximum=300),
    _f("pool_pre_ping", "bool"),
    _f(
        "allow_privileged_login",
        "bool",
        description="connect even as a superuser or a member of pg_read/write_server_files (dangerous)",
    ),
)
_MYSQL = (
    *_requiring(_NETWORK, "database"),
    _f("ssl_mode", "choice", choices=("disabled", "preferred", "required", "verify_ca", "verify_identity")),
    _f("ssl_ca", "path"),
    _f("pool_idle_timeout_seconds", "float", minimum=1, maximum=86_400),
    _f("connect_timeout_seconds", "int", minimum=1, maximum=300),
    _f("charset", "charset"),
    _f("allow_privileged_login", "bool"),
)
_ORACLE = (*_NETWORK, _f("service_name"), _f("sid"), _f("charset", "charset"))
_HTTP_PROTOCOL = _f("protocol", "choice", choices=("http", "https"))
_CLICKHOUSE = (
    *_NETWORK,
    _f("protocol", "choice", choices=("http", "https")),
    _f("readonly", "int", minimum=1, maximum=2, description="1: queries change no setting; 2: settings, no writes"),
    _f("strings_as_binary", "bool"),
    _f("compress", "bool"),
    _f("verify", "bool"),
    _f("ca_cert", "path"),
    _f("connect_timeout_seconds", "float", minimum=1, maximum=300),
    _f("max_memory_usage", "int", minimum=1),
)
_KERBEROS = (_f("kerberos_principal"), _secret("keytab", "base64 of the keytab file"))
_ENGINE = (_f("memory_limit"), _f("temp_directory", "path"), _f("threads", "int", minimum=1, maximum=1024))
_S3_STORE = (
    _f("s3_region"),
    _f("s3_endpoint", "endpoint"),
    _f("s3_path_style", "bool"),
    _f("s3_use_ssl", "bool"),
    _f("s3_role_arn"),
    _secret("s3_access_key_id"),
    _secret("s3_secret_access_key"),
    _secret("s3_session_token"),
)
_AZURE_STORE = (
    _f("azure_account_name", required=True),
    _f("azure_endpoint", "url", choices=("http", "https")),
    _secret("azure_account_key"),
    _secret("azure_sas_token"),
)
_BASIC = {"basic": ()}
_BASIC_OR_NONE = {"none": (), "basic": ("password",)}
_BASIC_OR_KERBEROS = {"basic": (), "kerberos": ("keytab",)}
_S3_AUTH = {"none": (), "iam": ("s3_access_key_id", "s3_secret_access_key")}
_LAKE_SCHEMES = ("file", "s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss")
_TABLES = _f(
    "tables", "tables", required=True, description="[{name, location, ...}] as the family reads them"
)


def _net(name, family, dialect, port, fields=_NETWORK, auth=_BASIC, **extra) -> SourceType:
    example = (
        {"host": "db.example.internal", "port": port, "database": "sales", "username": "reader"},
        {"password": "example-password"},
        "basic" if "basic" in auth else next(iter(auth)),
    )
    return SourceType(name, family, dialect, port, fields, auth, example=example, **extra)


def _files(name, family, schemes, store=_S3_STORE, auth=_S3_AUTH, endpoint=False) -> SourceType:
    """Declare an object-store or file type: a list of tables (files, prefixes or globs) in one format."""
    if endpoint:
        store = _requiring(store, "s3_endpoint")
    fields = (_TABLES, *store, *_ENGINE)
    location = "/" if schemes == ("file",) else f"{schemes[0]}://bucket/prefix/"
    options: dict[str, object] = {"tables": [{"name": "t", "location": location}]}
    if endpoint:
        options.update(s3_endpoint="http://127.0.0.1:9000", s3_path_style=True, s3_use_ssl=False)
    options.update({f.name: "example" for f in fields if f.required and f.name not in options})
    auth_type = next(reversed(auth))
    secrets = {k: f"example-{k}" for k in auth[auth_type]}
    fmt = name.rpartition("_")[2]
    return SourceType(
        name,
        family,
        "duckdb",
        None,
        fields,
        auth,
        location_schemes=schemes,
        implied_table_options={"format": fmt} if fmt in ("parquet", "csv", "json", "orc", "avro") else {},
        example=(options, secrets, auth_type),
    )


def _lake(name, family, table_key="location", extra=()) -> SourceType:
    """Declare a lake-format type: tables by location (Delta, Hudi) or by catalog identifier (Iceberg)."""
    fields = (_TABLES, *extra, *_S3_STORE, *_ENGINE)
    table = {"name": "t", table_key: "db.t" if table_key == "identifier" else "s3://lake/warehouse/t"}
    return SourceType(
        name,
        family,
        "duckdb",
        None,
        fields,
        _S3_AUTH,
        location_schemes=_LAKE_SCHEMES if table_key == "location" else (),
        example=({"tables": [table]}, {}, "none"),
    )


_TYPES: tuple[SourceType, ...] = (
    # MySQL wire protocol
    _net("mysql", "mysql", "mysql", 3306, _MYSQL),
    _net("mariadb", "mysql", "mysql", 3306, _MYSQL),
    _net("tidb", "mysql", "mysql", 4000, _MYSQL),
    _net("tdsql", "mysql", "mysql", 3306, _MYSQL),
    _net("doris", "mysql", "doris", 9030, _MYSQL),
    _net("starrocks", "mysql", "starrocks", 9030, _MYSQL),
    _net("oceanbase_mysql", "mysql", "mysql", 2881, _MYSQL),
    _net("gaussdb_mysql", "mysql", "mysql", 3306, _MYSQL),
    # PostgreSQL wire protocol
    _net("postgresql", "postgres", "postgres", 5432, _POSTGRES),
    _net("redshift", "postgres", "redshift", 5439, _POSTGRES),
    _net("gaussdb_postgres", "postgres", "postgres", 8000, _POSTGRES),
    _net("kingbasees", "postgres", "postgres", 54321, _POSTGRES),
    _net("opengauss", "postgres", "postgres", 5432, _POSTGRES),
    # Families with no adapter here: registrable, not queryable (DS-010)
    _net("oracle", "oracle", "oracle", 1521, _ORACLE + _KERBEROS, _BASIC_OR_KERBEROS),
    _net("oceanbase_oracle", "oracle", "oracle", 2881, _ORACLE),
    _net("dameng", "dameng", "oracle", 5236, _ORACLE),
    _net("oscar", "oscar", "oracle", 2003, _ORACLE),
    _net("gbase_8s", "informix", "", 9088, _NETWORK),
    _net("gbase_8t", "informix", "", 9088, _NETWORK),
    _net("sqlserver", "sqlserver", "tsql", 1433, (*_NETWORK, _f("schema"), *_KERBEROS), _BASIC_OR_KERBEROS),
    _net("clickhouse", "clickhouse", "clickhouse", 8123, _CLICKHOUSE, _BASIC_OR_NONE),
    _net("druid", "druid", "druid", 8082, (*_NETWORK, _HTTP_PROTOCOL), _BASIC_OR_NONE),
    SourceType(
        "snowflake",
        "snowflake",
        "snowflake",
        443,
        (
            _f("account", required=True),
            _f("username", required=True),
            _f("warehouse"),
            _f("database"),
            _f("schema"),
            _f("role"),
            _f("host", "host"),
            _f("port", "port"),
            _HTTP_PROTOCOL,
            _f("login_timeout_seconds", "float", minimum=1, maximum=600),
            _POOL_SIZE,
            *_POOL_AGES,
            _secret("password"),
            _secret("private_key"),
            _secret("private_key_password"),
            _secret("token"),
        ),
        {"basic": ("password",), "keypair": ("private_key",), "oauth2": ("token",), "jwt": ("token",)},
        example=(
            {"account": "xy12345", "username": "reader", "warehouse": "wh"},
            {"password": "example-pw"},
            "basic",
        ),
    ),
    SourceType(
        "databricks",
        "databricks",
        "databricks",
        443,
        (
            _f("host", "host", required=True),
            _f("port", "port"),
            _f("http_path", required=True),
            _f("catalog"),
            _f("schema"),
            _f("client_id"),
            _STATEMENT_TIMEOUT,
            _secret("token"),
            _secret("client_secret"),
        ),
        {"pat": ("token",), "oauth2": ("client_secret",)},
        example=(
            {"host": "adb-1.azuredatabricks.net", "http_path": "/sql/1.0/warehouses/x"},
            {"token": "dapi-x"},
            "pat",
        ),
    ),
    SourceType(
        "bigquery",
        "bigquery",
        "bigquery",
        None,
        (
            _f("project_id", required=True),
            _f("dataset"),
            _f("location"),
            _f("endpoint", "url", choices=("http", "https")),
            _STATEMENT_TIMEOUT,
            _f("maximum_bytes_billed", "int", minimum=1, description="the cost guard of every job"),
            _f("use_storage_api", "bool"),
            _f("page_size", "int", minimum=1),
            _f("client_id"),
            _secret("service_account_json"),
            _secret("token"),
            _secret("refresh_token", "OAuth2 refresh token; google-auth renews the access token before it expires"),
            _secret("client_secret"),
        ),
        {"iam": ("service_account_json",), "oauth2": ("token",), "none": ()},
        example=({"project_id": "my-project", "dataset": "sales"}, {"service_account_json": "{}"}, "iam"),
    ),
    # Object stores and files (DuckDB over files). OSS, COS and Ozone are read through their S3 interface.
    _files("s3_parquet", "files", ("s3", "s3a")),
    _files("s3_orc", "files", ("s3", "s3a")),
    _files("s3_avro", "files", ("s3", "s3a")),
    _files("s3_csv", "files", ("s3", "s3a")),
    _files("s3_json", "files", ("s3", "s3a")),
    _files("minio_parquet", "files", ("s3", "s3a"), endpoint=True),
    _files("minio_csv", "files", ("s3", "s3a"), endpoint=True),
    _files("oss_parquet", "files", ("s3", "oss"), endpoint=True),
    _files("cos_parquet", "files", ("s3", "cos", "cosn"), endpoint=True),
    _files(
        "azure_parquet",
        "files",
        ("az", "azure", "abfs", "abfss"),
        _AZURE_STORE,
        {"none": (), "basic": ("azure_account_key",), "sas": ("azure_sas_token",)},
    ),
    _files("hdfs_avro", "hdfs", ("hdfs", "viewfs"), _KERBEROS, {"none": (), "kerberos": ("keytab",)}),
    _files("hdfs_parquet", "hdfs", ("hdfs", "viewfs"), _KERBEROS, {"none": (), "kerberos": ("keytab",)}),
    _files("hdfs_csv", "hdfs", ("hdfs", "viewfs"), _KERBEROS, {"none": (), "kerberos": ("keytab",)}),
    _files("ozone_parquet", "files", ("s3", "ofs", "o3fs"), endpoint=True),
    _files("local_files", "files", ("file",), (), {"none": ()}),
    # Lake formats
    _lake("iceberg", "iceberg", "identifier", (_f("catalog", "dict"),)),
    _lake("delta_lake", "delta"),
    _lake("hudi", "hudi"),
    # Embedded and peers
    SourceType(
        "duckdb",
        "duckdb",
        "duckdb",
        None,
        (_f("path", "path"), *_ENGINE),
        {"none": ()},
        example=({"memory_limit": "1GB"}, {}, "none"),
    ),
    SourceType(
        "sqlite",
        "sqlite",
        "sqlite",
        None,
        (
            _f("path", "path", required=True),
            _POOL_SIZE,
            _f("busy_timeout_seconds", "float", minimum=0, maximum=600),
        ),
        {"none": ()},
        example=({"path": "/"}, {}, "none"),
    ),
    SourceType(
        "flightsql",
        "flightsql",
        "",
        None,
        (
            _f("uri", "url", required=True, choices=("grpc", "grpc+tcp", "grpc+tls")),
            _f("username"),
            _f("catalog"),
            _f("tls_root_certs"),
            _f("tls_skip_verify", "bool"),
            _f("tls_override_hostname"),
            _f("mtls_cert_chain"),
            _f("max_message_bytes", "int", minimum=1024 * 1024, maximum=2**31 - 1),
            _f("query_timeout_seconds", "float", minimum=1, maximum=86_400),
            _POOL_SIZE,
            *_POOL_AGES,
            _secret("password"),
            _secret("token"),
            _secret("mtls_private_key"),
        ),
        {"none": (), "basic": ("password",), "jwt": ("token",)},
        example=({"uri": "grpc://127.0.0.1:32010"}, {}, "none"),
    ),
)

#: Options every type has that belong to the gateway, not the backend: the read-only validator's limits for the
#: source (QV-009 length in bytes, QV-008 nesting and joins) and the functions it may call besides its dialect's
#: allow-list (QV-011). They never reach the backend's options model.
GATEWAY_OPTIONS = (
    _f("max_query_length", "int", minimum=1),
    _f("max_nesting", "int", minimum=1),
    _f("max_joins", "int", minimum=0),
    _f("max_operator_depth", "int", minimum=1),
    _f(
        "allowed_functions",
        "list",
        description="functions queries may call besides the dialect's allow-list (name or schema.name)",
    ),
)
GATEWAY_OPTION_NAMES = frozenset(f.name for f in GATEWAY_OPTIONS)

#: Every source type by name.
SOURCE_TYPES: dict[str, SourceType] = {
    t.name: dataclasses.replace(t, fields=(*t.fields, *GATEWAY_OPTIONS)) for t in _TYPES
}


def backend_options(options: dict) -> dict:
    """A source's options without the gateway's own (what the backend family's model and backend receive)."""
    return {k: v for k, v in options.items() if k not in GATEWAY_OPTION_NAMES}


def validation_limits(options: dict) -> dict[str, int]:
    """The validator's limits a source sets, by ``ValidationLimits`` field name."""
    names = {"max_query_length": "max_length", "max_nesting": "max_nesting", "max_joins": "max_joins",
             "max_operator_depth": "max_operator_depth"}
    return {names[k]: int(v) for k, v in options.items() if k in names and v is not None}


def suggest(name: str, candidates) -> str:
    """Return a ``; did you mean 'x'?`` hint for a misspelt name, or an empty string."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
