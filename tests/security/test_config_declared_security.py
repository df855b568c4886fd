"""Users, roles and grants declared in the TOML file: checked like the CLI's, applied at start and on SIGHUP.

The file owns what it declares (origin ``config``): removing a user, role or grant from it removes it from the
catalog; rows made with the CLI are never touched, and a declared name one of them holds is refused. The served
process is the real ``nexus-flight serve`` with a real SQLite catalog; the client is pyarrow.flight.
"""

from __future__ import annotations

import signal

import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.catalog.config_file import apply_declared_security, load_config
from nexus_flight.catalog.grants import add_grant, list_grants
from nexus_flight.catalog.policies import list_policies
from nexus_flight.catalog.runtime import start_catalog
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.users import add_role, add_user, get_user, list_roles, list_users
from nexus_flight.core.errors import ConfigError
from tests.operations.serving import serve, wait_for
from tests.security.conftest import bearer
from tests.support import flightsql_raw as raw

CAROL = "carol-declared-secret-1"
DAVE = "dave-declared-secret-22"
ENV = {"CAROL_PASSWORD": CAROL, "DAVE_PASSWORD": DAVE}

DECLARED = """
[[roles]]
name = "readers"
description = "read nation"

[[users]]
name = "carol"
password = "${env:CAROL_PASSWORD}"
roles = ["readers"]
attributes = { region = "EUROPE" }

[[grants]]
role = "readers"
target = "demo.main.nation"

[[grants]]
role = "readers"
target = "demo.main.customer"
columns = ["c_custkey", "c_name"]
"""


def _load(tmp_path, text: str, env=None):
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return load_config(path, env=ENV if env is None else env)


@pytest.mark.parametrize("text, message", [
    ('[[users]]\nname = "carol"\npassword = "carol-literal-secret"\n', "CV-007"),
    ('[[users]]\nname = "carol"\npassword = "${env:SHORT}"\n', "AU-003"),
    ('[[users]]\nname = "bad name"\n', "AU-001"),
    ('[[users]]\nname = "carol"\n\n[[users]]\nname = "CAROL"\n', "AU-002"),
    ('[[users]]\nname = "carol"\nroles = ["no good"]\n', "AU-004"),
    ('[[users]]\nname = "carol"\nattributes = { name = "x" }\n', "AU-007"),
    ('[[users]]\nname = "carol"\nshoe_size = 9\n', "users[0].shoe_size: unknown setting"),
    ('[[roles]]\nname = "admin"\n', "AU-011"),
    ('[[grants]]\nrole = "r"\ntarget = "a.b.c.d"\n', "AU-006"),
    ('[[grants]]\nrole = "r"\ntarget = "demo.main"\ncolumns = ["x"]\n', "AU-006"),
])
def test_a_declaration_that_breaks_a_cli_rule_refuses_the_file(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text, {"SHORT": "tiny"})
    assert message in info.value.message
    assert "carol-literal-secret" not in info.value.message and "tiny" not in info.value.message


def test_the_file_owns_what_it_declares(tmp_path, store: CatalogStore):
    config = _load(tmp_path, DECLARED)
    assert "carol" not in repr(config.security.users[0].password) and CAROL not in repr(config)
    summary = apply_declared_security(store, config)
    assert "user carol added" in summary and "role readers added" in summary
    carol = get_user(store, "carol")
    assert (carol.origin, carol.roles, carol.attributes) == ("config", ("readers",), {"region": "EUROPE"})
    assert {(g.target, g.origin) for g in list_grants(store, "readers")} == {
        ("demo.main.nation", "config"), ("demo.main.customer", "config")}
    assert apply_declared_security(store, config) == ""  # applying again changes nothing

    add_grant(store, "readers", "demo", "main", "region")  # made with the CLI: the file leaves it alone
    changed = DECLARED.replace('attributes = { region = "EUROPE" }', 'attributes = { region = "ASIA" }\n'
                               'disabled = true')
    changed = changed.split("[[grants]]")[0] + "[[grants]]" + changed.split("[[grants]]")[1]
    summary = apply_declared_security(store, _load(tmp_path, changed))
    assert "user carol updated" in summary and "1 grants revoked" in summary
    carol = get_user(store, "carol")
    assert carol.disabled and carol.attributes == {"region": "ASIA"}
    assert {g.target for g in list_grants(store, "readers")} == {"demo.main.nation", "demo.main.region"}

    summary = apply_declared_security(store, _load(tmp_path, "[server]\n"))
    assert "user carol removed" in summary and "role readers removed" in summary
    assert "carol" not in {u.name for u in list_users(store)} and "readers" not in {r.name for r in list_roles(store)}
    assert {u.name for u in list_users(store)} == {"alice", "bob"}  # the CLI's users stay


