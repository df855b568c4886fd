"""What lets replicas sharing one catalog serve each other's clients: signing keys, sessions, cancels, limits."""

from __future__ import annotations

import logging
from functools import partial

from nexus_flight.catalog.cancel_requests import CatalogCancels
from nexus_flight.catalog.key_handover import HANDLE_KEYS
from nexus_flight.catalog.limit_rows import CatalogLimitRows, limits_engine
from nexus_flight.catalog.sessions import CatalogSessions
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.core.errors import ConfigError
from nexus_flight.server.flight.signed_handles import HandleSigner
from nexus_flight.server.query.service import QueryService
from nexus_flight.server.query.session import SessionStore
from nexus_flight.server.query.shared_limit_counts import SharedCounts

log = logging.getLogger("nexus_flight")


def handle_signer(store: CatalogStore) -> HandleSigner:
    """A signer with the catalog's handle keys; without a master key to seal them, a key of this process only."""
    try:
        return HandleSigner(partial(HANDLE_KEYS.keys, store))
    except ConfigError as exc:
        log.warning("tickets and prepared statements are redeemable only on this gateway (%s): replicas sharing "
                    "the catalog need the master key", exc.client_message())
        return HandleSigner()


def shared_sessions(store: CatalogStore) -> SessionStore:
    """Sessions whose options live in the catalog."""
    return SessionStore(shared=CatalogSessions(store))


def share_cancels(service: QueryService, store: CatalogStore) -> None:
    """Cancels sent to any replica sharing the catalog reach the queries ``service`` runs, and the other way."""
    service.share_cancels(CatalogCancels(store))


def share_limits(service: QueryService, store: CatalogStore, lease_seconds: float) -> SharedCounts:
    """Count principals' rate tokens and running slots in the catalog, so their limits hold across replicas.

    Returns:
        The shared counts (``close`` them after the gateway has stopped).

    """
    counts = SharedCounts(CatalogLimitRows(limits_engine(store.engine.url)), lease_seconds=lease_seconds)
    service.limiter.counter = counts
    return counts
