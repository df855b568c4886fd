"""Metadata answers cut to what the caller may see: catalogs, schemas and tables without a grant are left out.

Every metadata table names its objects in ``catalog_name``/``db_schema_name``/``table_name`` columns (keys name
two tables, with ``pk_``/``fk_`` prefixes); a row stays only when the caller may see every object it names, and,
where it names a column (``column_name``, ``pk_column_name``, ``fk_column_name``: keys), may read that column.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from nexus_flight.core.identifiers import IdentifierRules
from nexus_flight.server.query.authorization import QueryAccess
from nexus_flight.server.query.principal import Principal

_PREFIXES = ("", "pk_", "fk_")


def visible_rows(table: pa.Table, access: QueryAccess | None, principal: Principal | None,
                 identifiers: Callable[[str], IdentifierRules]) -> pa.Table:
    """The rows of a metadata table naming only objects ``principal`` may see (all of them without grants).

    Names compare by each source engine's ``identifiers`` rules (PostgreSQL tells ``x`` from ``"X"``).
    """
    if access is None or principal is None:
        return table
    names = set(table.column_names)
    levels = [(f"{p}catalog_name", f"{p}db_schema_name", f"{p}table_name", f"{p}column_name") for p in _PREFIXES
              if f"{p}catalog_name" in names]
    if not levels:
        return table
    keep = []
    for row in table.select([c for level in levels for c in level if c in names]).to_pylist():
        keep.append(all(_shown(access, principal, identifiers, row, *level) for level in levels))
    return table.filter(pa.array(keep, pa.bool_()))


def _shown(access: QueryAccess, principal: Principal, identifiers: Callable[[str], IdentifierRules], row: dict,
           catalog: str, schema: str, name: str, column: str) -> bool:
    source = row.get(catalog) or ""
    rules = identifiers(source)
    if not access.visible(principal, source, row.get(schema), row.get(name), rules):
        return False
    if row.get(column) is None or row.get(name) is None:
        return True
    readable = access.readable_columns(principal, source, row.get(schema), row[name], rules)
    return readable is None or rules.key(row[column]) in readable
