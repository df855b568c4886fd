"""The PostgreSQL attack corpus through the gateway against this run's own PostgreSQL, with the validator on.

The source logs in as the least-privilege reader (the README's set-up); test_e2e_postgres_damage.py runs the same
classes with the validator off. Here every attack must be refused with its rule id, and afterwards a sentinel
table, a sentinel file the server could read, a world-writable directory the server could write into, the
advisory locks and the session settings must all be as before.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import psycopg
import pytest
from adbc_driver_manager import AdbcStatusCode

from nexus_flight.core.errors import ReadOnlyViolationError
from nexus_flight.core.settings import ServerSettings
from nexus_flight.core.source import SourceSpec
from nexus_flight.server.app.gateway import Gateway
from nexus_flight.server.query.sql.rules import RULES
from tests.validator.corpus import POSTGRES_ATTACKS

SCHEMA = f"nexus_validator_{uuid.uuid4().hex[:10]}"

WRITES_ON_THE_SENTINEL = [
    ("QV-002", f"DELETE FROM {SCHEMA}.sentinel"),
    ("QV-002", f"UPDATE {SCHEMA}.sentinel SET v = 'x'"),
    ("QV-002", f"INSERT INTO {SCHEMA}.sentinel VALUES (9, 'x')"),
    ("QV-002", f"WITH d AS (DELETE FROM {SCHEMA}.sentinel RETURNING *) SELECT count(*) FROM d"),
    ("QV-002", f"SELECT * INTO {SCHEMA}.copy_of_sentinel FROM {SCHEMA}.sentinel"),
    ("QV-003", f"TRUNCATE {SCHEMA}.sentinel"),
    ("QV-003", f"DROP TABLE {SCHEMA}.sentinel"),
    ("QV-003", f"ALTER TABLE {SCHEMA}.sentinel ADD COLUMN w int"),
    ("QV-005", f"COPY {SCHEMA}.sentinel FROM '{{SENTINEL}}'"),
    ("QV-005", f"COPY {SCHEMA}.sentinel TO '{{OUT}}/sentinel.csv'"),
    ("QV-007", f"SELECT * FROM {SCHEMA}.sentinel FOR UPDATE"),
]


@pytest.fixture(scope="module")
def pg_sentinel(postgres_server):
    with psycopg.connect(postgres_server.dsn(), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(f"CREATE TABLE {SCHEMA}.sentinel (id int PRIMARY KEY, v text)")
        conn.execute(f"INSERT INTO {SCHEMA}.sentinel VALUES (1, 'one'), (2, 'two')")
    yield postgres_server
    with psycopg.connect(postgres_server.dsn(), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")


@pytest.fixture(scope="module")
def target():
    """A file the PostgreSQL server could read and a directory it could write into (outside pytest's 0700 tmp)."""
    root = Path(tempfile.mkdtemp(prefix="nexus-validator-pg-"))
    root.chmod(0o755)
    sentinel = root / "sentinel.csv"
    sentinel.write_text("3,three\n")
    sentinel.chmod(0o644)
    out = root / "out"
    out.mkdir()
    out.chmod(0o777)
    yield sentinel, out
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def conn(pg_sentinel, tmp_path_factory):
    spec = SourceSpec("pgsrc", "postgres", pg_sentinel.options())
    config = ServerSettings(port=0, data_dir=tmp_path_factory.mktemp("pg-gw"), demo_scale=None)
    gateway = Gateway(config, [spec]).start()
    connection = flightsql.connect(gateway.location, autocommit=True)
    yield connection
    connection.close()
    gateway.shutdown()


def fetch(conn, sql: str) -> list[tuple]:
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return cur.fetchall()
    finally:
        cur.close()


def state(conn, server) -> dict:
    """What the attacks must not change, as seen through the gateway and directly."""
    with psycopg.connect(server.dsn(), connect_timeout=5) as direct:
        locks = direct.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]
    return {
        "rows": fetch(conn, f"SELECT id, v FROM {SCHEMA}.sentinel ORDER BY id"),
        "settings": fetch(conn, "SELECT current_setting('search_path'), current_setting('work_mem')"),
        "advisory_locks": locks,
    }


@pytest.fixture(scope="module")
def before(conn, target, postgres_server):
    sentinel, out = target
    return {**state(conn, postgres_server), "sentinel": sentinel.read_text(), "out": os.listdir(out)}


def fill(sql: str, target) -> str:
    sentinel, out = target
    return sql.replace("{SENTINEL}", str(sentinel)).replace("{OUT}", str(out))


@pytest.mark.parametrize(
    ("rule", "sql"), [*POSTGRES_ATTACKS, *WRITES_ON_THE_SENTINEL], ids=lambda v: repr(v)[:50]
)
def test_postgres_attack_is_refused_through_the_gateway(conn, before, target, rule, sql):
    cur = conn.cursor()
    try:
        with pytest.raises(flightsql.Error) as caught:
            cur.execute(fill(sql, target))
            cur.fetchall()
    finally:
        cur.close()
    text = str(caught.value)
    assert f"{rule}: " in text, text
    expected = (
        AdbcStatusCode.UNAUTHORIZED
        if issubclass(RULES[rule].error, ReadOnlyViolationError)
        else AdbcStatusCode.INVALID_ARGUMENT
    )
    assert caught.value.status_code == expected, text


def test_postgres_unchanged_after_the_attacks(conn, before, target, postgres_server):
    sentinel, out = target
    assert state(conn, postgres_server) == {k: before[k] for k in ("rows", "settings", "advisory_locks")}
    assert before["rows"] == [(1, "one"), (2, "two")]
    assert sentinel.read_text() == before["sentinel"]
    assert os.listdir(out) == before["out"] == []


def test_reads_of_the_sentinel_still_work(conn):
    assert fetch(conn, f"SELECT count(*) FROM pgsrc.{SCHEMA}.sentinel") == [(2,)]
