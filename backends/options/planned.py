"""Options of the families the catalog registers but no adapter serves yet (their sources fail with DS-010).

Declared here so that such a source is validated like any other, and its options are known when its adapter
lands: the adapter then takes its model from here into a module of its own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from nexus_flight.backends.options.lake import EngineSettings, VersionedTable
from nexus_flight.backends.options.types import (
    Charset,
    Host,
    PoolSeconds,
    PoolSize,
    Port,
    StatementSeconds,
)


class _Network(BaseModel):
    """What every database reached over the network takes: where, who, and the pool."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: Host
    port: Port | None = None
    database: str | None = None
    username: str | None = None
    statement_timeout_seconds: StatementSeconds = 300.0
    pool_size: PoolSize = 8
    pool_timeout_seconds: float = Field(30.0, gt=0, le=600)
    pool_recycle_seconds: float = Field(300.0, ge=0, le=86_400)
    pool_max_lifetime_seconds: PoolSeconds = 3600.0
    password: SecretStr | None = None


class _Kerberos(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kerberos_principal: str | None = None
    #: Base64 of the keytab file.
    keytab: SecretStr | None = None


class _OracleLike(_Network):
    service_name: str | None = None
    sid: str | None = None
    charset: Charset | None = None


class OracleConfig(_Kerberos, _OracleLike):
    """Oracle and OceanBase in Oracle mode."""


class DamengConfig(_OracleLike):
    """Dameng (DM)."""


class OscarConfig(_OracleLike):
    """Shentong (Oscar)."""


class InformixConfig(_Network):
    """GBase 8s and 8t (Informix lineage)."""


class SQLServerConfig(_Kerberos, _Network):
    """Microsoft SQL Server."""

    schema_name: str | None = Field(None, alias="schema")


class DruidConfig(_Network):
    """Apache Druid through its SQL API."""

    protocol: Literal["http", "https"] = "http"


class DatabricksConfig(BaseModel):
    """A Databricks SQL warehouse."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: Host
    port: Port | None = None
    http_path: str
    catalog: str | None = None
    schema_name: str | None = Field(None, alias="schema")
    client_id: str | None = None
    statement_timeout_seconds: StatementSeconds = 300.0
    token: SecretStr | None = None
    client_secret: SecretStr | None = None


class HdfsTable(VersionedTable):
    """One table of files on HDFS."""

    location: str
    format: Literal["parquet", "csv", "json", "orc", "avro"] = "parquet"


class HdfsConfig(_Kerberos, EngineSettings):
    """Files on HDFS, by table."""

    tables: list[HdfsTable] = Field(min_length=1)
