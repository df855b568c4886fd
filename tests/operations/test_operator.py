"""What an operator meets with the master key and the sources commands, through the real ``nexus-flight`` command."""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest

from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.vault import ENV_KEY, KeyRing, parse_key

pytestmark = pytest.mark.timeout(120)

#: No OS keyring: what a server or a container has (and the tests never touch the user's own keyring).
NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_FLIGHT")}
    return {**env, **NO_KEYRING, **extra}


def _cli(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["nexus-flight", *args], capture_output=True, text=True, env=env, input=stdin, timeout=90)


@pytest.fixture(scope="module")
def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(scope="module")
def pg_source(tmp_path_factory, key, postgres_server):
    """A catalog holding a healthy PostgreSQL source whose password is sealed with ``key``.

    Shared by the tests that only read it: each asserts the source is still active and healthy where it matters.
    """
    data = tmp_path_factory.mktemp("operator") / "data"
    store = CatalogStore(data_dir=data, keys=KeyRing(parse_key(key)))
    store.add_source("sales", "postgresql", postgres_server.options(), {"password": "reader-only-password"})
    store.close()
    result = _cli("sources", "test", "sales", "--data-dir", str(data), env=_env(**{ENV_KEY: key}))
    assert result.returncode == 0 and "active" in result.stdout, result.stderr
    return data


def test_serve_refuses_to_start_without_the_key_of_the_catalogs_credentials(pg_source):
    result = _cli("serve", "--data-dir", str(pg_source), "--port", "0", env=_env())
    assert result.returncode == 2
    assert "CV-001: 1 source credential in the catalog is sealed with master key" in result.stderr
    assert "no master key is configured: set NEXUS_FLIGHT_MASTER_KEY" in result.stderr
    assert "NEXUS_FLIGHT_OLD_MASTER_KEYS" not in result.stderr  # not the real problem


def test_a_start_refused_for_its_keys_leaves_the_catalog_as_the_file_found_it(pg_source, key, tmp_path):
    """The file's sources and users are applied only once the start is admitted: a refused one changes nothing."""
    config = tmp_path / "gateway.toml"
    config.write_text('[[sources]]\nname = "shop"\ntype = "duckdb"\n[sources.options]\npath = ":memory:"\n\n'
                      '[[users]]\nname = "dana"\npassword = "${env:DANA_PASSWORD}"\n')
    result = _cli("serve", "--data-dir", str(pg_source), "--port", "0", "--config", str(config),
                  env=_env(DANA_PASSWORD="dana-password-1"))
    assert result.returncode == 2 and "CV-001" in result.stderr
    listed = _cli("sources", "list", "--data-dir", str(pg_source), "--json", env=_env(**{ENV_KEY: key}))
    assert [s["name"] for s in json.loads(listed.stdout)] == ["sales"]
    users = _cli("users", "list", "--data-dir", str(pg_source), "--json", env=_env(**{ENV_KEY: key}))
    assert "dana" not in users.stdout, users.stderr


def test_serve_with_another_key_names_both_ways_out(pg_source, key):
    """The key it lacks may be the new one (a rotation finished elsewhere) or an old one: the message says which
    variable each case sets."""
    other = base64.b64encode(os.urandom(32)).decode()
    result = _cli("serve", "--data-dir", str(pg_source), "--port", "0", env=_env(**{ENV_KEY: other}))
    assert result.returncode == 2
    assert "CV-004: 1 source credential in the catalog is sealed with key" in result.stderr
    assert f"it is the new master key: set {ENV_KEY} to it" in result.stderr
    assert "if it is an older key, add it to NEXUS_FLIGHT_OLD_MASTER_KEYS" in result.stderr
    assert key not in result.stderr and other not in result.stderr


def test_sources_test_without_the_key_names_it_and_leaves_a_healthy_source_active(pg_source, key):
    result = _cli("sources", "test", "sales", "--data-dir", str(pg_source), env=_env())
    assert result.returncode == 2
    assert "no master key is configured" in result.stderr and ENV_KEY in result.stderr
    shown = _cli("sources", "show", "sales", "--data-dir", str(pg_source), env=_env(**{ENV_KEY: key}))
    assert "active" in shown.stdout and "error" not in shown.stdout.split("status", 1)[1].splitlines()[0]


