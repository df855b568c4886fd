"""The audit trail: sign-in failures, lockouts, and every change to users, roles, grants, keys, tokens and policies.

Changes made by an administrator are written in the transaction that makes them (:func:`audit`), so a change and
its event commit together. Sign-in failures can come in floods; they go through :class:`AuditLog`, which writes
them off the request's path in batches (dropping, with a warning, what a full queue cannot hold). No event ever
holds a password, a token or a key's secret: ``detail`` texts pass through the secret scrubber as well.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from nexus_flight.catalog.history_writer import HistoryWriter, WriterCounts
from nexus_flight.catalog.listing import newest_rows
from nexus_flight.catalog.models import AuditEvent, new_id, utcnow
from nexus_flight.catalog.record_journal import journal_of, not_yet_stored
from nexus_flight.catalog.redaction import SCRUBBER
from nexus_flight.catalog.retention import purge_older
from nexus_flight.catalog.security_generation import bump_generation
from nexus_flight.catalog.storable import storable_text
from nexus_flight.catalog.store import CatalogStore

log = logging.getLogger(__name__)

#: Every kind of event, so readers can filter on a known set.
KINDS = (
    "auth_failure",
    "lockout",
    "user_added",
    "user_changed",
    "user_removed",
    "password_changed",
    "role_added",
    "role_removed",
    "role_granted",
    "role_revoked",
    "grant_added",
    "grant_revoked",
    "key_created",
    "key_revoked",
    "token_issued",
    "token_revoked",
    "tokens_revoked",
    "signing_key_rotated",
    "policy_added",
    "policy_removed",
    "access_denied",
)


@dataclass
class AuditRecord:
    """One event as it is queued; ``id`` and ``created_at`` are set when it is made."""

    kind: str
    actor: str | None = None
    subject: str | None = None
    auth_method: str | None = None
    client_address: str | None = None
    detail: Mapping[str, Any] | str | None = None
    id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)

    def row(self) -> AuditEvent:
        """The catalog row of this event, its detail scrubbed of any secret the process knows."""
        if self.kind not in KINDS:
            raise ValueError(f"unknown audit event kind {self.kind!r}")
        detail = self.detail
        if isinstance(detail, Mapping):
            detail = json.dumps(dict(detail), sort_keys=True, default=str)
        return AuditEvent(
            id=self.id,
            created_at=self.created_at,
            kind=self.kind,
            actor=storable_text(self.actor, 255),
            subject=storable_text(self.subject, 512),
            auth_method=storable_text(self.auth_method, 16),
            client_address=storable_text(self.client_address, 128),
            detail=storable_text(SCRUBBER.scrub(detail)),
        )


def audit(session: Session, kind: str, actor: str | None, subject: str | None = None, **extra: Any) -> None:
    """Add one event to the catalog in the caller's transaction, and move the security generation with it.

    Every change to users, roles, grants, keys, tokens and policies is audited here, so the generation moves
    exactly when replicas' identity snapshots fall behind.
    """
    session.add(AuditRecord(kind, actor, subject, **extra).row())
    bump_generation(session)


class AuditLog:
    """Writes events off the caller's path (a worker thread, batches, a bounded queue)."""

    def __init__(self, store: CatalogStore, *, background: bool = True, max_pending: int = 10_000) -> None:
        self.store = store
        self._writer = (HistoryWriter(self, max_pending=max_pending, journal=journal_of(store, "audit"))
                        if background else None)

    def __call__(self, record: AuditRecord) -> None:
        """Record one event (queued when in the background)."""
        if self._writer is not None:
            self._writer(record)
        else:
            self.write_many([record])

    def write_many(self, records: list[AuditRecord]) -> list[str]:
        """Store several events in one transaction."""
        with self.store.session() as session:
            session.add_all([r.row() for r in records])
        return [r.id for r in records]

    @staticmethod
    def rows_of(records: list[AuditRecord]) -> list[dict[str, Any]]:
        """The catalog rows of ``records``, as ``write_rows`` takes them (a journal keeps them)."""
        columns = AuditEvent.__table__.columns.keys()
        return [{name: getattr(event, name) for name in columns} for event in (r.row() for r in records)]

    def write_rows(self, rows: list[dict[str, Any]], *, skip_stored: bool = False) -> None:
        """Store rows of ``rows_of`` in one transaction; ``skip_stored``: leave out ids stored already."""
        with self.store.session() as session:
            if skip_stored:
                rows = not_yet_stored(session, AuditEvent.id, rows)
            if rows:
                session.execute(insert(AuditEvent.__table__), rows)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event is stored."""
        return self._writer.flush(timeout) if self._writer else True

    def counts(self) -> WriterCounts:
        """Events written, dropped and pending (none counted when written in the caller's thread)."""
        return self._writer.counts() if self._writer else WriterCounts()

    def close(self) -> None:
        """Store what is queued and stop the worker."""
        if self._writer is not None:
            self._writer.close()


def search_audit(
    store: CatalogStore,
    *,
    kind: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int | None = 100,
) -> list[dict[str, Any]]:
    """Audit events, newest first, filtered by kind, actor and time."""
    columns = [c.key for c in AuditEvent.__table__.columns]
    return newest_rows(
        store, AuditEvent, equal={AuditEvent.kind: kind, AuditEvent.actor: actor}, since=since, limit=limit,
        to_row=lambda row: {key: getattr(row, key) for key in columns},
    )


def purge_audit(store: CatalogStore, older_than_days: float, *, now: datetime | None = None) -> int:
    """Delete audit events older than ``older_than_days`` and return how many went (``audit_retention_days``)."""
    return purge_older(store, AuditEvent, older_than_days, now)
