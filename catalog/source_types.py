"""The source-type registry: every product the catalog registers, as a backend family plus what the product adds.

A :class:`SourceType` says which backend family serves the product (many share one: TiDB, Doris and OceanBase speak
MySQL; Redshift, KingbaseES and openGauss speak PostgreSQL), its default port, the sqlglot dialect its queries are
written in, the auth types it accepts with the secrets each needs, and what the catalog asks of it beyond its
family (where a network source is, which object store its tables live in). Its options and secrets are not
declared here: they are its family's options model (``backends/options/``), read through the model's JSON schema,
so listing, checking, redaction and documentation all come from that one declaration.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from nexus_flight.backends.options import options_model
from nexus_flight.backends.profile import GatewayOptions

FieldKind = Literal[
    "str", "int", "float", "bool", "host", "port", "url", "endpoint", "path", "tables", "charset", "choice", "list",
    "dict",
]

#: Auth types the vault records (``none``: the source needs no credentials).
AUTH_TYPES = ("none", "basic", "oauth2", "iam", "kerberos", "jwt", "sas", "pat", "keypair")

#: JSON-schema ``format`` of the option types in ``backends/options/types.py``, by the kind the catalog checks.
_FORMATS = {"hostname": "host", "port": "port", "uri": "url", "endpoint": "endpoint", "path": "path",
            "charset": "charset"}
_JSON_TYPES = {"integer": "int", "number": "float", "boolean": "bool", "string": "str", "object": "dict"}


@dataclass(frozen=True)
class FieldSpec:
    """One option or secret of a source type, as its family's options model declares it."""

    name: str
    kind: FieldKind = "str"
    required: bool = False
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None
    #: Whether ``minimum`` / ``maximum`` are themselves excluded (``gt``/``lt`` rather than ``ge``/``le``).
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    #: Allowed values of a ``choice``; allowed URL schemes of a ``url``; values a ``path`` may take instead.
    choices: tuple[str, ...] = ()
    description: str = ""


