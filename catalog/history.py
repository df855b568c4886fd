"""Query history: one row per finished, failed or refused query, its search, and its retention.

Parameters are stored redacted (their shape only) unless the operator opts in; error texts pass through the
secret
scrubber, so an engine echoing a credential back does not put it in the catalog.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from nexus_flight.catalog.listing import newest_rows
from nexus_flight.catalog.models import DataSource, QueryHistory, new_id, utcnow
from nexus_flight.catalog.record_journal import not_yet_stored
from nexus_flight.catalog.redaction import SCRUBBER, redact_parameters
from nexus_flight.catalog.retention import purge_older
from nexus_flight.catalog.storable import storable_row
from nexus_flight.catalog.store import CatalogStore

STATUSES = ("success", "error", "timeout", "cancelled", "rejected")
PHASES = ("validate", "connect", "execute", "first_batch", "stream")


@dataclass
class QueryRecord:
    """What the query service knows about one query when it ends."""

    sql: str
    status: str
    #: The query id (a UUID); a new one when not given.
    id: str | None = None
    source: str | None = None
    user: str | None = None
    #: Bound parameter rows, or only how many rows there were.
    parameters: Sequence[Sequence[Any]] | int | None = None
    error: str | None = None
    rows: int | None = None
    bytes: int | None = None
    total_ms: float | None = None
    #: Milliseconds per phase: validate, connect, execute, first_batch, stream.
    phases_ms: Mapping[str, float] = field(default_factory=dict)
    correlation_id: str | None = None
    retry_count: int = 0
    table_version: str | None = None
    #: How the caller signed in, and from where (None with authentication off).
    auth_method: str | None = None
    client_address: str | None = None
    #: Whether a row filter or column mask rewrote the query (None: not known).
    policy_rewritten: bool | None = None
    #: SHA-256 of the ticket the query ran from (None: not run from a ticket, or refused before it ran).
    ticket_sha256: str | None = None
    created_at: datetime | None = None


class QueryRecorder:
    """Persists query records to the catalog; the callable the server's finished-query hook receives."""

    def __init__(self, store: CatalogStore, *, record_parameters: bool = False) -> None:
        self.store = store
        self.record_parameters = record_parameters

    def __call__(self, record: QueryRecord) -> str:
        """Store one record and return its id.

        Raises:
            ValueError: an unknown status or phase (a programming error in the caller).

        """
        return self.write_many([record])[0]

    def write_many(self, records: list[QueryRecord]) -> list[str]:
        """Store several records in one transaction (the history writer batches what piled up) and return ids.

        Raises:
            ValueError: an unknown status or phase (a programming error in the caller).

        """
        rows = self.rows_of(records)
        self.write_rows(rows)
        return [row["id"] for row in rows]

    def rows_of(self, records: list[QueryRecord]) -> list[dict[str, Any]]:
        """The catalog rows of ``records``, without their source's id (``write_rows`` looks it up).

        Raises:
            ValueError: an unknown status or phase (a programming error in the caller).

        """
        for record in records:
            _check(record)
        return [self._values(record) for record in records]

    def write_rows(self, rows: list[dict[str, Any]], *, skip_stored: bool = False) -> None:
        """Store rows of ``rows_of`` in one transaction; ``skip_stored``: leave out ids stored already (a journal's)."""
        with self.store.session() as session:
            if skip_stored:
                rows = not_yet_stored(session, QueryHistory.id, rows)
            source_ids = {name: self._source_id(session, name) for name in {row["source_name"] for row in rows}}
            if rows:
                # One Core executemany on the table: neither the unit of work's per-object bookkeeping nor the
                # ORM's bulk path (both ran on every query batch).
                session.execute(insert(QueryHistory.__table__),
                                [{**row, "source_id": source_ids[row["source_name"]]} for row in rows])

    def _values(self, record: QueryRecord) -> dict[str, Any]:
        phases = {f"{p}_ms": record.phases_ms.get(p) for p in PHASES}
        return storable_row(QueryHistory.__table__, dict(
            id=record.id or new_id(),
            source_name=record.source,
            user_name=record.user,
            sql_text=SCRUBBER.scrub(record.sql),
            sql_sha256=hashlib.sha256(record.sql.encode("utf-8", "surrogatepass")).hexdigest(),
            parameters=_parameters(record.parameters, self.record_parameters),
            status=record.status,
            error_message=SCRUBBER.scrub(record.error),
            rows=record.rows,
            bytes=record.bytes,
            total_ms=record.total_ms,
            correlation_id=record.correlation_id,
            retry_count=record.retry_count,
            table_version=record.table_version,
            auth_method=record.auth_method,
            client_address=record.client_address,
            policy_rewritten=record.policy_rewritten,
            ticket_sha256=record.ticket_sha256,
            created_at=record.created_at or utcnow(),
            **phases,
        ))

    def _source_id(self, session, name: str | None) -> str | None:
        if not name:
            return None
        return session.scalars(select(DataSource.id).where(DataSource.name == name)).first()


def _check(record: QueryRecord) -> None:
    if record.status not in STATUSES:
        raise ValueError(f"unknown query status {record.status!r}; statuses: {', '.join(STATUSES)}")
    unknown = set(record.phases_ms) - set(PHASES)
    if unknown:
        raise ValueError(f"unknown query phases {sorted(unknown)}; phases: {', '.join(PHASES)}")


def _parameters(parameters, keep: bool) -> Any:
    if parameters is None:
        return None
    if isinstance(parameters, int):
        return {"rows": parameters, "values": "not recorded"}
    if not keep:
        return redact_parameters(parameters)
    return [
        [SCRUBBER.scrub(v) if isinstance(v, str) else v if _jsonable(v) else repr(v) for v in row]
        for row in parameters
    ]


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def record_query(store: CatalogStore, record: QueryRecord, *, record_parameters: bool = False) -> str:
    """Store one query record (see :class:`QueryRecorder`) and return its id."""
    return QueryRecorder(store, record_parameters=record_parameters)(record)


def search_history(
    store: CatalogStore,
    *,
    source: str | None = None,
    user: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    limit: int | None = 100,
) -> list[dict[str, Any]]:
    """History rows, newest first, filtered by source, user, status and time."""
    return newest_rows(
        store, QueryHistory,
        equal={QueryHistory.source_name: source, QueryHistory.user_name: user, QueryHistory.status: status},
        since=since, limit=limit, to_row=history_row,
    )


def history_row(row: QueryHistory) -> dict[str, Any]:
    """One history row as a plain dict (column name -> value)."""
    return {column.key: getattr(row, column.key) for column in QueryHistory.__table__.columns}


def purge_history(store: CatalogStore, older_than_days: float, *, now: datetime | None = None) -> int:
    """Delete history older than ``older_than_days`` and return how many rows went (the retention policy)."""
    return purge_older(store, QueryHistory, older_than_days, now)
