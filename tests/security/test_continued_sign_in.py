"""A client that keeps its first token (the JDBC driver does) stays signed in while it keeps calling, and no longer.

The authenticator runs on a real catalog; tokens live 4 s here (leeway 0). The sign-in continues past its token's
expiry only while this gateway keeps refreshing it, ends after a token lifetime idle, ends when revoked, and never
outlives ``session_max_seconds``.
"""

from __future__ import annotations

import time

import pytest

from nexus_flight.catalog.models import utcnow
from nexus_flight.catalog.tokens import revoke_token
from nexus_flight.core.errors import UnauthenticatedError
from nexus_flight.core.settings import AuthSettings
from nexus_flight.server.app.security import start_security
from tests.security.conftest import ALICE_PASSWORD

TTL = 4  # whole seconds in exp: a token lives between TTL - 1 and TTL seconds
HALF = TTL / 2 + 0.2


@pytest.fixture
def authenticator(store):
    security = start_security(store, AuthSettings(enabled=True, session_max_seconds=60))
    authenticator = security.authenticator
    authenticator.ttl, authenticator.tokens.leeway_seconds = TTL, 0
    yield authenticator
    security.close()


def _first_token(authenticator) -> str:
    return authenticator.password("alice", ALICE_PASSWORD, None).token


def test_a_busy_sign_in_continues_past_its_first_tokens_expiry(authenticator):
    token = _first_token(authenticator)
    for _ in range(14):  # 7 s of calls, every 0.5 s, always with the first token
        assert authenticator.bearer(token, None).principal.name == "alice"
        time.sleep(0.5)


def test_an_idle_sign_in_ends_a_token_lifetime_after_its_last_refresh(authenticator):
    token = _first_token(authenticator)
    time.sleep(HALF)
    assert authenticator.bearer(token, None).token is not None  # past half its life: refreshed, extended
    time.sleep(TTL + 0.5)  # idle beyond the extension
    with pytest.raises(UnauthenticatedError, match="expired"):
        authenticator.bearer(token, None)


def test_a_token_never_refreshed_is_not_continued(authenticator):
    token = _first_token(authenticator)
    time.sleep(TTL + 0.5)
    with pytest.raises(UnauthenticatedError, match="expired"):
        authenticator.bearer(token, None)


def test_revoking_the_sign_in_ends_the_continued_token(authenticator, store):
    token = _first_token(authenticator)
    time.sleep(HALF)
    claims = authenticator.bearer(token, None)
    assert claims.token is not None
    time.sleep(TTL - HALF + 0.2)  # the first token has expired; the sign-in continues
    assert authenticator.bearer(token, None).principal.name == "alice"
    session_id = claims.session.removeprefix("sid:")
    revoke_token(store, session_id, "alice", utcnow().replace(year=utcnow().year + 1))
    authenticator.identities.refresh()
    with pytest.raises(UnauthenticatedError):
        authenticator.bearer(token, None)


def test_no_sign_in_outlives_the_session_maximum(authenticator):
    token = _first_token(authenticator)
    time.sleep(HALF)
    authenticator.bearer(token, None)  # refreshed: continues
    time.sleep(TTL - HALF + 0.2)
    assert authenticator.bearer(token, None).principal.name == "alice"
    authenticator.settings = authenticator.settings.model_copy(update={"session_max_seconds": 1})
    with pytest.raises(UnauthenticatedError, match="expired"):
        authenticator.bearer(token, None)
