"""A token's calls are decided once and answered from memory until anything the decision rests on changes.

The authenticator against a real SQLite catalog: the same sign-in object comes back while nothing changed, and a
new decision follows a change to the user in the catalog (as another replica or the CLI makes it), a revocation
made here, a reload of the server's default limits, and the user's removal.
"""

from __future__ import annotations

import pytest

from nexus_flight.catalog.users import remove_user, update_user
from nexus_flight.core.errors import UnauthenticatedError
from nexus_flight.core.settings import AuthSettings
from nexus_flight.server.security.authenticator import CatalogAuthenticator
from tests.security.conftest import BOB_PASSWORD


@pytest.fixture
def authenticator(store):
    auth = CatalogAuthenticator(store, AuthSettings(enabled=True, failure_delay_seconds=0))
    yield auth
    auth.close()


def test_decided_once_then_again_after_each_change(authenticator, store):
    token = authenticator.password("bob", BOB_PASSWORD, None).token
    first = authenticator.bearer(token, None)
    assert authenticator.bearer(token, None) is first  # nothing changed: the decision stands

    update_user(store, "bob", limits={"max_rows": 5})  # in the catalog, as another replica would
    limited = authenticator.bearer(token, None)
    assert limited is not first and limited.principal.limits["max_rows"] == 5
    assert authenticator.bearer(token, None) is limited

    authenticator.default_limits = {"max_bytes": 1000}  # a reload of [server.limits]
    reloaded = authenticator.bearer(token, None)
    assert reloaded is not limited and reloaded.principal.limits["max_bytes"] == 1000

    authenticator.identities.revoked_here(reloaded.principal.sign_in_id)  # `tokens revoke` through this gateway
    with pytest.raises(UnauthenticatedError):
        authenticator.bearer(token, None)


def test_a_removed_user_is_refused_on_the_next_call(authenticator, store):
    token = authenticator.password("bob", BOB_PASSWORD, None).token
    authenticator.bearer(token, None)
    remove_user(store, "bob")
    with pytest.raises(UnauthenticatedError):
        authenticator.bearer(token, None)


def test_a_handshake_is_never_answered_from_memory(authenticator):
    token = authenticator.password("bob", BOB_PASSWORD, None).token
    authenticator.bearer(token, None)
    assert authenticator.bearer(token, None, handshake=True).token == token  # JDBC's token mode gets it back
