"""Wiring authentication (and the audit trail it writes to) onto a catalog, for ``serve`` and embedders."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nexus_flight.catalog.audit import AuditLog
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.users import list_users
from nexus_flight.server.security.access_control import GrantAccess
from nexus_flight.server.security.administration import CatalogAdministration
from nexus_flight.server.security.authenticator import CatalogAuthenticator
from nexus_flight.server.security.token_actions import TokenActions

log = logging.getLogger("nexus_flight")


@dataclass
class Security:
    """The running security pieces: who may call, what each may read, and the audit log they write."""

    authenticator: CatalogAuthenticator
    audit: AuditLog
    access: GrantAccess
    administration: CatalogAdministration

    def close(self) -> None:
        """Stop refreshing identities and write the pending audit events."""
        self.authenticator.close()
        self.audit.close()


def start_security(store: CatalogStore, settings, default_limits: Mapping[str, Any] | None = None) -> Security:
    """Start authentication on ``store`` with ``[server.auth]`` settings (``AuthSettings``).

    Raises:
        ConfigError: CV-001 when there is no master key to seal the token signing key with.

    """
    audit = AuditLog(store)
    authenticator = CatalogAuthenticator(store, settings, default_limits=default_limits, audit=audit).start()
    if settings.enabled and not list_users(store):
        log.warning("authentication is on and the catalog has no users: add one with "
                    "`nexus-flight users add NAME --role admin`")
    administration = CatalogAdministration(store, authenticator.identities.refresh, TokenActions(authenticator))
    return Security(authenticator, audit, GrantAccess(authenticator.identities), administration)
