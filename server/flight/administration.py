"""Administration actions on the wire: ``DoAction`` types starting ``nexus.`` go to the installed administration.

The actions themselves (users, roles, grants, keys, tokens; JSON bodies; admins only, but for a user's own
tokens) are ``server.security``'s (``server/security/administration.py``); the Flight server knows them through
this protocol. With none installed (authentication off, so there is no admin) every such action is
PERMISSION_DENIED.
"""

from __future__ import annotations

from typing import Protocol

from nexus_flight.core.errors import ForbiddenError
from nexus_flight.server.query.principal import Principal

#: The prefix of every administration action type.
PREFIX = "nexus."


class Administration(Protocol):
    """The administration actions as the Flight server sees them."""

    def actions_for(self, principal: Principal) -> dict[str, str]:
        """Action type -> its description, for the actions ``principal`` may call (an admin: all)."""

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
    """The administration actions ``principal`` is shown by ListActions: exactly those it may call."""
    if administration is None or not principal.authenticated:
        return []
    return sorted(administration.actions_for(principal).items())