def test_a_name_the_cli_owns_or_an_unknown_role_refuses_the_whole_file(tmp_path, store):
    with pytest.raises(ConfigError, match="AU-002.*'bob'"):
        apply_declared_security(store, _load(tmp_path, '[[users]]\nname = "bob"\n'))
    with pytest.raises(ConfigError, match="AU-005.*'ghosts'"):
        apply_declared_security(store, _load(tmp_path, DECLARED + '\n[[users]]\nname = "eve"\nroles = ["ghosts"]\n'))
    assert "readers" not in {r.name for r in list_roles(store)}  # nothing of the refused file was applied
    add_role(store, "cli_role")
    add_user(store, "frank", roles=["cli_role"])
    text = '[[grants]]\nrole = "cli_role"\ntarget = "demo"\n'
    assert "1 grants added" in apply_declared_security(store, _load(tmp_path, text))


#: A policy exempting a role nobody made: the catalog refuses it, after the file's roles and users were checked.
GHOST_POLICY = """
[[policies]]
name = "hide-phone"
on = "demo.main.customer"
mask = "c_phone"
exempt_roles = ["ghosts"]
"""


def test_a_policy_the_catalog_refuses_refuses_the_whole_file_at_start(tmp_path, store):
    store.close()
    text = f'[server]\ndata_dir = "{tmp_path / "data"}"\n' + DECLARED + GHOST_POLICY
    with pytest.raises(ConfigError, match="AU-005: policy 'hide-phone': exempt role 'ghosts'"):
        start_catalog(_load(tmp_path, text))
    reopened = CatalogStore(data_dir=tmp_path / "data")
    try:  # nothing of the refused file was applied: neither its role, user and grants nor its policies
        assert {u.name for u in list_users(reopened)} == {"alice", "bob"}
        assert "readers" not in {r.name for r in list_roles(reopened)}
        assert list_grants(reopened) == [] and list_policies(reopened) == []
    finally:
        reopened.close()


SERVED = """
[server]
port = 0
auth = { enabled = true }
demo_scale = 0.01
""" + DECLARED


def test_served_gateway_applies_declarations_at_start_and_on_sighup(tmp_path, demo_data_dir, monkeypatch,
                                                                     master_key):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    data = tmp_path / "data"
    data.mkdir()
    for demo in demo_data_dir.glob("tpch_*.duckdb"):
        (data / demo.name).symlink_to(demo)
    config = tmp_path / "gateway.toml"
    config.write_text(SERVED)
    served = serve(data, "--config", str(config), "--data-dir", str(data))
    try:
        client = flight.FlightClient(served.location)
        _, value = client.authenticate_basic_token("carol", CAROL)
        carol = bearer(value.decode().removeprefix("Bearer "))
        query = pb.CommandStatementQuery(query="SELECT c_custkey, c_name FROM customer ORDER BY c_custkey LIMIT 2")
        assert raw.info_and_table(client, query, carol)[1].column_names == ["c_custkey", "c_name"]

        config.write_text(SERVED.replace('columns = ["c_custkey", "c_name"]', 'columns = ["c_custkey"]')
                          + '\n[[users]]\nname = "dave"\npassword = "${env:DAVE_PASSWORD}"\nroles = ["readers"]\n')
        served.signal(signal.SIGHUP)
        wait_for(lambda: any("configuration reloaded" in line for line in served.out))
        line = next(line for line in served.out if "configuration reloaded" in line)
        assert "user dave added" in line and CAROL not in line and DAVE not in line, line

        def refused() -> bool:
            try:
                raw.info_and_table(client, query, carol)
            except flight.FlightUnauthorizedError as exc:
                return "column demo.main.customer.c_name" in str(exc)
            return False

        wait_for(refused, seconds=10)  # the identity snapshot refreshes within seconds
        client.authenticate_basic_token("dave", DAVE)

        # A file the catalog refuses is refused whole: its new user does not appear, the running state stays.
        config.write_text(SERVED + '\n[[users]]\nname = "erin"\nroles = ["readers"]\n' + GHOST_POLICY)
        served.signal(signal.SIGHUP)
        wait_for(lambda: any("not reloaded" in line for line in served.out))
        line = next(line for line in served.out if "not reloaded" in line)
        assert "AU-005: policy 'hide-phone': exempt role 'ghosts'" in line, line
        reader = CatalogStore(data_dir=data)
        try:
            assert {u.name for u in list_users(reader)} == {"carol", "dave"}
            assert list_policies(reader) == []
        finally:
            reader.close()
        assert not any(secret in text for text in served.out + served.err for secret in (CAROL, DAVE))
        served.signal(signal.SIGTERM)
        assert served.wait(30) == 0
    finally:
        served.stop()
