"""Administration actions on the wire: ``DoAction`` types starting ``nexus.`` go to the installed administration.

The actions themselves (users, roles, grants, keys; JSON bodies; admins only) are ``server.security``'s
(``server/security/administration.py``); the Flight server knows them through this protocol. With none installed
(authentication off, so there is no admin) every such action is PERMISSION_DENIED.
"""

from __future__ import annotations

from typing import Protocol

from nexus_flight.core.errors import ForbiddenError
from nexus_flight.server.query.principal import Principal

#: The prefix of every administration action type.
PREFIX = "nexus."


class Administration(Protocol):
    """The administration actions as the Flight server sees them."""

    def actions(self) -> dict[str, str]:
        """Action type -> its description (listed to admins only)."""

    def run(self, kind: str, body: bytes, principal: Principal) -> bytes:
        """Run an action for ``principal``; return its answer (refusing anyone who is no admin)."""


def run_administration(administration: Administration | None, kind: str, body: bytes, principal: Principal) -> bytes:
    """Run an administration action, or refuse it where no administration is installed.

    Raises:
        ForbiddenError: no administration is installed, or the caller is no admin.

    """
    if administration is None:
        raise ForbiddenError(f"permission denied: {kind[:80]} needs the admin role (authentication is off)")
    return administration.run(kind, body, principal)


def listed_actions(administration: Administration | None, principal: Principal) -> list[tuple[str, str]]:
    """The administration actions ``principal`` is shown by ListActions: all of them to an admin, else none."""
    if administration is None or not (principal.authenticated and principal.is_admin):
        return []
    return sorted(administration.actions().items())
