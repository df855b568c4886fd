"""Administration through Flight SQL ``DoAction``: users, roles, grants and keys, for admins only.

A real catalog (SQLite) and a gateway requiring sign-in; the client is pyarrow.flight. alice is an admin, bob is
not. What an admin does through the actions takes effect on the next call (a new user signs in, a grant lets a
query through, a revoke stops it) and is an audit event naming ``flight:alice``; bob gets PERMISSION_DENIED for
every action, whatever its body; a body that does not fit is INVALID_ARGUMENT; no password comes back.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.catalog.api_keys import create_key
from nexus_flight.catalog.audit import search_audit
from nexus_flight.server.security.administration import ACTIONS
from nexus_flight.server.security.token_actions import TOKEN_ACTIONS
from tests.security import test_security_cli
from tests.security.conftest import ALICE_PASSWORD, BOB_PASSWORD, bearer, sign_in
from tests.support import flightsql_raw as raw

CAROL_PASSWORD = "carol-tuna-melody-31"

cli = test_security_cli.cli


@pytest.fixture
def admin_world(secure_gateway):
    secured = secure_gateway()
    client = secured.client()
    tokens = {"alice": sign_in(client, "alice", ALICE_PASSWORD), "bob": sign_in(client, "bob", BOB_PASSWORD)}
    yield secured, client, tokens
    client.close()


def act(client, token, kind, body=None):
    raw_body = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
    results = list(client.do_action(flight.Action(kind, raw_body), bearer(token)))
    assert len(results) == 1
    return json.loads(results[0].body.to_pybytes())


def test_an_admin_manages_users_roles_grants_and_keys(admin_world, store):
    secured, client, tokens = admin_world
    alice = tokens["alice"]
    act(client, alice, "nexus.roles.add", {"name": "finance", "description": "reads nation"})
    added = act(client, alice, "nexus.users.add", {"name": "carol", "password": CAROL_PASSWORD, "roles": ["finance"]})
    assert added["name"] == "carol" and added["roles"] == ["finance"] and CAROL_PASSWORD not in json.dumps(added)
    carol = sign_in(client, "carol", CAROL_PASSWORD)
    query = pb.CommandStatementQuery(query="SELECT count(*) AS n FROM nation")
    with pytest.raises(flight.FlightUnauthorizedError, match="no SELECT privilege on table demo.main.nation"):
        raw.info_and_table(client, query, bearer(carol))
    grant = act(client, alice, "nexus.grants.add", {"role": "finance", "target": "demo.main.nation"})
    assert raw.info_and_table(client, query, bearer(carol))[1].to_pylist() == [{"n": 25}]
    listed = act(client, alice, "nexus.grants.list", {"role": "finance"})
    assert [(g["target"], g["created_by"]) for g in listed] == [("demo.main.nation", "flight:alice")]
    act(client, alice, "nexus.grants.revoke", {"id": grant["id"]})
    with pytest.raises(flight.FlightUnauthorizedError):
        raw.info_and_table(client, query, bearer(carol))

    created = act(client, alice, "nexus.keys.create", {"owner": "carol", "name": "etl", "roles": ["finance"]})
    assert created["key"] and created["key"] not in json.dumps(act(client, alice, "nexus.keys.list", {}))
    act(client, alice, "nexus.keys.revoke", {"id": created["id"]})
    act(client, alice, "nexus.users.passwd", {"name": "carol", "password": "carol-new-secret-77"})
    act(client, alice, "nexus.users.disable", {"name": "carol"})
    with pytest.raises(flight.FlightUnauthenticatedError):
        client.authenticate_basic_token("carol", "carol-new-secret-77")
    assert act(client, alice, "nexus.users.show", {"name": "carol"})["disabled"] is True
    act(client, alice, "nexus.users.remove", {"name": "carol"})
    assert "carol" not in [u["name"] for u in act(client, alice, "nexus.users.list")]

    events = search_audit(store, actor="flight:alice", limit=100)
    kinds = {e["kind"] for e in events}
    assert {"role_added", "user_added", "grant_added", "grant_revoked", "key_created", "key_revoked",
            "user_removed"} <= kinds
    assert CAROL_PASSWORD not in str(events)


#: (CLI --limit arguments, the same limits as an action's body): read alike, refused alike.
LIMITS = [
    (["max_rows=1000", "queries_per_minute=6", "max_query_seconds=30.5"],
     {"max_rows": 1000, "queries_per_minute": 6, "max_query_seconds": 30.5}),
    (["max_rows=1000"], {"max_rows": "1000"}),  # the CLI's text, as a client may send it
    (["max_rows=many"], {"max_rows": "many"}),
    (["max_rowz=5"], {"max_rowz": 5}),
    (["max_rows=0"], {"max_rows": 0}),
    (["max_rows=2.5"], {"max_rows": 2.5}),
]


def test_the_actions_take_the_limits_the_cli_takes_with_the_same_checks(admin_world, cli):
    _, client, tokens = admin_world
    for number, (arguments, body) in enumerate(LIMITS):
        flags = [flag for argument in arguments for flag in ("--limit", argument)]
        made = [
            (cli("users", "add", f"cli-user-{number}", *flags), "nexus.users.add", {"name": f"flight-user-{number}"}),
            (cli("roles", "add", f"cli-role-{number}", *flags), "nexus.roles.add", {"name": f"flight-role-{number}"}),
            (cli("keys", "create", "bob", f"cli-key-{number}", *flags), "nexus.keys.create",
             {"owner": "bob", "name": f"flight-key-{number}"}),
        ]
        for (code, shown, err), kind, named in made:
            if code == 0:
                assert act(client, tokens["alice"], kind, {**named, "limits": body})["limits"] == shown["limits"]
                continue
            message = err.strip().splitlines()[-1].removeprefix("error: ")
            assert "AU-009" in message, (kind, arguments, err)
            with pytest.raises(pa.ArrowInvalid) as refused:
                act(client, tokens["alice"], kind, {**named, "limits": body})
            assert message.split("AU-009", 1)[1] in str(refused.value), (kind, arguments, str(refused.value))


def test_a_non_admin_is_refused_every_action_whatever_its_body(admin_world):
    _, client, tokens = admin_world
    for kind in sorted(ACTIONS):
        for body in ({}, {"name": "bob", "roles": ["admin"]}, b"not json"):
            with pytest.raises(flight.FlightUnauthorizedError, match="needs the admin role"):
                act(client, tokens["bob"], kind, body)


def test_a_non_admin_cannot_grant_itself_admin_or_read_secrets(admin_world, store):
    _, client, tokens = admin_world
    for kind, body in (("nexus.roles.assign", {"role": "admin", "user": "bob"}),
                       ("nexus.grants.add", {"role": "analyst", "target": "demo"}),
                       ("nexus.keys.create", {"owner": "alice", "name": "stolen"}),
                       ("nexus.users.passwd", {"name": "alice", "password": "bob-owns-alice-1"}),
                       ("nexus.nothing.here", {})):
        with pytest.raises(flight.FlightUnauthorizedError):
            act(client, tokens["bob"], kind, body)
    actions = [a.type for a in client.list_actions(bearer(tokens["bob"]))]
    assert {a for a in actions if a.startswith("nexus.")} == {"nexus.tokens.list", "nexus.tokens.revoke"}
    assert "nexus.users.add" in [a.type for a in client.list_actions(bearer(tokens["alice"]))]
    sign_in(client, "alice", ALICE_PASSWORD)  # alice's password did not change


UNFIT = [
    ("nexus.users.add", b"{not json", "must be a JSON object"),
    ("nexus.users.add", b"[1, 2]", "must be a JSON object"),
    ("nexus.users.add", {}, "missing field 'name'"),
    ("nexus.users.add", {"name": "dave", "pasword": "x"}, "unknown field 'pasword'"),
    ("nexus.users.add", {"name": "dave", "roles": "admin"}, "field 'roles' must be a list of strings"),
    ("nexus.users.add", {"name": "dave", "password": "short"}, "password"),
    ("nexus.users.add", {"name": "dave", "roles": ["no_such_role"]}, "no_such_role"),
    ("nexus.grants.add", {"role": "analyst", "target": ""}, ""),
    ("nexus.keys.create", {"owner": "bob", "name": "k", "expires_at": "tomorrow"}, "expires_at"),
    ("nexus.grants.revoke", {"id": 7}, "field 'id' must be a string"),
]


def test_a_body_that_does_not_fit_is_invalid_argument(admin_world):
    _, client, tokens = admin_world
    for kind, body, message in UNFIT:
        with pytest.raises(pa.ArrowInvalid) as info:
            act(client, tokens["alice"], kind, body)
        text = str(info.value)
        assert message in text and "Traceback" not in text, (kind, body, text)
        assert "'short'" not in text and "dave-" not in text  # no value of the body comes back


def test_unknown_objects_are_not_found(admin_world):
    _, client, tokens = admin_world
    with pytest.raises(KeyError):
        act(client, tokens["alice"], "nexus.users.show", {"name": "nobody"})
    with pytest.raises(pa.ArrowNotImplementedError, match="unknown action"):
        act(client, tokens["alice"], "nexus.users.rename", {})


def test_without_authentication_there_is_no_admin(gateway):
    """Authentication off (the loopback default): nobody may administer, and the actions are not listed."""
    client = flight.FlightClient(gateway.location)
    with pytest.raises(flight.FlightUnauthorizedError, match="needs the admin role"):
        list(client.do_action(flight.Action("nexus.users.add", b'{"name": "mallory", "roles": ["admin"]}')))
    assert not any(a.type.startswith("nexus.") for a in client.list_actions())
    client.close()


def _probe(client, options, kind: str) -> str:
    """What calling ``kind`` answers: ``refused`` (PERMISSION_DENIED) or ``allowed`` (anything else).

    Bodies change nothing: admin actions get an unknown field (INVALID_ARGUMENT once past the admin check); the
    token actions list, revoke an id that does not exist, or issue a short service token.
    """
    bodies = {"nexus.tokens.list": {}, "nexus.tokens.revoke": {"id": "no-such-sign-in"},
              "nexus.tokens.issue": {"user": "bob", "ttl_seconds": 600}}
    body = json.dumps(bodies.get(kind, {"probe": 1})).encode()
    try:
        list(client.do_action(flight.Action(kind, body), options))
    except flight.FlightUnauthorizedError:
        return "refused"
    except (pa.ArrowInvalid, KeyError):
        pass
    return "allowed"


def test_list_actions_shows_each_caller_exactly_the_actions_it_may_call(admin_world, store):
    _, client, tokens = admin_world
    _, bob_key = create_key(store, "bob", "etl")
    _, alice_key = create_key(store, "alice", "ops")
    every = {a.type for a in client.list_actions(bearer(tokens["alice"])) if a.type.startswith("nexus.")}
    assert every == set(ACTIONS) | set(TOKEN_ACTIONS)
    seen = {}
    for caller, token in (("alice", tokens["alice"]), ("bob", tokens["bob"]), ("bob's key", bob_key),
                          ("alice's key", alice_key)):
        listed = {a.type for a in client.list_actions(bearer(token)) if a.type.startswith("nexus.")}
        allowed = {kind for kind in every if _probe(client, bearer(token), kind) == "allowed"}
        assert listed == allowed, caller
        seen[caller] = listed
    assert seen["bob"] == seen["bob's key"] == {"nexus.tokens.list", "nexus.tokens.revoke"}
    assert seen["alice"] == seen["alice's key"] == every


def test_the_token_commands_and_actions_name_a_sign_in_alike(admin_world, cli):
    _, client, tokens = admin_world
    code, issued, _ = cli("tokens", "issue", "bob", "--ttl", "600")
    answered = act(client, tokens["alice"], "nexus.tokens.issue", {"user": "bob", "ttl_seconds": 600})
    assert code == 0 and set(issued) == set(answered) and "id" in issued
    listed = {t["id"] for t in act(client, tokens["alice"], "nexus.tokens.list", {"user": "bob"})}
    assert {issued["id"], answered["id"]} <= listed
    code, revoked, _ = cli("tokens", "revoke", "--id", issued["id"])
    assert code == 0 and revoked == act(client, tokens["alice"], "nexus.tokens.revoke", {"id": issued["id"]})
