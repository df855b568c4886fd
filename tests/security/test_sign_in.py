"""Signing in with a user and password, and the gateway's own tokens, through real clients.

pyarrow.flight (``authenticate_basic_token``, then Bearer), ADBC (username/password, and a bearer header) and
flightsql-dbapi against a gateway that requires authentication: wrong, unknown, missing, expired, forged,
``alg=none``, wrong-audience, revoked tokens; restarts and replicas sharing one catalog; token refresh.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import jwt
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.catalog.audit import search_audit
from nexus_flight.catalog.tokens import revoke_token, rotate_signing_key, signing_keys
from nexus_flight.catalog.users import revoke_user_tokens, update_user
from nexus_flight.core.settings import AuthSettings, LockoutSettings
from tests.security.conftest import ALICE_PASSWORD, BOB_PASSWORD, bearer, sign_in
from tests.support import flightsql_raw as raw

COUNT_NATIONS = "SELECT count(*) AS n FROM nation"


def count(client: flight.FlightClient, options) -> int:
    _, table = raw.info_and_table(client, pb.CommandStatementQuery(query=COUNT_NATIONS), options)
    return table.column(0)[0].as_py()


def refused(call) -> str:
    """The text of the UNAUTHENTICATED error a call fails with."""
    with pytest.raises((flight.FlightUnauthenticatedError, OSError)) as info:
        call()
    # pyarrow's client raises GetSchema's failures as a plain OSError, with the status in the detail.
    assert isinstance(info.value, flight.FlightUnauthenticatedError) or "Detail: Unauthenticated" in str(info.value)
    return str(info.value).split(". Detail:")[0]


def test_password_sign_in_then_bearer_on_every_call(secure_gateway):
    secured = secure_gateway()
    client = secured.client()
    token = sign_in(client, "alice", ALICE_PASSWORD)
    assert count(client, bearer(token)) == 25
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "alice" and claims["roles"] == ["admin"] and claims["amr"] == "password"
    assert claims["iss"] == claims["aud"] == "nexus-flight" and claims["exp"] - claims["iat"] == pytest.approx(3600, 1)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_unknown_user_and_wrong_password_read_alike_and_take_about_as_long(secure_gateway):
    # No failure delay: its 0.2 s, the same for both, would hide whether an argon2 check ran for the unknown user.
    lockout = LockoutSettings(user_throttle_after=100, user_lockout_after=200)
    client = secure_gateway(auth=AuthSettings(enabled=True, lockout=lockout, failure_delay_seconds=0)).client()

    def attempt(user, password):
        started = time.perf_counter()
        message = refused(lambda: client.authenticate_basic_token(user, password))
        return message, time.perf_counter() - started

    wrong, unknown = [], []
    for _ in range(15):  # interleaved, so a busy machine slows both alike
        wrong.append(attempt("alice", "not-the-password-1"))
        unknown.append(attempt("mallory", "not-the-password-1"))
    assert {m for m, _ in wrong} == {m for m, _ in unknown} == {"invalid user name or password"}
    # The fastest of each: what the check costs, as a busy machine only ever adds to it.
    wrong_ms, unknown_ms = (min(t for _, t in runs) * 1000 for runs in (wrong, unknown))
    assert 0.5 < unknown_ms / wrong_ms < 2.0, (wrong_ms, unknown_ms)
    assert wrong_ms > 5  # an argon2 check really ran for both


@pytest.mark.parametrize("rpc", ["get_flight_info", "do_get", "get_schema", "list_actions", "do_action", "do_put"])
def test_every_call_without_credentials_is_unauthenticated(secure_gateway, rpc):
    secured = secure_gateway()
    client = secured.client()
    query = raw.descriptor(pb.CommandStatementQuery(query=COUNT_NATIONS))
    token = sign_in(client, "alice", ALICE_PASSWORD)
    ticket = client.get_flight_info(query, bearer(token)).endpoints[0].ticket
    calls = {
        "get_flight_info": lambda: client.get_flight_info(query),
        "do_get": lambda: client.do_get(ticket).read_all(),
        "get_schema": lambda: client.get_schema(query),
        "list_actions": lambda: client.list_actions(),
        "do_action": lambda: list(client.do_action(flight.Action("GetSessionOptions", b""))),
        "do_put": lambda: client.do_put(query, pa.schema([]))[0].close(),
    }
    message = refused(calls[rpc])
    assert message.startswith("authentication required")


def test_adbc_username_password_and_bearer_header(secure_gateway):
    import adbc_driver_flightsql.dbapi as flightsql
    from adbc_driver_manager import ProgrammingError

    secured = secure_gateway()
    with flightsql.connect(secured.location, db_kwargs={"username": "alice", "password": ALICE_PASSWORD},
                           autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(COUNT_NATIONS)
        assert cur.fetchone() == (25,)
    token = sign_in(secured.client(), "alice", ALICE_PASSWORD)
    header = {"adbc.flight.sql.authorization_header": f"Bearer {token}"}
    with flightsql.connect(secured.location, db_kwargs=header, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(COUNT_NATIONS)
        assert cur.fetchone() == (25,)
    with pytest.raises(ProgrammingError, match="UNAUTHENTICATED.*invalid user name or password"):
        flightsql.connect(secured.location, db_kwargs={"username": "alice", "password": "wrong-password-1"},
                          autocommit=True)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with flightsql.connect(secured.location, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {forged}"},
                           autocommit=True) as conn, conn.cursor() as cur, \
            pytest.raises(ProgrammingError, match="UNAUTHENTICATED"):
        cur.execute(COUNT_NATIONS)


def test_flightsql_dbapi_with_user_and_password(secure_gateway):
    from flightsql import FlightSQLClient

    secured = secure_gateway()
    client = FlightSQLClient(host="127.0.0.1", port=secured.gateway.port, user="alice", password=ALICE_PASSWORD,
                             insecure=True)
    info = client.execute(COUNT_NATIONS)
    assert client.do_get(info.endpoints[0].ticket).read_all().column(0)[0].as_py() == 25
    with pytest.raises(flight.FlightUnauthenticatedError):
        FlightSQLClient(host="127.0.0.1", port=secured.gateway.port, user="alice", password="wrong-password-1",
                        insecure=True).execute(COUNT_NATIONS)


def _token(store, *, key=None, **overrides) -> str:
    """A token shaped like the gateway's, signed with its real key unless ``key`` says otherwise."""
    now = time.time()
    claims = {"iss": "nexus-flight", "aud": "nexus-flight", "sub": "alice", "iat": now, "nbf": int(now),
              "exp": int(now) + 600, "jti": "t1", "sid": "s1", "roles": ["admin"], "amr": "password", "ttl": 600}
    claims.update({k: v for k, v in overrides.items() if v is not None})
    for name in [k for k, v in overrides.items() if v is None]:
        claims.pop(name)
    signing = signing_keys(store)[0]
    return jwt.encode(claims, key if key is not None else signing.secret, algorithm="HS256",
                      headers={"kid": signing.kid})


