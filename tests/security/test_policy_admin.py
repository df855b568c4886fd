"""Managing policies: the ``policies`` and ``users update`` commands, the configuration file, and their checks.

The commands run in-process on the catalog a gateway requiring authentication serves (the DuckDB demo); bob's
answers under the policies they make are compared with DuckDB's own answers on a copy of the demo database.
"""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.catalog.audit import search_audit
from nexus_flight.catalog.config_file import load_config
from nexus_flight.catalog.grants import add_grant
from nexus_flight.catalog.policies import PolicySpec, add_policy, check_policy, list_policies, sync_policies
from nexus_flight.catalog.runtime import start_catalog
from nexus_flight.core.errors import ConfigError
from tests.security.conftest import BOB_PASSWORD, bearer, sign_in
from tests.security.test_security_cli import cli  # noqa: F401 - the fixture
from tests.support import flightsql_raw as raw


def test_policies_made_with_the_cli_filter_and_mask_the_demo(cli, secure_gateway, store, demo_data_dir,  # noqa: F811
                                                              tmp_path):
    add_grant(store, "analyst", "demo", "main", "nation")
    secured = secure_gateway()
    code, shown, _ = cli("users", "update", "bob", "--attribute", "rk=2", "--attribute", "team=x")
    assert code == 0 and shown["attributes"] == {"region": "ASIA", "rk": "2", "team": "x"}
    code, shown, _ = cli("users", "update", "bob", "--remove-attribute", "team")
    assert shown["attributes"] == {"region": "ASIA", "rk": "2"}
    code, added, _ = cli("policies", "add", "asia-nations", "--on", "demo.main.nation",
                         "--row-filter", "n_regionkey = CAST({user.rk} AS INTEGER)")
    assert code == 0 and added["kind"] == "row_filter" and added["target"] == "demo.main.nation"
    code, _, _ = cli("policies", "add", "no-comment", "--on", "demo.main.nation", "--mask", "n_comment",
                     "--expression", "left(n_comment, 3) || '...'")
    assert code == 0
    secured.security.authenticator.identities.refresh()
    client = secured.client()
    token = sign_in(client, "bob", BOB_PASSWORD)
    _, got = raw.info_and_table(client, pb.CommandStatementQuery(query="SELECT * FROM nation ORDER BY n_nationkey"),
                                bearer(token))
    copy = tmp_path / "truth.duckdb"
    shutil.copy(next(demo_data_dir.glob("*.duckdb")), copy)
    with duckdb.connect(str(copy), read_only=True) as con:
        expected = con.execute("SELECT n_nationkey, n_name, n_regionkey, left(n_comment, 3) || '...' AS n_comment "
                               "FROM nation WHERE n_regionkey = 2 ORDER BY n_nationkey").arrow()
    if hasattr(expected, "read_all"):
        expected = expected.read_all()
    assert got.column_names == expected.column_names
    assert got.to_pylist() == expected.to_pylist() and got.num_rows == 5

    code, listed, _ = cli("policies", "list")
    assert [p["name"] for p in listed] == ["asia-nations", "no-comment"]
    code, one, _ = cli("policies", "show", "no-comment")
    assert one["column"] == "n_comment" and one["exempt_roles"] == []
    code, _, _ = cli("policies", "remove", "asia-nations")
    assert code == 0 and [p.name for p in list_policies(store)] == ["no-comment"]
    kinds = [(e["kind"], e["subject"]) for e in search_audit(store, limit=20) if e["kind"].startswith("policy")]
    assert sorted(kinds) == [("policy_added", "asia-nations"), ("policy_added", "no-comment"),
                             ("policy_removed", "asia-nations")]
    secured.security.authenticator.identities.refresh()
    _, got = raw.info_and_table(client, pb.CommandStatementQuery(query="SELECT count(*) AS n FROM nation"),
                                bearer(token))
    assert got.to_pylist() == [{"n": 25}]


BAD = [
    (["--row-filter", "region = (SELECT max(region) FROM other)"], "AU-007"),
    (["--row-filter", "region = {user.region"], "AU-007"),
    (["--row-filter", "region = {env:SECRET}"], "AU-007"),
    (["--row-filter", "count(*) > 1"], "AU-007"),
    (["--row-filter", "other.region = 'EU'"], "only columns of demo.main.nation"),
    (["--row-filter", "1 + 1"], "not a predicate"),
    (["--row-filter", "a = 1; DROP TABLE nation"], "not one SQL expression"),
    (["--mask", "n_comment", "--expression", "n_comment AS x"], "no alias"),
    (["--mask", "n_comment", "--expression", "sum(n_nationkey) OVER ()"], "AU-007"),
    (["--mask", "n_comment", "--exempt-role", "nobody"], "AU-005"),
    (["--row-filter", "n_regionkey = ?"], "AU-007"),
]


