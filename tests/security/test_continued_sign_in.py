"""A client that keeps its first token (the JDBC driver does) stays signed in while it keeps calling, and no longer.

The authenticator runs on a real catalog; tokens live 3 s here (leeway 0). The sign-in continues past its token's
expiry only while this gateway keeps refreshing it, ends after a token lifetime idle, ends when revoked, and never
outlives ``session_max_seconds``. Each wait is aimed from the expiry written in the token itself, so every call
lands well inside the window it tests whatever fraction of a second the token was issued at.
"""

from __future__ import annotations

import time

import jwt
import pytest

from nexus_flight.catalog.models import utcnow
from nexus_flight.catalog.tokens import revoke_token
from nexus_flight.core.errors import UnauthenticatedError
from nexus_flight.core.settings import AuthSettings
from nexus_flight.server.app.security import start_security
from tests.security.conftest import ALICE_PASSWORD

TTL = 3  # whole seconds in exp: a token lives between TTL - 1 and TTL seconds
#: A token is refreshed in the second half of its life: aim at the middle of that half.
REFRESH = TTL / 4
#: How far past an expiry a call is made to find it expired (or continued).
PAST = 0.5


@pytest.fixture
def authenticator(store):
    security = start_security(store, AuthSettings(enabled=True, session_max_seconds=60))
    authenticator = security.authenticator
    authenticator.ttl, authenticator.tokens.leeway_seconds = TTL, 0
    yield authenticator
    security.close()


def _first_token(authenticator) -> str:
    return authenticator.password("alice", ALICE_PASSWORD, None).token


def _expiry(token: str) -> float:
    """The ``exp`` the token carries (read without checking it: the authenticator checks it)."""
    return float(jwt.decode(token, options={"verify_signature": False})["exp"])


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def test_a_busy_sign_in_continues_past_its_first_tokens_expiry(authenticator):
    token = _first_token(authenticator)
    until = _expiry(token) + TTL  # a whole token lifetime past the first token's expiry
    while time.time() < until:  # calls every 0.5 s, always with the first token
        assert authenticator.bearer(token, None).principal.name == "alice"
        time.sleep(0.5)
    assert authenticator.bearer(token, None).principal.name == "alice"


def test_an_idle_sign_in_ends_a_token_lifetime_after_its_last_refresh(authenticator):
    token = _first_token(authenticator)
    _sleep_until(_expiry(token) - REFRESH)
    fresh = authenticator.bearer(token, None).token
    assert fresh is not None  # past half its life: refreshed, extended
    _sleep_until(_expiry(fresh) + PAST)  # idle beyond the extension
    with pytest.raises(UnauthenticatedError, match="expired"):
        authenticator.bearer(token, None)


def test_a_token_never_refreshed_is_not_continued(authenticator):
    token = _first_token(authenticator)
    _sleep_until(_expiry(token) + PAST)
    with pytest.raises(UnauthenticatedError, match="expired"):
        authenticator.bearer(token, None)


def test_revoking_the_sign_in_ends_the_continued_token(authenticator, store):
    token = _first_token(authenticator)
    _sleep_until(_expiry(token) - REFRESH)
    claims = authenticator.bearer(token, None)
    assert claims.token is not None
    _sleep_until(_expiry(token) + PAST)  # the first token has expired; the sign-in continues
    assert authenticator.bearer(token, None).principal.name == "alice"
    session_id = claims.session.removeprefix("sid:")
    revoke_token(store, session_id, "alice", utcnow().replace(year=utcnow().year + 1))
    authenticator.identities.refresh()
    with pytest.raises(UnauthenticatedError):
        authenticator.bearer(token, None)


def test_no_sign_in_outlives_the_session_maximum(authenticator):
    token = _first_token(authenticator)
    _sleep_until(_expiry(token) - REFRESH)
    assert authenticator.bearer(token, None).token is not None  # refreshed: continues
    _sleep_until(_expiry(token) + PAST)
    assert authenticator.bearer(token, None).principal.name == "alice"
    authenticator.settings = authenticator.settings.model_copy(update={"session_max_seconds": 1})
    with pytest.raises(UnauthenticatedError, match="expired"):
        authenticator.bearer(token, None)