@pytest.mark.parametrize("case", ["expired", "not_yet_valid", "forged_key", "wrong_audience", "wrong_issuer",
                                  "no_expiry", "alg_none", "tampered_roles", "garbage"])
def test_bad_gateway_tokens_are_unauthenticated(secure_gateway, store, case):
    secured = secure_gateway()
    client = secured.client()
    now = int(time.time())
    tokens = {
        "expired": lambda: _token(store, iat=now - 700, nbf=now - 700, exp=now - 60),
        "not_yet_valid": lambda: _token(store, nbf=now + 300),
        "forged_key": lambda: _token(store, key=b"0" * 32),
        "wrong_audience": lambda: _token(store, aud="another-service"),
        "wrong_issuer": lambda: _token(store, iss="someone-else"),
        "no_expiry": lambda: _token(store, exp=None),
        "alg_none": lambda: jwt.encode({"iss": "nexus-flight", "aud": "nexus-flight", "sub": "alice",
                                        "exp": now + 600, "iat": now, "nbf": now, "jti": "x", "sid": "y"},
                                       None, algorithm="none"),
        "tampered_roles": lambda: _tamper(_token(store, roles=["analyst"]), roles=["admin"]),
        "garbage": lambda: "not-a-token-at-all",
    }
    assert count(client, bearer(_token(store))) == 25  # the well-formed one works
    message = refused(lambda: count(client, bearer(tokens[case]())))
    assert message == ("the token has expired: sign in again" if case == "expired"
                       else "invalid or revoked credentials: sign in again")
    secured.security.audit.flush()
    assert [e["auth_method"] for e in search_audit(store, kind="auth_failure")] == ["token"]


