"""Binding a query's tables to its DuckDB cursor: each named table resolved at the state asked for, then registered.

A lake source's tables are not in DuckDB's database: for each query, the binder resolves every table the query
names (the latest snapshot, the one its configuration pins, or the one the name asks for with ``@``) into an
Arrow object and registers it on that query's cursor only, so concurrent queries never see each other's
bindings and a query reads one consistent snapshot per table. What it bound comes back to the caller as
``BoundTables``, versions included.

Time travel, from SQL: a table name with ``@`` reads an older state of the table::

    SELECT * FROM "orders@v3"                     -- Delta version 3 / Iceberg snapshot id 3 / Hudi instant 3
    SELECT * FROM "orders@2026-11-23T12:00:00Z"   -- the state as of that time (UTC when no zone is given)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from nexus_flight.backends.arrow_scan import for_duckdb
from nexus_flight.core.errors import InvalidQueryError, NotFoundError

_TIME_TRAVEL = re.compile(r"^(?P<table>.+)@(?P<at>[^@]+)$")
_VERSION = re.compile(r"^v?(?P<n>\d+)$")


@dataclass(frozen=True)
class TimeTravel:
    """Which state of a table to read: a version / snapshot id, a point in time, or the latest (both None)."""

    version: int | None = None
    as_of: dt.datetime | None = None

    @property
    def latest(self) -> bool:
        """True when no older state was asked for."""
        return self.version is None and self.as_of is None


@dataclass(frozen=True)
class Binding:
    """One table resolved for one query: the Arrow object DuckDB scans and the version it holds."""

    data: Any  # pyarrow.dataset.Dataset, pyarrow.Table or a RecordBatchReader factory's result
    version: str | None = None


@dataclass(frozen=True)
class BoundTables:
    """What one query's cursor was given."""

    #: The version bound under each name the query wrote (``"sales"``, ``"sales@v0"``).
    by_name: Mapping[str, str | None]
    #: The version each table was read at, by table (``"sales@v0"`` read version 0 of ``sales``); a table the
    #: query names at two states reads ``"<first>+<second>"``.
    read_versions: Mapping[str, str | None]


def parse_time_travel(at: str) -> TimeTravel:
    """Parse what follows ``@`` in a table name: ``v3``/``3`` or an ISO-8601 timestamp.

    Raises:
        InvalidQueryError: neither.

    """
    match = _VERSION.match(at)
    if match:
        return TimeTravel(version=int(match["n"]))
    try:
        when = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidQueryError(
            f'time travel {at!r}: expected @v<version> or @<ISO-8601 timestamp>, e.g. "orders@v3" or '
            '"orders@2026-11-23T12:00:00Z"'
        ) from exc
    return TimeTravel(as_of=when if when.tzinfo else when.replace(tzinfo=dt.UTC))


def pinned(version: int | None, as_of: dt.datetime | None) -> TimeTravel:
    """Return the time travel a table's configuration pins (naive timestamps are UTC)."""
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=dt.UTC)
    return TimeTravel(version=version, as_of=as_of)


class TableBinder:
    """Resolves a source's configured tables by the names a query writes, and binds them to its cursor.

    Args:
        source: The source's name (errors carry it).
        label: How messages name the family (``[delta] ...``).
        tables: The configured table names.
        load: Loads one configured table at a state (None: the configured default), its errors mapped.

    """

    def __init__(
        self,
        source: str,
        label: str,
        tables: Sequence[str],
        load: Callable[[str, TimeTravel | None], Binding],
    ) -> None:
        self._source = source
        self._label = label
        self._tables = list(tables)
        self._load = load

    @property
    def tables(self) -> list[str]:
        """The configured table names, in order."""
        return list(self._tables)

    def canonical(self, name: str) -> str | None:
        """Return the configured table ``name`` means (DuckDB matches names case-insensitively), if any."""
        if name in self._tables:
            return name
        folded = [n for n in self._tables if n.lower() == name.lower()]
        return folded[0] if len(folded) == 1 else None

    def split(self, name: str) -> tuple[str, TimeTravel | None]:
        """Split a name as written into the table it names and the state it asks for (None: not said)."""
        match = _TIME_TRAVEL.match(name)
        if match and self.canonical(match["table"]) is not None:
            return self.canonical(match["table"]), parse_time_travel(match["at"])
        return self.canonical(name) or name, None

    def resolve(self, name: str) -> Binding:
        """Load the table a name as written means, at the state it asks for.

        Raises:
            NotFoundError: no configured table has that name.

        """
        table, travel = self.split(name)
        if table not in self._tables:
            raise NotFoundError(f"[{self._label}] table {name!r} not found", source=self._source)
        return self._load(table, travel)

    def bind(self, cursor: duckdb.DuckDBPyConnection, names: Iterable[str]) -> BoundTables:
        """Resolve every name, then register each on ``cursor`` under the name the query wrote."""
        bindings = {name: self.resolve(name) for name in names}
        for name, binding in bindings.items():
            cursor.register(name, for_duckdb(binding.data))
        by_name = {name: binding.version for name, binding in bindings.items()}
        read: dict[str, str | None] = {}
        for name, version in by_name.items():
            table = self.split(name)[0]
            read[table] = version if table not in read else f"{read[table]}+{version}"
        return BoundTables(by_name, read)
