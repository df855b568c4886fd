"""Who is calling: the principal authentication establishes and every later decision (access, limits, history) reads.

A principal is a name with roles, the way it signed in, attributes row filters may use, and the limits that apply
to it. With authentication off (the loopback default) every caller is an unauthenticated principal named by the
label its client sent, and nothing is restricted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The role that may read and manage everything.
ADMIN_ROLE = "admin"
#: How a principal signed in.
AUTH_METHODS = ("none", "password", "token", "api_key", "oidc", "mtls")


@dataclass(frozen=True)
class Principal:
    """An authenticated (or, with authentication off, labelled) caller."""

    name: str
    roles: frozenset[str] = frozenset()
    #: One of :data:`AUTH_METHODS`.
    auth_method: str = "none"
    #: Values row filters read as ``{user.<name>}``.
    attributes: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: The limits that apply (``catalog/limits.py`` names), already resolved from key, user, roles and server.
    limits: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: The sign-in (token) id or API key id the call came with; never a secret.
    credential_id: str | None = None
    #: False only when authentication is off.
    authenticated: bool = False
    #: The gateway sign-in the call's token belongs to (what revoking "my current token" revokes), if any.
    sign_in_id: str | None = field(default=None, compare=False)

    @property
    def is_admin(self) -> bool:
        """Whether the principal holds the built-in admin role."""
        return ADMIN_ROLE in self.roles

    @property
    def accounting_key(self) -> str:
        """Whose budget a call is charged to: the API key's own, else the user's."""
        if self.auth_method == "api_key" and self.credential_id:
            return f"key:{self.credential_id}"
        return f"user:{self.name}"


def anonymous(label: str | None = None) -> Principal:
    """The caller when authentication is off, named by what its client sent (or ``anonymous``)."""
    return Principal(name=label or "anonymous")


@dataclass(frozen=True)
class SignIn:
    """What authenticating one call established.

    Attributes:
        principal: Who is calling.
        session: The key the caller's session lives under (a sign-in id, a cookie, a connection).
        token: A bearer token to send back (on Handshake, or a refreshed one before the old expires), else None.

    """

    principal: Principal
    session: str
    token: str | None = None
