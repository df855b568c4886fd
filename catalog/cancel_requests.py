"""Cancel requests in the catalog, so that a cancel sent to one replica stops the query another replica runs.

Rows are keyed by SHA-256 of the query's ticket; rows older than ``keep`` are deleted when another is written.
Whether a ticket's query has ended is read from the query history, which records each run's ticket hash.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import delete, select, update

from nexus_flight.catalog.models import CancelRequest, QueryHistory, utcnow
from nexus_flight.catalog.store import CatalogStore


class CatalogCancels:
    """``SharedCancels`` (``server/query/remote_cancel.py``) over the catalog's ``cancel_requests``."""

    def __init__(self, store: CatalogStore, keep: timedelta = timedelta(minutes=5)) -> None:
        self._store = store
        self._keep = keep

    def request(self, key_hashes: Iterable[str]) -> None:
        """Ask every replica to stop the queries of ``key_hashes`` (and delete requests older than ``keep``)."""
        with self._store.session() as session:
            session.execute(delete(CancelRequest).where(CancelRequest.requested_at < utcnow() - self._keep))
            for key_hash in set(key_hashes):
                row = session.get(CancelRequest, key_hash)
                if row is None:
                    session.add(CancelRequest(key_hash=key_hash))
                else:
                    row.requested_at, row.cancelled_at = utcnow(), None

    def pending(self, within: timedelta) -> set[str]:
        """The queries asked to stop within the last ``within`` that no replica has stopped yet."""
        with self._store.session() as session:
            rows = session.execute(select(CancelRequest.key_hash).where(
                CancelRequest.cancelled_at.is_(None), CancelRequest.requested_at >= utcnow() - within))
            return {row[0] for row in rows}

    def answer(self, key_hash: str) -> None:
        """Say the query of ``key_hash`` was stopped."""
        with self._store.session() as session:
            session.execute(update(CancelRequest).where(CancelRequest.key_hash == key_hash)
                            .values(cancelled_at=utcnow()))

    def requested(self, key_hash: str, within: timedelta) -> bool:
        """Whether the query of ``key_hash`` was asked to stop within the last ``within`` (answered or not)."""
        with self._store.session() as session:
            row = session.get(CancelRequest, key_hash)
            return row is not None and row.requested_at >= utcnow() - within

    def requested_within(self, within: timedelta) -> set[str]:
        """The queries asked to stop within the last ``within`` (answered or not)."""
        with self._store.session() as session:
            rows = session.execute(select(CancelRequest.key_hash).where(
                CancelRequest.requested_at >= utcnow() - within))
            return {row[0] for row in rows}

    def withdraw(self, key_hashes: Iterable[str]) -> None:
        """Forget the unanswered requests of ``key_hashes`` (their queries had ended: nothing is to be stopped)."""
        with self._store.session() as session:
            session.execute(delete(CancelRequest).where(
                CancelRequest.key_hash.in_(list(key_hashes)), CancelRequest.cancelled_at.is_(None)))

    def ended(self, key_hashes: Iterable[str]) -> bool:
        """Whether a query of ``key_hashes`` ran to its end on some replica (the history recorded it)."""
        with self._store.session() as session:
            found = session.execute(select(QueryHistory.id).where(
                QueryHistory.ticket_sha256.in_(list(key_hashes))).limit(1))
            return found.first() is not None

    def cancelled(self, key_hashes: Iterable[str]) -> bool:
        """Whether a replica stopped any of the queries of ``key_hashes``."""
        with self._store.session() as session:
            found = session.execute(select(CancelRequest.key_hash).where(
                CancelRequest.key_hash.in_(list(key_hashes)), CancelRequest.cancelled_at.is_not(None)).limit(1))
            return found.first() is not None