def test_sources_add_test_exits_1_when_the_test_fails_and_update_changes_the_password(tmp_path, key,
                                                                                      postgres_server):
    data = str(tmp_path / "data")
    env = _env(**{ENV_KEY: key, "PASSWORD": "first"})
    options = [f"-o{k}={v!r}" if isinstance(v, str) else f"-o{k}={v}" for k, v in
               {**postgres_server.options(), "port": 1}.items()]
    failed = _cli("sources", "add", "sales", "--type", "postgresql", *options, "-s", "password=${env:PASSWORD}",
                  "--test", "--data-dir", data, env=env)
    assert failed.returncode == 1, failed.stderr
    assert "error" in failed.stdout
    fixed = _cli("sources", "update", "sales", f"-oport={postgres_server.port}", "-s", "password=-", "--test",
                 "--data-dir", data, env=env, stdin="second\n")
    assert fixed.returncode == 0, (fixed.stdout, fixed.stderr)
    assert "active" in fixed.stdout and "second" not in fixed.stdout
    store = CatalogStore(data_dir=tmp_path / "data", keys=KeyRing(parse_key(key)))
    try:
        assert store.source_spec("sales").secrets == {"password": "second"}
        assert store.source_spec("sales").options["port"] == postgres_server.port
    finally:
        store.close()


def test_vault_init_makes_one_key_and_never_replaces_it(key):
    made = _cli("vault", "init", env=_env())
    assert made.returncode == 0
    line = made.stdout.strip()
    assert line.startswith(f"{ENV_KEY}=") and len(base64.b64decode(line.split("=", 1)[1])) == 32
    assert "no usable OS keyring" in made.stderr and "back it up" in made.stderr
    again = _cli("vault", "init", env=_env(**{ENV_KEY: key}))
    assert again.returncode == 2 and "already configured" in again.stderr and key not in again.stderr


def test_vault_init_never_keeps_the_key_in_a_plain_file_keyring(tmp_path):
    """keyrings.alt's file backend is what keyring falls back to where no OS keyring runs: not a place for the key."""
    env = {**_env(), "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring"}
    made = _cli("vault", "init", env=env)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"{ENV_KEY}=")
    assert "no usable OS keyring (keyrings.alt.file.PlaintextKeyring is not an OS keyring)" in made.stderr
    assert list(tmp_path.rglob("*")) == []  # nothing written


def test_a_catalog_that_does_not_open_is_named_without_a_traceback(tmp_path):
    """Down, mistyped or not a directory: the command names the catalog (never its password) and why, exit 2."""
    from tests.support.services import free_port

    down = f"postgresql+psycopg://gateway:catalog-secret@127.0.0.1:{free_port()}/catalog"
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    for argv, said in [
        (("sources", "list", "--catalog-url", down), "cannot open the catalog postgresql+psycopg://gateway:***@"),
        (("users", "list", "--catalog-url", "not a url"), "cannot open the catalog URL (not a SQLAlchemy URL"),
        (("sources", "list", "--data-dir", str(not_a_folder)), f"cannot open the catalog sqlite:///{not_a_folder}"),
        (("serve", "--port", "0", "--data-dir", str(not_a_folder)), f"cannot open the catalog sqlite:///{not_a_folder}"),
    ]:
        result = _cli(*argv, env=_env())
        assert result.returncode == 2 and f"error: {said}" in result.stderr, (argv, result.stderr)
        assert "Traceback" not in result.stderr and "catalog-secret" not in result.stderr


def test_no_os_keyring_is_the_normal_case_said_only_when_a_key_is_needed(tmp_path):
    """A server has no OS keyring: commands that need no key say nothing of it; one that needs a key says why."""
    data = str(tmp_path / "data")
    listed = _cli("sources", "list", "--data-dir", data, env=_env())
    assert listed.returncode == 0 and "keyring" not in listed.stderr.lower(), listed.stderr
    needed = _cli("sources", "add", "pg", "--type", "postgresql", "-o", "host=db.example", "-o", "database=d",
                  "-s", "password=${env:PG_PASSWORD}", "--data-dir", data, env=_env(PG_PASSWORD="a-password-42"))
    assert needed.returncode == 2 and "Traceback" not in needed.stderr
    assert needed.stderr.strip().splitlines()[-1].startswith("error: CV-001: no master key")
    assert needed.stderr.strip().endswith("this machine has no OS keyring")