def _tamper(token: str, **claims) -> str:
    import base64
    import json

    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(claims)
    encoded = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


def test_revoking_one_token_and_all_of_a_users_tokens(secure_gateway, store):
    secured = secure_gateway()
    client = secured.client()
    first, second = sign_in(client, "alice", ALICE_PASSWORD), sign_in(client, "alice", ALICE_PASSWORD)
    claims = jwt.decode(first, options={"verify_signature": False})
    revoke_token(store, claims["sid"], "alice", datetime.fromtimestamp(claims["exp"], UTC))
    secured.security.authenticator.identities.refresh()
    refused(lambda: count(client, bearer(first)))
    assert count(client, bearer(second)) == 25
    revoke_user_tokens(store, "alice")
    secured.security.authenticator.identities.refresh()
    refused(lambda: count(client, bearer(second)))
    assert count(client, bearer(sign_in(client, "alice", ALICE_PASSWORD))) == 25  # a new sign-in works at once
    kinds = {e["kind"] for e in search_audit(store)}
    assert {"token_revoked", "tokens_revoked"} <= kinds


def test_disabled_user_is_refused_with_a_valid_token_and_password(secure_gateway, store):
    secured = secure_gateway()
    client = secured.client()
    token = sign_in(client, "bob", BOB_PASSWORD)
    update_user(store, "bob", disabled=True)
    secured.security.authenticator.identities.refresh()
    refused(lambda: count(client, bearer(token)))
    assert refused(lambda: sign_in(client, "bob", BOB_PASSWORD)) == "invalid user name or password"


def test_tokens_survive_a_restart_and_work_on_every_replica(secure_gateway, store):
    first = secure_gateway()
    token = sign_in(first.client(), "alice", ALICE_PASSWORD)
    first.gateway.shutdown()
    first.security.close()
    restarted = secure_gateway()
    replica = secure_gateway()
    assert count(restarted.client(), bearer(token)) == 25
    assert count(replica.client(), bearer(token)) == 25
    # A revocation made through one replica reaches the other within refresh_seconds.
    claims = jwt.decode(token, options={"verify_signature": False})
    revoke_token(store, claims["sid"], "alice", datetime.fromtimestamp(claims["exp"], UTC))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            count(replica.client(), bearer(token))
        except flight.FlightUnauthenticatedError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the revocation never reached the replica")


def test_rotated_signing_key_keeps_old_tokens_valid(secure_gateway, store):
    secured = secure_gateway()
    client = secured.client()
    old = sign_in(client, "alice", ALICE_PASSWORD)
    new_kid = rotate_signing_key(store)
    replica = secure_gateway()
    fresh = sign_in(replica.client(), "alice", ALICE_PASSWORD)
    assert jwt.get_unverified_header(fresh)["kid"] == new_kid != jwt.get_unverified_header(old)["kid"]
    assert count(client, bearer(fresh)) == 25  # the first gateway learns the new kid on first sight
    assert count(replica.client(), bearer(old)) == 25


def test_a_token_past_half_its_life_is_answered_with_a_fresh_one(secure_gateway, store):
    secured = secure_gateway()
    client = secured.client()
    now = time.time()
    aging = _token(store, iat=now - 400, nbf=int(now) - 400, exp=int(now) + 200, ttl=600)
    seen = []

    class Capture(flight.ClientMiddlewareFactory):
        def start_call(self, info):
            return Recorder()

    class Recorder(flight.ClientMiddleware):
        def received_headers(self, headers):
            seen.extend(v for k, vs in headers.items() if k == "authorization" for v in vs)

    capturing = flight.FlightClient(secured.location, middleware=[Capture()])
    assert count(capturing, bearer(aging)) == 25
    fresh = seen[0].removeprefix("Bearer ")
    claims = jwt.decode(fresh, options={"verify_signature": False})
    assert claims["sid"] == "s1" and claims["exp"] > now + 590 and claims["jti"] != "t1"
    assert count(client, bearer(fresh)) == 25