def _branch(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The schema an optional or union property validates against, and the constants it also accepts."""
    if "$ref" in prop:
        prop = {**defs[prop["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in prop.items() if k != "$ref"}}
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    constants = tuple(str(b["const"]) for b in branches if "const" in b)
    typed = [b for b in branches if "const" not in b] or branches
    chosen = next((b for b in typed if "format" in b), typed[0] if typed else {})
    if "$ref" in chosen:
        chosen = defs[chosen["$ref"].rsplit("/", 1)[1]]
    return {**{k: v for k, v in prop.items() if k != "anyOf"}, **chosen}, constants


def _kind(prop: dict[str, Any], constants: tuple[str, ...]) -> FieldKind:
    if prop.get("format") in _FORMATS:
        return _FORMATS[prop["format"]]  # type: ignore[return-value]
    if "enum" in prop or (constants and "type" not in prop):
        return "choice"
    if prop.get("type") == "array":
        items = prop.get("items", {})
        return "tables" if "$ref" in items or items.get("type") == "object" else "list"
    return _JSON_TYPES.get(prop.get("type", "string"), "str")  # type: ignore[return-value]


@functools.cache
def fields_of(model: type[BaseModel]) -> tuple[FieldSpec, ...]:
    """The options and secrets a model declares, in its order (by alias; fields left out of its schema skipped)."""
    schema = model.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    required = set(schema.get("required", ()))
    fields = []
    for name, raw in schema.get("properties", {}).items():
        prop, constants = _branch(raw, defs)
        secret = prop.get("format") == "password"
        kind = "str" if secret else _kind(prop, constants)
        choices = tuple(str(v) for v in prop.get("enum", ())) or tuple(prop.get("x-schemes", ())) or constants
        fields.append(
            FieldSpec(
                name,
                kind,
                required=name in required,
                secret=secret,
                minimum=prop.get("minimum", prop.get("exclusiveMinimum")),
                maximum=prop.get("maximum", prop.get("exclusiveMaximum")),
                exclusive_minimum="minimum" not in prop and "exclusiveMinimum" in prop,
                exclusive_maximum="maximum" not in prop and "exclusiveMaximum" in prop,
                choices=choices,
                description=raw.get("description", ""),
            )
        )
    return tuple(fields)


@dataclass(frozen=True)
class SourceType:
    """One product: its family, dialect, port and auth types, and what the catalog asks of it beyond its family."""

    name: str
    family: str
    dialect: str
    default_port: int | None
    #: auth type -> secrets it requires.
    auth: Mapping[str, tuple[str, ...]]
    #: Schemes a table's ``location`` may use (DS-015); empty when the type has no locations.
    location_schemes: tuple[str, ...] = ()
    #: Table options the type implies, filled into tables that do not set them (``format`` of ``s3_csv``).
    implied_table_options: Mapping[str, object] = field(default_factory=dict)
    #: Options the catalog requires although the family has a default: where a network source is (a registered
    #: source never falls back to the gateway's own machine), the endpoint of an S3-compatible store.
    requires: tuple[str, ...] = ()
    #: Prefixes of the family's options this type has no use for (another object store's settings).
    omits: tuple[str, ...] = ()
    #: A valid configuration (options, secrets, auth type), used by documentation and tests.
    example: tuple[Mapping[str, object], Mapping[str, str], str] = field(default=({}, {}, "none"))

    @property
    def model(self) -> type[BaseModel] | None:
        """The family's options model (None for a third-party family that is not installed)."""
        return options_model(self.family)

    @functools.cached_property
    def fields(self) -> tuple[FieldSpec, ...]:
        """Every option and secret of the type: its family's model's, then the gateway's own."""
        model = self.model
        family = [f for f in (fields_of(model) if model is not None else ()) if not _omitted(f.name, self.omits)]
        family = [dataclasses.replace(f, required=True) if f.name in self.requires else f for f in family]
        return (*family, *fields_of(GatewayOptions))

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


def _omitted(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name.startswith(p) for p in prefixes)


_BASIC = {"basic": ()}
_BASIC_OR_NONE = {"none": (), "basic": ("password",)}
_BASIC_OR_KERBEROS = {"basic": (), "kerberos": ("keytab",)}
_S3_AUTH = {"none": (), "iam": ("s3_access_key_id", "s3_secret_access_key")}
_LAKE_SCHEMES = ("file", "s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss")
#: The settings of each object store a files type may read from (``backends/options/store.py``).
_STORES = ("s3_", "azure_", "gcs_")


def _net(name, family, dialect, port, auth=_BASIC, **extra) -> SourceType:
    example = (
        {"host": "db.example.internal", "port": port, "database": "sales", "username": "reader"},
        {"password": "example-password"},
        "basic" if "basic" in auth else next(iter(auth)),
    )
    return SourceType(name, family, dialect, port, auth, requires=("host",), example=example, **extra)


def _files(name, family, schemes, store="s3_", auth=_S3_AUTH, endpoint=False) -> SourceType:
    """Declare an object-store or file type: a list of tables (files, prefixes or globs) in one format."""
    location = "/" if schemes == ("file",) else f"{schemes[0]}://bucket/prefix/"
    options: dict[str, object] = {"tables": [{"name": "t", "location": location}]}
    requires: tuple[str, ...] = ()
    if endpoint:
        requires = ("s3_endpoint",)
        options.update(s3_endpoint="http://127.0.0.1:9000", s3_path_style=True, s3_use_ssl=False)
    if store == "azure_":
        requires = ("azure_account_name",)
        options["azure_account_name"] = "example"
    auth_type = next(reversed(auth))
    secrets = {k: f"example-{k}" for k in auth[auth_type]}
    fmt = name.rpartition("_")[2]
    return SourceType(
        name,
        family,
        "duckdb",
        None,
        auth,
        location_schemes=schemes,
        implied_table_options={"format": fmt} if fmt in ("parquet", "csv", "json", "orc", "avro") else {},
        requires=requires,
        omits=tuple(s for s in _STORES if s != store) if family == "files" else (),
        example=(options, secrets, auth_type),
    )


def _lake(name, family, table_key="location") -> SourceType:
    """Declare a lake-format type: tables by location (Delta, Hudi) or by catalog identifier (Iceberg)."""
    table = {"name": "t", table_key: "db.t" if table_key == "identifier" else "s3://lake/warehouse/t"}
    return SourceType(
        name,
        family,
        "duckdb",
        None,
        _S3_AUTH,
        location_schemes=_LAKE_SCHEMES if table_key == "location" else (),
        example=({"tables": [table]}, {}, "none"),
    )


_TYPES: tuple[SourceType, ...] = (
    # MySQL wire protocol
    _net("mysql", "mysql", "mysql", 3306),
    _net("mariadb", "mysql", "mysql", 3306),
    _net("tidb", "mysql", "mysql", 4000),
    _net("tdsql", "mysql", "mysql", 3306),
    _net("doris", "mysql", "doris", 9030),
    _net("starrocks", "mysql", "starrocks", 9030),
    _net("oceanbase_mysql", "mysql", "mysql", 2881),
    _net("gaussdb_mysql", "mysql", "mysql", 3306),
    # PostgreSQL wire protocol
    _net("postgresql", "postgres", "postgres", 5432),
    _net("redshift", "postgres", "redshift", 5439),
    _net("gaussdb_postgres", "postgres", "postgres", 8000),
    _net("kingbasees", "postgres", "postgres", 54321),
    _net("opengauss", "postgres", "postgres", 5432),
    # Families with no adapter here: registrable, not queryable (DS-010)
    _net("oracle", "oracle", "oracle", 1521, _BASIC_OR_KERBEROS),
    _net("oceanbase_oracle", "oracle", "oracle", 2881),
    _net("dameng", "dameng", "oracle", 5236),
    _net("oscar", "oscar", "oracle", 2003),
    _net("gbase_8s", "informix", "", 9088),
    _net("gbase_8t", "informix", "", 9088),
    _net("sqlserver", "sqlserver", "tsql", 1433, _BASIC_OR_KERBEROS),
    _net("clickhouse", "clickhouse", "clickhouse", 8123, _BASIC_OR_NONE),
    _net("druid", "druid", "druid", 8082, _BASIC_OR_NONE),
    SourceType(
        "snowflake",
        "snowflake",
        "snowflake",
        443,
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
        "azure_",
        {"none": (), "basic": ("azure_account_key",), "sas": ("azure_sas_token",)},
    ),
    _files("hdfs_avro", "hdfs", ("hdfs", "viewfs"), auth={"none": (), "kerberos": ("keytab",)}),
    _files("hdfs_parquet", "hdfs", ("hdfs", "viewfs"), auth={"none": (), "kerberos": ("keytab",)}),
    _files("hdfs_csv", "hdfs", ("hdfs", "viewfs"), auth={"none": (), "kerberos": ("keytab",)}),
    _files("ozone_parquet", "files", ("s3", "ofs", "o3fs"), endpoint=True),
    _files("local_files", "files", ("file",), "", {"none": ()}),
    # Lake formats
    _lake("iceberg", "iceberg", "identifier"),
    _lake("delta_lake", "delta"),
    _lake("hudi", "hudi"),
    # Embedded and peers
    SourceType("duckdb", "duckdb", "duckdb", None, {"none": ()}, example=({"memory_limit": "1GB"}, {}, "none")),
    SourceType("sqlite", "sqlite", "sqlite", None, {"none": ()}, example=({"path": "/"}, {}, "none")),
    # The family's dialect: most Flight SQL engines (DataFusion, Dremio, Doris) accept PostgreSQL-like SQL.
    SourceType(
        "flightsql",
        "flightsql",
        "postgres",
        None,
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
