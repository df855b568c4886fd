"""Backend families by kind, imported lazily so a missing driver only matters when its source is used."""

from __future__ import annotations

import difflib
import functools
import importlib
from importlib.metadata import entry_points

from backends.base import Backend, SourceSpec
from backends.errors import NotFoundError, NotInstalledError

#: kind -> ("module:Class", pip extra that installs its driver)
BACKENDS: dict[str, tuple[str, str | None]] = {
    "duckdb": ("backends.duckdb:DuckDBBackend", None),
    "postgres": ("backends.postgres:PostgresBackend", "postgres"),
    "mysql": ("backends.mysql:MySQLBackend", "mysql"),
    "flightsql": ("backends.flightsql:FlightSQLBackend", "flightsql"),
    "snowflake": ("backends.snowflake:SnowflakeBackend", "snowflake"),
    "sqlite": ("backends.sqlite:SQLiteBackend", "sqlite"),
    "files": ("backends.files:FilesBackend", None),
    "iceberg": ("backends.iceberg:IcebergBackend", "iceberg"),
    "delta": ("backends.delta:DeltaBackend", "delta"),
    "hudi": ("backends.hudi:HudiBackend", "hudi"),
    "clickhouse": ("backends.clickhouse:ClickHouseBackend", "clickhouse"),
    "bigquery": ("backends.bigquery:BigQueryBackend", "bigquery"),
}

ENTRY_POINT_GROUP = "nexus_flight.backends"


@functools.cache
def _third_party() -> dict[str, tuple[str, str | None]]:
    """Backends other packages register; read once (scanning installed packages costs milliseconds)."""
    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = (ep.value, None)
    return found


def known_kinds() -> list[str]:
    """All backend kinds, built in and from entry points."""
    return sorted({**_third_party(), **BACKENDS})


@functools.cache
def backend_class(kind: str) -> type[Backend]:
    """Import and return the backend class for ``kind``.

    Raises:
        NotFoundError: unknown kind (with a did-you-mean suggestion).
        NotInstalledError: the driver package is missing (names the pip extra).

    """
    table = {**_third_party(), **BACKENDS}
    if kind not in table:
        close = difflib.get_close_matches(kind, table, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise NotFoundError(f"unknown backend kind {kind!r}{hint}")
    target, extra = table[kind]
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f": pip install 'nexus-flight[{extra}]'" if extra else ""
        raise NotInstalledError(f"backend {kind!r} needs a driver that is not installed ({exc.name}){hint}") from exc
    return getattr(module, class_name)


def open_backend(spec: SourceSpec) -> Backend:
    """Instantiate the backend for a source."""
    return backend_class(spec.kind)(spec)