@pytest.mark.parametrize(("options", "message"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_the_cli_refuses_a_policy_that_breaks_the_rules(cli, store, options, message):  # noqa: F811
    code, _, err = cli("policies", "add", "bad", "--on", "demo.main.nation", *options)
    assert code == 2 and message in err
    assert list_policies(store) == []


def test_the_cli_refuses_a_bad_target_and_a_taken_name(cli, store):  # noqa: F811
    code, _, err = cli("policies", "add", "p", "--on", "demo.nation", "--mask", "x")
    assert code == 2 and "catalog.schema.table" in err
    assert cli("policies", "add", "p", "--on", "demo.main.nation", "--mask", "n_comment")[0] == 0
    code, _, err = cli("policies", "add", "P", "--on", "demo.main.nation", "--mask", "n_name")
    assert code == 2 and "AU-002" in err


def test_columns_are_checked_when_the_table_is_known():
    spec = PolicySpec("p", "row_filter", "c.s.t", expression="regoin = {user.region}")
    with pytest.raises(ConfigError, match="has no column 'regoin'"):
        check_policy(spec, columns=["id", "region"])
    check_policy(PolicySpec("p", "row_filter", "c.s.t", expression="Region = {user.region}"), columns=["region"])
    with pytest.raises(ConfigError, match="has no column 'ssn'"):
        check_policy(PolicySpec("m", "column_mask", "c.s.t", column="ssn"), columns=["id"])


def _write(tmp_path, body: str):
    path = tmp_path / "gateway.toml"
    path.write_text(body)
    return path


def test_the_configuration_file_declares_policies_checked_like_the_cli(tmp_path, store):
    body = """
[[policies]]
name = "by-region"
on = "sales.public.orders"
row_filter = "region = {user.region}"

[[policies]]
name = "hide-email"
on = "sales.public.customers"
mask = "email"
exempt_roles = ["analyst"]
"""
    config = load_config(_write(tmp_path, body), env={})
    assert [(p.name, p.kind, p.column) for p in config.policies] == [
        ("by-region", "row_filter", None), ("hide-email", "column_mask", "email")]
    assert sync_policies(store, config.policies) == {"by-region": "added", "hide-email": "added"}
    assert sync_policies(store, config.policies) == {"by-region": "unchanged", "hide-email": "unchanged"}
    changed = load_config(_write(tmp_path, body.split("[[policies]]\nname = \"hide-email\"")[0].replace(
        "{user.region}", "{user.team}")), env={})
    assert sync_policies(store, changed.policies) == {"by-region": "updated", "hide-email": "removed"}
    [policy] = list_policies(store)
    assert policy.origin == "config" and policy.expression == "region = {user.team}"
    add_policy(store, PolicySpec("made-by-hand", "column_mask", "sales.public.orders", column="total"))
    assert sync_policies(store, []) == {"by-region": "removed"}
    assert [p.name for p in list_policies(store)] == ["made-by-hand"]  # the CLI's policies are left alone
    with pytest.raises(ConfigError, match="AU-002"):
        sync_policies(store, [PolicySpec("made-by-hand", "column_mask", "sales.public.orders", column="x")])


def test_a_gateway_served_without_a_file_keeps_the_row_filters_a_file_declared(tmp_path, store):
    """No file owns anything then: dropping the file's policies would open the rows they filter to everyone."""
    declared = load_config(_write(tmp_path, '[[policies]]\nname = "by-region"\non = "sales.public.orders"\n'
                                            'row_filter = "region = {user.region}"\n'), env={})
    assert sync_policies(store, declared.policies) == {"by-region": "added"}
    store.close()
    catalog = start_catalog(load_config(None, env={}, flags={"data_dir": tmp_path / "data"}))
    try:
        assert [(p.name, p.origin) for p in list_policies(catalog.store)] == [("by-region", "config")]
    finally:
        catalog.close()


@pytest.mark.parametrize(("entry", "message"), [
    ('name = "x"\non = "a.b.c"\nrow_filter = "a = (SELECT 1)"', r"policies\[0\] \(x\): AU-007"),
    ('name = "x"\non = "a.b.c"', "either row_filter or mask"),
    ('name = "x"\non = "a.b"\nmask = "m"', "catalog.schema.table"),
    ('name = "x"\non = "a.b.c"\nmask = "m"\ncolour = "red"', "colour"),
])
def test_an_invalid_policy_in_the_file_names_the_entry(tmp_path, entry, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, f"[[policies]]\n{entry}\n"), env={})


def test_no_policy_detail_in_the_audit_trail_holds_a_secret(store):
    add_policy(store, PolicySpec("p", "row_filter", "demo.main.nation", expression="n_name = {user.name}"))
    events = [e for e in search_audit(store, limit=5) if e["kind"] == "policy_added"]
    assert json.loads(events[0]["detail"])["expression"] == "n_name = {user.name}"
