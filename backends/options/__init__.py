"""Each backend family's options, declared once: one frozen pydantic model per family, importable without drivers.

The model is the only declaration of a family's options and secrets (secrets are ``SecretStr``): the family's
backend validates a source with it, and the catalog derives from it the fields it lists, documents and checks
(``catalog/source_types.py``). Options with a meaning beyond their Python type use the types of
:mod:`~nexus_flight.backends.options.types` (host, port, URL, endpoint, local path, charset), which say so in the
model's JSON schema. Families the catalog registers but no adapter serves yet have theirs in ``planned.py``.
"""

from __future__ import annotations

import importlib

from pydantic import BaseModel

from nexus_flight.backends.registry import backend_class
from nexus_flight.core.errors import GatewayError

#: family -> "module:Model" (modules under ``nexus_flight.backends.options``).
MODELS: dict[str, str] = {
    "duckdb": "duckdb:DuckDBConfig",
    "postgres": "postgres:PostgresConfig",
    "mysql": "mysql:MySQLConfig",
    "flightsql": "flightsql:FlightSQLConfig",
    "snowflake": "snowflake:SnowflakeConfig",
    "sqlite": "sqlite:SQLiteConfig",
    "files": "files:FilesConfig",
    "iceberg": "lake:IcebergConfig",
    "delta": "lake:DeltaConfig",
    "hudi": "lake:HudiConfig",
    "clickhouse": "clickhouse:ClickHouseConfig",
    "bigquery": "bigquery:BigQueryConfig",
    "oracle": "planned:OracleConfig",
    "dameng": "planned:DamengConfig",
    "oscar": "planned:OscarConfig",
    "informix": "planned:InformixConfig",
    "sqlserver": "planned:SQLServerConfig",
    "druid": "planned:DruidConfig",
    "databricks": "planned:DatabricksConfig",
    "hdfs": "planned:HdfsConfig",
}


def options_model(family: str) -> type[BaseModel] | None:
    """The options model of a family: built in, else a third-party backend's ``config_model``; None if unknown."""
    target = MODELS.get(family)
    if target is not None:
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    try:
        return backend_class(family).config_model
    except GatewayError:
        return None
