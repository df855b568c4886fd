"""A table's schema found the way its engine finds the table: by exact name, or without case where it ignores case.

A query's names are resolved by the engine's identifier rules (``core/identifiers.py``) before they are looked
up; DuckDB and SQLite find ``STAFF`` as ``staff``, so where the source's metadata holds the name in another case,
the listed name is the one asked for. PostgreSQL-family engines, and MySQL/MariaDB with
``lower_case_table_names=0``, compare exactly: only the exact name is.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from nexus_flight.core.errors import GatewayError
from nexus_flight.core.identifiers import rules_of


def resolved_table_schema(backend: Any, db_schema: str, table: str) -> pa.Schema | None:
    """The schema-cache schema of ``db_schema.table`` on ``backend`` (None: no such table, or unreadable)."""
    try:
        return backend.table_schema(db_schema, table)
    except GatewayError:
        pass
    rules = rules_of(backend)
    if rules.table_names_exact:
        return None
    try:
        listed = [t for t in backend.list_tables(db_schema) if rules.same_table(t.name, table)]
        return backend.table_schema(listed[0].db_schema, listed[0].name) if listed else None
    except GatewayError:
        return None