def test_repeated_failures_slow_down_then_lock_out_and_are_audited(secure_gateway, store):
    lockout = LockoutSettings(user_throttle_after=2, user_lockout_after=4, max_delay_seconds=0.25,
                              lockout_seconds=60)
    secured = secure_gateway(auth=AuthSettings(enabled=True, lockout=lockout))
    client = secured.client()
    messages = []
    for _ in range(6):
        messages.append(refused(lambda: client.authenticate_basic_token("bob", "guess-guess-guess")))
        time.sleep(0.35)  # past each throttling delay: every guess is checked until the lockout
    assert messages[:4] == ["invalid user name or password"] * 4
    assert all(m.startswith("too many failed sign-ins: this user is locked out") for m in messages[4:])
    # Locked out, even the right password is refused without being checked; other users are not affected.
    assert refused(lambda: sign_in(client, "bob", BOB_PASSWORD)).startswith("too many failed sign-ins")
    assert count(client, bearer(sign_in(client, "alice", ALICE_PASSWORD))) == 25
    secured.security.audit.flush()
    lockouts = search_audit(store, kind="lockout")
    assert [(e["actor"], e["subject"]) for e in lockouts] == [("bob", "user:bob")]
    failures = search_audit(store, kind="auth_failure", actor="bob")
    assert len(failures) >= 7 and all(e["auth_method"] == "password" for e in failures)


def test_a_burst_of_guesses_sent_at_once_is_held_to_the_lockout(secure_gateway):
    """Guesses sent at the same moment all used to pass the guard before the first failure was counted (a password
    check waits its turn), so a burst got every guess checked. At most ``user_lockout_after`` are checked now."""
    import threading

    lockout = LockoutSettings(user_throttle_after=2, user_lockout_after=4, lockout_seconds=60)
    secured = secure_gateway(auth=AuthSettings(enabled=True, lockout=lockout, failure_delay_seconds=0))
    clients = [secured.client() for _ in range(24)]
    start, answers = threading.Barrier(len(clients)), []

    def guess(client) -> None:
        start.wait()
        try:
            client.authenticate_basic_token("bob", "guess-guess-guess")
        except flight.FlightError as exc:
            answers.append((type(exc).__name__, str(exc).split(". Detail:")[0]))

    threads = [threading.Thread(target=guess, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == len(clients)
    checked = [a for a in answers if a[1].endswith("invalid user name or password")]
    assert 1 <= len(checked) <= 4, answers
    others = [a for a in answers if a not in checked]
    assert all(kind == "FlightUnauthenticatedError" and "too many failed sign-ins" in text
               for kind, text in others), others  # they waited for the guesses before them, then met the throttle
    if len(checked) == 4:  # the burst reached the lockout: even the right password waits it out
        assert refused(lambda: sign_in(secured.client(), "bob", BOB_PASSWORD)).startswith("too many failed")


def test_a_burst_of_right_passwords_sent_at_once_all_sign_in(secure_gateway):
    """A pool opening many connections at once with one user: each waits its turn, none is refused."""
    import threading

    lockout = LockoutSettings(user_throttle_after=2, user_lockout_after=4)
    secured = secure_gateway(auth=AuthSettings(enabled=True, lockout=lockout))
    clients = [secured.client() for _ in range(12)]
    start, tokens = threading.Barrier(len(clients)), []

    def connect(client) -> None:
        start.wait()
        tokens.append(sign_in(client, "alice", ALICE_PASSWORD))

    threads = [threading.Thread(target=connect, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(set(tokens)) == len(clients)


def test_no_credentials_on_handshake_is_unauthenticated(secure_gateway):
    client = secure_gateway().client()

    class Nothing(flight.ClientAuthHandler):
        def authenticate(self, outgoing, incoming):
            pass

        def get_token(self):
            return b""

    assert refused(lambda: client.authenticate(Nothing())).startswith("authentication required")


def test_with_authentication_on_any_address_may_be_served(secure_gateway):
    secured = secure_gateway(host="0.0.0.0")
    client = flight.FlightClient(f"grpc://127.0.0.1:{secured.gateway.port}")
    assert count(client, bearer(sign_in(client, "alice", ALICE_PASSWORD))) == 25
