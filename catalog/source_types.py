"""The source-type registry: every source type the gateway knows, declared once.

Each :class:`SourceType` says which backend family serves it (many products share one family: TiDB, Doris and
OceanBase speak MySQL; Redshift, KingbaseES and openGauss speak PostgreSQL), its default port, the sqlglot
dialect
its queries are written in, its options and secrets (typed, so validation, redaction and documentation come
from
the same declaration) and the auth types it accepts with the secrets each one needs.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

FieldKind = Literal[
    "str", "int", "float", "bool", "host", "port", "url", "path", "location", "charset", "choice", "list"
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
    #: Options the type implies and the catalog passes to the backend (e.g. ``format`` of ``s3_csv``).
    implied_options: Mapping[str, object] = field(default_factory=dict)
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


# Field groups shared by many types.
_TIMEOUTS = (
    _f("connect_timeout_seconds", "float", minimum=1, maximum=300),
    _f("query_timeout_seconds", "float", minimum=1, maximum=86_400),
)
_POOL = (
    _f("pool_size", "int", minimum=1, maximum=100),
    _f("pool_max_overflow", "int", minimum=0, maximum=100),
    _f("pool_timeout_seconds", "float", minimum=1, maximum=600),
    _f("pool_recycle_seconds", "int", minimum=0, maximum=86_400),
)
_NETWORK = (
    _f("host", "host", required=True),
    _f("port", "port"),
    _f("database"),
    _f("user"),
    _f("tls", "bool"),
    *_TIMEOUTS,
    *_POOL,
    _secret("password"),
)
_MYSQL = (*_NETWORK, _f("charset", "charset"))
_POSTGRES = (
    *_NETWORK,
    _f("schema"),
    _f("sslmode", "choice", choices=("disable", "allow", "prefer", "require", "verify-ca", "verify-full")),
)
_ORACLE = (*_NETWORK, _f("service_name"), _f("sid"), _f("charset", "charset"))
_KERBEROS = (_f("kerberos_principal"), _secret("keytab", "base64 of the keytab file"))
_S3_KEYS = (_secret("access_key_id"), _secret("secret_access_key"), _secret("session_token"))
_OBJECT_STORE = (
    _f("location", "location", required=True),
    _f("region"),
    _f("endpoint", "url", choices=("http", "https")),
    _f("url_style", "choice", choices=("path", "vhost")),
    *_TIMEOUTS,
)
_LAKE = (
    _f("location", "location", required=True),
    _f("region"),
    _f("endpoint", "url", choices=("http", "https")),
    _f("version", "int", minimum=0),
    *_S3_KEYS,
    _secret("sas_token"),
    *_TIMEOUTS,
)
_BASIC = {"basic": ()}
_BASIC_OR_NONE = {"none": (), "basic": ("password",)}
_S3_AUTH = {"none": (), "iam": ("access_key_id", "secret_access_key")}
_LAKE_SCHEMES = ("file", "s3", "s3a", "gs", "az", "abfs", "abfss", "hdfs")


def _net(name, family, dialect, port, fields=_NETWORK, auth=_BASIC, **extra) -> SourceType:
    example = (
        {"host": "db.example.internal", "port": port, "database": "sales", "user": "reader"},
        {"password": "example-password"},
        "basic" if "basic" in auth else next(iter(auth)),
    )
    return SourceType(name, family, dialect, port, fields, auth, example=example, **extra)


def _files(
    name, family, schemes, fields=_OBJECT_STORE + _S3_KEYS, auth=_S3_AUTH, endpoint=False
) -> SourceType:
    if endpoint:
        fields = tuple(
            _f("endpoint", "url", required=True, choices=("http", "https")) if f.name == "endpoint" else f
            for f in fields
        )
    options: dict[str, object] = {"location": f"{schemes[0]}://bucket/prefix/"}
    if endpoint:
        options["endpoint"] = "http://127.0.0.1:9000"
    options.update({f.name: "example" for f in fields if f.required and f.name not in options})
    secrets = {k: f"example-{k}" for k in auth[next(reversed(auth))]}
    return SourceType(
        name,
        family,
        "duckdb",
        None,
        fields,
        auth,
        location_schemes=schemes,
        implied_options={"format": name.rpartition("_")[2]},
        example=(options, secrets, next(reversed(auth))),
    )


def _lake(name, family) -> SourceType:
    return SourceType(
        name,
        family,
        "duckdb",
        None,
        _LAKE,
        {"none": (), **_S3_AUTH, "sas": ("sas_token",)},
        location_schemes=_LAKE_SCHEMES,
        example=({"location": "s3://lake/warehouse/t"}, {}, "none"),
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
    _net(
        "postgresql",
        "postgres",
        "postgres",
        5432,
        _POSTGRES + _KERBEROS,
        {"basic": (), "kerberos": ("keytab",)},
    ),
    _net(
        "redshift",
        "postgres",
        "redshift",
        5439,
        _POSTGRES + _S3_KEYS,
        {"basic": (), "iam": ("access_key_id", "secret_access_key")},
    ),
    _net("gaussdb_postgres", "postgres", "postgres", 8000, _POSTGRES),
    _net("kingbasees", "postgres", "postgres", 54321, _POSTGRES),
    _net("opengauss", "postgres", "postgres", 5432, _POSTGRES),
    # Families with no adapter here: registrable, not queryable (DS-010)
    _net("oracle", "oracle", "oracle", 1521, _ORACLE + _KERBEROS, {"basic": (), "kerberos": ("keytab",)}),
    _net("oceanbase_oracle", "oracle", "oracle", 2881, _ORACLE),
    _net("dameng", "dameng", "oracle", 5236, _ORACLE),
    _net("oscar", "oscar", "oracle", 2003, _ORACLE),
    _net("gbase_8s", "informix", "", 9088, _NETWORK),
    _net("gbase_8t", "informix", "", 9088, _NETWORK),
    _net(
        "sqlserver",
        "sqlserver",
        "tsql",
        1433,
        (*_NETWORK, _f("schema"), *_KERBEROS),
        {"basic": (), "kerberos": ("keytab",)},
    ),
    _net(
        "clickhouse",
        "clickhouse",
        "clickhouse",
        8123,
        (*_NETWORK, _f("protocol", "choice", choices=("http", "https"))),
        _BASIC_OR_NONE,
    ),
    _net(
        "druid",
        "druid",
        "druid",
        8082,
        (*_NETWORK, _f("protocol", "choice", choices=("http", "https"))),
        _BASIC_OR_NONE,
    ),
    SourceType(
        "snowflake",
        "snowflake",
        "snowflake",
        443,
        (
            _f("account", required=True),
            _f("user", required=True),
            _f("warehouse"),
            _f("database"),
            _f("schema"),
            _f("role"),
            _f("host", "host"),
            _f("port", "port"),
            _f("protocol", "choice", choices=("http", "https")),
            *_TIMEOUTS,
            *_POOL,
            _secret("password"),
            _secret("private_key"),
            _secret("private_key_passphrase"),
            _secret("token"),
        ),
        {"basic": ("password",), "keypair": ("private_key",), "oauth2": ("token",), "jwt": ("token",)},
        example=(
            {"account": "xy12345", "user": "reader", "warehouse": "wh"},
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
            *_TIMEOUTS,
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
            *_TIMEOUTS,
            _secret("service_account_json"),
            _secret("token"),
        ),
        {"iam": ("service_account_json",), "oauth2": ("token",), "none": ()},
        example=({"project_id": "my-project", "dataset": "sales"}, {"service_account_json": "{}"}, "iam"),
    ),
    # Object stores and files (DuckDB over files)
    _files("s3_parquet", "files", ("s3", "s3a")),
    _files("s3_orc", "files", ("s3", "s3a")),
    _files("s3_avro", "files", ("s3", "s3a")),
    _files("s3_csv", "files", ("s3", "s3a")),
    _files("s3_json", "files", ("s3", "s3a")),
    _files("minio_parquet", "files", ("s3", "s3a"), endpoint=True),
    _files("minio_csv", "files", ("s3", "s3a"), endpoint=True),
    _files(
        "oss_parquet",
        "files",
        ("oss",),
        (*_OBJECT_STORE, _secret("access_key_id"), _secret("access_key_secret")),
        {"none": (), "iam": ("access_key_id", "access_key_secret")},
        endpoint=True,
    ),
    _files(
        "cos_parquet",
        "files",
        ("cos", "cosn"),
        (*_OBJECT_STORE, _secret("secret_id"), _secret("secret_key")),
        {"none": (), "iam": ("secret_id", "secret_key")},
    ),
    _files(
        "azure_parquet",
        "files",
        ("az", "azure", "abfs", "abfss"),
        (
            *_OBJECT_STORE,
            _f("account_name", required=True),
            _f("tenant_id"),
            _f("client_id"),
            _secret("account_key"),
            _secret("sas_token"),
            _secret("client_secret"),
        ),
        {"none": (), "oauth2": ("client_secret",), "basic": ("account_key",), "sas": ("sas_token",)},
    ),
    _files(
        "hdfs_avro",
        "hdfs",
        ("hdfs", "viewfs"),
        (*_OBJECT_STORE, *_KERBEROS),
        {"none": (), "kerberos": ("keytab",)},
    ),
    _files(
        "hdfs_parquet",
        "hdfs",
        ("hdfs", "viewfs"),
        (*_OBJECT_STORE, *_KERBEROS),
        {"none": (), "kerberos": ("keytab",)},
    ),
    _files(
        "hdfs_csv",
        "hdfs",
        ("hdfs", "viewfs"),
        (*_OBJECT_STORE, *_KERBEROS),
        {"none": (), "kerberos": ("keytab",)},
    ),
    _files(
        "ozone_parquet",
        "hdfs",
        ("ofs", "o3fs"),
        (*_OBJECT_STORE, *_KERBEROS),
        {"none": (), "kerberos": ("keytab",)},
    ),
    # Lake formats
    _lake("iceberg", "iceberg"),
    _lake("delta_lake", "delta"),
    _lake("hudi", "hudi"),
    # Embedded and peers
    SourceType(
        "duckdb",
        "duckdb",
        "duckdb",
        None,
        (
            _f("path", "path"),
            _f("memory_limit"),
            _f("threads", "int", minimum=1, maximum=1024),
            _f("temp_directory", "path"),
            _f("setup_sql", "list"),
            *_TIMEOUTS,
        ),
        {"none": ()},
        example=({"memory_limit": "1GB"}, {}, "none"),
    ),
    SourceType(
        "sqlite",
        "sqlite",
        "sqlite",
        None,
        (_f("path", "path", required=True), *_TIMEOUTS),
        {"none": ()},
        example=({"path": "/"}, {}, "none"),
    ),
    SourceType(
        "local_files",
        "files",
        "duckdb",
        None,
        (
            _f("path", "path", required=True),
            _f("format", "choice", choices=("parquet", "csv", "json", "avro", "orc")),
            _f("glob"),
            *_TIMEOUTS,
        ),
        {"none": ()},
        example=({"path": "/", "format": "parquet"}, {}, "none"),
    ),
    SourceType(
        "flightsql",
        "flightsql",
        "",
        None,
        (
            _f("uri", "url", required=True, choices=("grpc", "grpc+tcp", "grpc+tls")),
            _f("username"),
            _f("dialect"),
            _f("tls_skip_verify", "bool"),
            *_TIMEOUTS,
            _secret("password"),
            _secret("token"),
        ),
        {"none": (), "basic": ("password",), "jwt": ("token",)},
        example=({"uri": "grpc://127.0.0.1:32010"}, {}, "none"),
    ),
)

#: Every source type by name.
SOURCE_TYPES: dict[str, SourceType] = {t.name: t for t in _TYPES}


def suggest(name: str, candidates) -> str:
    """Return a ``; did you mean 'x'?`` hint for a misspelt name, or an empty string."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
