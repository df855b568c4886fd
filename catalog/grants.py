"""Grants: SELECT on a source (catalog), a schema, a table or named columns of a table, given to a role.

A grant names the catalog always, and optionally a schema, a table and columns; what it leaves out means "all"
below it (``sales`` = every schema and table of the source ``sales``; ``sales..orders`` = the table ``orders``
in any schema). Names are kept as given and compared case-insensitively. Every change is audited in the
transaction that makes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from nexus_flight.catalog.audit import audit
from nexus_flight.catalog.models import GrantRecord
from nexus_flight.catalog.rules import rule_error
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.users import _role
from nexus_flight.core.errors import NotFoundError

PRIVILEGES = ("select",)


@dataclass(frozen=True)
class GrantInfo:
    """One grant."""

    id: str
    role: str
    privilege: str
    catalog: str
    db_schema: str | None
    table: str | None
    columns: tuple[str, ...] | None
    created_by: str | None
    created_at: datetime
    #: ``cli`` (made with the CLI or an admin action) or ``config`` (declared in the TOML file, which owns it).
    origin: str = "cli"

    @property
    def target(self) -> str:
        """``catalog[.schema][.table]`` as written in the CLI (``catalog..table`` for any schema)."""
        if self.table is not None:
            return f"{self.catalog}.{self.db_schema or ''}.{self.table}"
        return self.catalog if self.db_schema is None else f"{self.catalog}.{self.db_schema}"

    def shown(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"id": self.id, "role": self.role, "privilege": self.privilege, "target": self.target,
                "columns": list(self.columns) if self.columns is not None else None,
                "created_by": self.created_by, "created_at": self.created_at, "origin": self.origin}


def parse_target(text: str) -> tuple[str, str | None, str | None]:
    """``catalog``, ``catalog.schema``, ``catalog.schema.table`` or ``catalog..table`` -> its parts.

    Raises:
        ConfigError: AU-012 for anything else.

    """
    parts = text.split(".")
    if not 1 <= len(parts) <= 3 or not parts[0] or (len(parts) == 3 and not parts[2]) or (
            len(parts) == 2 and not parts[1]):
        raise rule_error("AU-006", f"grant target {text!r}: catalog, catalog.schema, catalog.schema.table or "
                                   "catalog..table", field="target")
    catalog = parts[0]
    schema = parts[1] or None if len(parts) >= 2 else None
    table = parts[2] if len(parts) == 3 else None
    return catalog, schema, table


def add_grant(
    store: CatalogStore,
    role: str,
    catalog: str,
    db_schema: str | None = None,
    table: str | None = None,
    *,
    columns: Iterable[str] | None = None,
    privilege: str = "select",
    origin: str = "cli",
    actor: str | None = None,
) -> GrantInfo:
    """Give ``role`` a privilege on a catalog, schema, table or columns; return the grant.

    Raises:
        ConfigError: AU-005 (no such role), AU-012 (columns without a table, unknown privilege).

    """
    if privilege not in PRIVILEGES:
        raise rule_error("AU-006", f"unknown privilege {privilege!r}: one of {', '.join(PRIVILEGES)}",
                         field="privilege")
    cols = None if columns is None else tuple(dict.fromkeys(c for c in columns if c))
    if cols is not None and (table is None or not cols):
        raise rule_error("AU-006", "column grants name a table and at least one column", field="columns")
    with store.session() as session:
        _role(session, role)
        record = GrantRecord(role_name=role, privilege=privilege, catalog=catalog, db_schema=db_schema,
                             table_name=table, columns=list(cols) if cols is not None else None, created_by=actor,
                             origin=origin)
        session.add(record)
        session.flush()
        info = _info(record)
        audit(session, "grant_added", actor, info.target, detail={"role": role, "columns": info.columns})
        return info


def list_grants(store: CatalogStore, role: str | None = None) -> list[GrantInfo]:
    """Every grant (or one role's), by role and target."""
    query = select(GrantRecord).order_by(GrantRecord.role_name, GrantRecord.catalog, GrantRecord.db_schema,
                                         GrantRecord.table_name)
    if role:
        query = query.where(GrantRecord.role_name == role)
    with store.session() as session:
        return [_info(r) for r in session.scalars(query)]


def revoke_grant(store: CatalogStore, grant_id: str, *, actor: str | None = None) -> GrantInfo:
    """Delete a grant.

    Raises:
        NotFoundError: no such grant.

    """
    with store.session() as session:
        record = session.get(GrantRecord, grant_id)
        if record is None:
            raise NotFoundError(f"no grant with id {grant_id!r}")
        info = _info(record)
        session.delete(record)
        audit(session, "grant_revoked", actor, info.target, detail={"role": info.role, "columns": info.columns})
        return info


def _info(record: GrantRecord) -> GrantInfo:
    return GrantInfo(record.id, record.role_name, record.privilege, record.catalog, record.db_schema,
                     record.table_name, tuple(record.columns) if record.columns is not None else None,
                     record.created_by, record.created_at, record.origin or "cli")
