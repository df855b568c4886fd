"""Backend families by kind, imported lazily so a missing driver only matters when its source is used."""

from __future__ import annotations

import difflib
import functools
import importlib
from importlib.metadata import entry_points

from nexus_flight.backends.base import Backend
from nexus_flight.core.errors import NotFoundError, NotInstalledError
from nexus_flight.core.source import SourceSpec

#: kind -> ("module:Class", pip extra that installs its driver)
BACKENDS: dict[str, tuple[str, str | None]] = {
    "duckdb": ("nexus_flight.backends.duckdb:DuckDBBackend", None),
    "postgres": ("nexus_flight.backends.postgres:PostgresBackend", "postgres"),
    "mysql": ("nexus_flight.backends.mysql:MySQLBackend", "mysql"),
    "flightsql": ("nexus_flight.backends.flightsql:FlightSQLBackend", "flightsql"),
    "snowflake": ("nexus_flight.backends.snowflake:SnowflakeBackend", "snowflake"),
    "sqlite": ("nexus_flight.backends.sqlite:SQLiteBackend", "sqlite"),
    "files": ("nexus_flight.backends.files:FilesBackend", None),
    "iceberg": ("nexus_flight.backends.iceberg:IcebergBackend", "iceberg"),
    "delta": ("nexus_flight.backends.delta:DeltaBackend", "delta"),
    "hudi": ("nexus_flight.backends.hudi:HudiBackend", "hudi"),
    "clickhouse": ("nexus_flight.backends.clickhouse:ClickHouseBackend", "clickhouse"),
    "bigquery": ("nexus_flight.backends.bigquery:BigQueryBackend", "bigquery"),
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
