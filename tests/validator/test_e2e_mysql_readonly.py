"""The MySQL attack corpus through the gateway against this run's own MariaDB, with the validator on and off.

The source logs in as the least-privilege reader the README describes (SELECT on one database). With the validator
on, every attack it must refuse names its rule; with the validator off, the server's own reading is all that
stands between a client and the data: parameters are bound by the protocol, the login may only read, sessions
are read-only and reset. Either way no attack may do damage: the sentinel table keeps its rows, no file appears
where the server could write, the sentinel file's content and other users' password hashes are never returned,
no user-level lock outlives its query and a sleep ends with the gateway's timeout.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pytest

from nexus_flight.core.settings import ServerSettings
from nexus_flight.server.app.gateway import Gateway
from tests.support.mysql_reader import reader_spec
from tests.validator.mysql_attacks import MYSQL_ATTACKS, MySQLAttack

DB = f"nexus_attack_{uuid.uuid4().hex[:8]}"
TIMEOUT = 1.0


@pytest.fixture(scope="module")
def target(mariadb_server):
    """A file the server could read (with a secret in it) and the directories it could write into."""
    root = Path(tempfile.mkdtemp(prefix="nexus-mysql-attack-"))
    root.chmod(0o777)
    sentinel = root / "sentinel.txt"
    secret = f"nexus-secret-{uuid.uuid4().hex}"
    sentinel.write_text(secret)
    sentinel.chmod(0o644)
    con = mariadb_server.connect()
    with con.cursor() as cur:
        cur.execute("SELECT @@secure_file_priv")
        priv = cur.fetchone()[0]
    con.close()
    writable = [root] + ([Path(priv)] if priv and Path(priv).is_dir() else [])
    yield {"sentinel": sentinel, "secret": secret, "out": root / "out.txt", "writable": writable}
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def source(mariadb_server):
    con = mariadb_server.connect()
    with con.cursor() as cur:
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"CREATE TABLE {DB}.sentinel (id int PRIMARY KEY, v varchar(20))")
        cur.execute(f"INSERT INTO {DB}.sentinel VALUES (1, 'one'), (2, 'two')")
        cur.execute(f"CREATE TABLE {DB}.audit (a int)")
        cur.execute(
            f"CREATE FUNCTION {DB}.nexus_attack_write() RETURNS INT MODIFIES SQL DATA "
            f"BEGIN INSERT INTO {DB}.audit VALUES (1); RETURN 1; END"
        )
    con.close()
    # The source's own statement timeout bounds planning probes too.
    yield reader_spec(mariadb_server, DB, name="mysrc", statement_timeout_seconds=TIMEOUT)
    con = mariadb_server.connect()
    with con.cursor() as cur:
        cur.execute(f"DROP DATABASE {DB}")
    con.close()


@pytest.fixture(scope="module", params=[True, False], ids=["validator-on", "validator-off"])
def gateway(request, source, tmp_path_factory):
    config = ServerSettings(
        port=0,
        data_dir=tmp_path_factory.mktemp("mysql-attack-gw"),
        demo_scale=None,
        validate_sql=request.param,
        query_timeout_seconds=TIMEOUT,
    )
    gw = Gateway(config, [source]).start()
    yield request.param, gw
    gw.shutdown()


def fill(text: str, target) -> str:
    hex_path = "0x" + str(target["sentinel"]).encode().hex()
    return (
        text.replace("{SENTINEL_HEX}", hex_path)
        .replace("{SENTINEL}", str(target["sentinel"]))
        .replace("{OUT}", str(target["out"]))
        .replace("{DB}", DB)
    )


def state(server, target) -> dict:
    """Everything an attack could damage, read as root directly on the server."""
    con = server.connect()
    with con.cursor() as cur:
        cur.execute(f"SELECT id, v FROM {DB}.sentinel ORDER BY id")
        rows = cur.fetchall()
        cur.execute(f"SELECT count(*) FROM {DB}.audit")
        audit = cur.fetchone()[0]
        cur.execute(f"SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{DB}'")
        tables = cur.fetchone()[0]
        cur.execute("SELECT IS_FREE_LOCK('nexus_attack_lock')")
        lock_free = cur.fetchone()[0]
    con.close()
    return {
        "rows": rows,
        "audit": audit,
        "tables": tables,
        "lock_free": lock_free,
        "files": {str(d): sorted(os.listdir(d)) for d in target["writable"]},
        "sentinel": target["sentinel"].read_text(),
    }


@pytest.mark.parametrize("attack", MYSQL_ATTACKS, ids=lambda a: a.id)
def test_attack_does_no_damage(gateway, target, mariadb_server, attack: MySQLAttack):
    validating, gw = gateway
    before = state(mariadb_server, target)
    parameters = tuple(fill(p, target) if isinstance(p, str) else p for p in attack.parameters or ()) or None
    answer, error = None, None
    started = time.monotonic()
    with flightsql.connect(gw.location, autocommit=True) as conn:
        conn.adbc_connection.set_options(**{"adbc.flight.sql.session.option.catalog": "mysrc"})
        if attack.dialect:
            conn.adbc_connection.set_options(**{"adbc.flight.sql.session.option.dialect": attack.dialect})
        cur = conn.cursor()
        try:
            cur.execute(fill(attack.sql, target), parameters)
            answer = cur.fetchall()
        except flightsql.Error as exc:
            error = str(exc)
        finally:
            cur.close()
    elapsed = time.monotonic() - started
    if validating and attack.rule:
        assert error is not None and "QV-0" in error, f"the validator let {attack.id} through: {answer or error}"
    # The damage checks, the same with the validator on or off.
    assert elapsed < TIMEOUT + 5, f"{attack.id} ran {elapsed:.1f} s"
    text = repr(answer)
    assert target["secret"] not in text, "the sentinel file's content was returned"
    assert "*" not in text or "mysql_user" not in attack.id, "password hashes were returned"
    if attack.sql.startswith("SELECT id, v FROM sentinel WHERE"):
        assert not answer, f"a parameter or literal became SQL: {answer}"
    if attack.id == "mysql_user" or attack.id == "param_union_mysql_user":
        assert error is not None or not answer
    if attack.id == "other_sessions":
        assert all(user == "nexus_reader" for user, _ in answer or [])
    after = state(mariadb_server, target)
    assert after == before
    assert list(after["rows"]) == [(1, "one"), (2, "two")] and after["lock_free"] == 1 and after["audit"] == 0


def test_reads_of_the_sentinel_still_work(gateway):
    _, gw = gateway
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) AS n FROM mysrc.{DB}.sentinel")
        assert cur.fetchall() == [(2,)]
        cur.execute(f"SELECT v FROM mysrc.{DB}.sentinel WHERE v = ?", ("two",))
        assert cur.fetchall() == [("two",)]
