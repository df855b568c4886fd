"""The PostgreSQL attacks against this run's own PostgreSQL, with the validator on and off: no damage either way.

The source logs in as the least-privilege reader (``tests/support/servers.py``: CONNECT, USAGE, SELECT, nothing
else, the README's set-up). With the validator on, every attack is refused with its rule. With it off, the
second line holds alone: the reader's grants, the read-only transaction the gateway rolls back after each
query, and the refusal of privileged logins. DAMAGE is checked, not errors: a sentinel file's hash, a sentinel
table's fingerprint, a large object's content, no file created on the host, no notification delivered, no
advisory lock held, another session of the same role still alive, statistics not reset, settings as before, and
no answer (rows or error text) carrying the file's secret, the large object's secret, a password hash, another
session's query or the server's paths. dblink is installed in the test database, so its attacks are real.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import psycopg
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.core.settings import ServerSettings
from nexus_flight.core.source import SourceSpec
from nexus_flight.server.app.gateway import Gateway
from tests.support import flightsql_raw as raw
from tests.support.services import wait_until

RUN = uuid.uuid4().hex[:10]
SCHEMA = f"nexus_damage_{RUN}"
TABLE = f"{SCHEMA}.sentinel"
FILE_SECRET = f"file-secret-{RUN}"
LO_SECRET = f"lo-secret-{RUN}"
ACTIVITY_SECRET = f"activity-secret-{RUN}"
CHANNEL = f"nexus_damage_{RUN}"

#: (attack, SQL); {S} is the sentinel file, {OUT} a world-writable directory, {OID} the sentinel large object,
#: {DSN} a superuser connection string for dblink, {PID} another session of the reader's own role.
ATTACKS = [
    ("read a server file", "SELECT pg_read_file('{S}')"),
    ("read it under a Unicode-escaped name", 'SELECT U&"\\0070g_read_file"(\'{S}\')'),
    ("read it as bytes", "SELECT pg_read_binary_file('{S}')"),
    ("list the data directory", "SELECT * FROM pg_ls_dir('.')"),
    ("stat a server file", "SELECT * FROM pg_stat_file('{S}')"),
    ("import a server file", "SELECT lo_import('{S}')"),
    ("export a large object to the host", "SELECT lo_export({OID}, '{OUT}/lo_export.bin')"),
    ("export under an escaped name", 'SELECT U&"\\006co_export"({OID}, \'{OUT}/lo_export2.bin\')'),
    ("delete a large object", "SELECT lo_unlink({OID})"),
    ("overwrite a large object", "SELECT lo_put({OID}, 0, '\\x41414141')"),
    ("read a large object", "SELECT lo_get({OID})"),
    ("create a large object", "SELECT lo_create(0)"),
    ("store data in a large object", "SELECT lo_from_bytea(0, '\\x706f776e6564')"),
    ("write through dblink", "SELECT dblink_exec('{DSN}', 'INSERT INTO {T} VALUES (99, ''pwned'')')"),
    ("read a file through dblink", "SELECT * FROM dblink('{DSN}', 'SELECT pg_read_file(''{S}'')') AS t(x text)"),
    ("write a file with COPY", "COPY {T} TO '{OUT}/copy.csv'"),
    ("run a program with COPY", "COPY (SELECT 1) TO PROGRAM 'touch {OUT}/program'"),
    ("load a file with COPY", "COPY {T} FROM '{S}'"),
    ("read the configuration files", "SELECT * FROM pg_file_settings"),
    ("read pg_hba.conf", "SELECT * FROM pg_hba_file_rules"),
    ("read pg_ident.conf", "SELECT * FROM pg_ident_file_mappings"),
    ("read password hashes", "SELECT usename, passwd FROM pg_shadow"),
    ("read password hashes from pg_authid", "SELECT rolname, rolpassword FROM pg_authid"),
    ("read other sessions' queries", "SELECT pid, usename, query FROM pg_stat_activity"),
    ("read the data directory's path", "SELECT current_setting('data_directory')"),
    ("read the configuration file's path", "SELECT current_setting('config_file')"),
    ("leave a setting behind", "SELECT set_config('search_path', 'pg_temp', false)"),
    ("leave the session writable", "SELECT set_config('default_transaction_read_only', 'off', false)"),
    ("delete rows", "DELETE FROM {T}"),
    ("update rows", "UPDATE {T} SET v = 'pwned'"),
    ("insert rows", "INSERT INTO {T} VALUES (9, 'pwned')"),
    ("delete rows in a CTE", "WITH d AS (DELETE FROM {T} RETURNING *) SELECT count(*) FROM d"),
    ("truncate", "TRUNCATE {T}"),
    ("drop the table", "DROP TABLE {T}"),
    ("create a table", "CREATE TABLE {SCHEMA}.created (a int)"),
    ("run dynamic SQL", "SELECT query_to_xml('DELETE FROM {T} RETURNING *', true, true, '')"),
    ("hold an advisory lock", "SELECT pg_advisory_lock(4242)"),
    ("notify listeners", "SELECT pg_notify('{CHANNEL}', 'pwned')"),
    ("reset statistics", "SELECT pg_stat_reset()"),
    ("terminate another session", "SELECT pg_terminate_backend({PID})"),
    ("cancel another session's query", "SELECT pg_cancel_backend({PID})"),
    ("reload the configuration", "SELECT pg_reload_conf()"),
    ("rotate the log", "SELECT pg_rotate_logfile()"),
]


@pytest.fixture(scope="module")
def world(postgres_server):
    """Everything the attacks aim at, set up by the superuser; torn down afterwards."""
    root = Path(tempfile.mkdtemp(prefix="nexus-damage-pg-"))  # outside pytest's 0700 tmp: the server can reach it
    root.chmod(0o755)
    sentinel = root / "sentinel.txt"
    sentinel.write_text(f"{FILE_SECRET}\n")
    sentinel.chmod(0o644)
    out = root / "out"
    out.mkdir()
    out.chmod(0o777)
    admin = psycopg.connect(postgres_server.dsn(), autocommit=True)
    admin.execute("CREATE EXTENSION IF NOT EXISTS dblink")
    admin.execute(f"CREATE SCHEMA {SCHEMA}")
    admin.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, v text)")
    admin.execute(f"INSERT INTO {TABLE} VALUES (1, 'one'), (2, 'two')")
    oid = admin.execute("SELECT lo_from_bytea(0, %s::bytea)", (LO_SECRET.encode(),)).fetchone()[0]
    admin.execute(f"CREATE ROLE nexus_victim_{RUN} LOGIN PASSWORD 'victim-password'")
    admin.execute(f"SELECT 1 /* {ACTIVITY_SECRET} */")  # the last query of a session that stays open
    listener = psycopg.connect(postgres_server.dsn(), autocommit=True)
    listener.execute(f"LISTEN {CHANNEL}")
    sibling = psycopg.connect(postgres_server.dsn(user=postgres_server.reader), autocommit=True)
    pid = sibling.execute("SELECT pg_backend_pid()").fetchone()[0]
    values = {"S": str(sentinel), "OUT": str(out), "OID": str(oid), "T": TABLE, "SCHEMA": SCHEMA, "PID": str(pid),
              "CHANNEL": CHANNEL, "DSN": f"host={postgres_server.host} port={postgres_server.port} dbname=test "
              f"user={postgres_server.user}"}
    yield {"server": postgres_server, "admin": admin, "listener": listener, "sibling": sibling, "sentinel": sentinel,
           "out": out, "oid": oid, "values": values, "before": _state(admin, sentinel, oid)}
    for connection in (listener, sibling):
        connection.close()
    admin.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    admin.execute(f"DROP ROLE nexus_victim_{RUN}")
    admin.execute("SELECT lo_unlink(%s)", (oid,))
    admin.close()
    shutil.rmtree(root, ignore_errors=True)


def _state(admin, sentinel: Path, oid: int) -> dict:
    """What no attack may change, read by the superuser and from the file system."""
    return {
        "table": admin.execute(
            f"SELECT count(*), md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM {TABLE}"
        ).fetchone(),
        "large_object": bytes(admin.execute("SELECT lo_get(%s)", (oid,)).fetchone()[0]),
        "large_objects": admin.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0],
        "tables_in_schema": admin.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (SCHEMA,)
        ).fetchone()[0],
        "stats_reset": admin.execute(
            "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0],
        "file": hashlib.sha256(sentinel.read_bytes()).hexdigest(),
    }


@pytest.fixture(scope="module", params=[True, False], ids=["validator-on", "validator-off"])
def gateway(request, world, tmp_path_factory):
    # One pooled connection: a setting an attack leaves behind would meet the next query.
    spec = SourceSpec("pgsrc", "postgres", world["server"].options(pool_size=1))
    config = ServerSettings(port=0, data_dir=tmp_path_factory.mktemp("damage"), demo_scale=None,
                            validate_sql=request.param)
    gw = Gateway(config, [spec]).start()
    connection = flightsql.connect(gw.location, autocommit=True)
    yield {"conn": connection, "validating": request.param, "answers": [], "location": gw.location}
    connection.close()
    gw.shutdown()


def attempt(gateway, sql: str, parameters=None) -> str:
    """Send one attack; return everything the client saw (rows or the error's text)."""
    cur = gateway["conn"].cursor()
    try:
        cur.execute(sql, parameters)
        seen = repr(cur.fetchall())
    except flightsql.Error as error:
        seen = str(error)
    finally:
        cur.close()
    gateway["answers"].append(seen)
    assert "Traceback" not in seen
    return seen


@pytest.mark.parametrize(("attack", "sql"), ATTACKS, ids=[a for a, _ in ATTACKS])
def test_attack(gateway, world, attack, sql):
    seen = attempt(gateway, sql.format(**world["values"]))
    if gateway["validating"]:
        assert "QV-0" in seen, seen  # the validator refused it, with its rule


def test_a_setting_switched_off_in_one_parameter_row_does_not_reach_the_next(gateway, world):
    """Two parameter rows in one execution: the first switches the session to read-write, the second writes."""
    sql = ("SELECT set_config('default_transaction_read_only', 'off', false) AS a, "
           "CASE WHEN ? = 2 THEN lo_from_bytea(0, '\\x706f776e6564') END AS b")
    with flight.connect(gateway["location"]) as client:
        try:
            prepared = raw.prepare(client, sql)
        except (flight.FlightError, pa.ArrowException) as error:
            assert gateway["validating"] and "QV-00" in str(error), error  # set_config or lo_from_bytea
            return
        handle = prepared.prepared_statement_handle
        schema = raw.read_schema(prepared.parameter_schema)
        descriptor = raw.descriptor(pb.CommandPreparedStatementQuery(prepared_statement_handle=handle))
        writer, _ = client.do_put(descriptor, schema)
        writer.write_batch(pa.record_batch([pa.array([1, 2], schema.field(0).type)], schema=schema))
        writer.done_writing()
        writer.close()
        _, table = raw.info_and_table(client, pb.CommandPreparedStatementQuery(prepared_statement_handle=handle))
    assert table.num_rows == 2  # both rows ran; the large object of the second is rolled back (test_no_damage)
    gateway["answers"].append(repr(table.to_pylist()))


def test_no_damage(gateway, world):
    admin, server = world["admin"], world["server"]
    assert wait_until(lambda: admin.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0] == 0)
    assert _state(admin, world["sentinel"], world["oid"]) == world["before"]
    assert world["before"]["table"][0] == 2 and world["before"]["large_object"] == LO_SECRET.encode()
    assert os.listdir(world["out"]) == []  # nothing written on the database host
    assert list(world["listener"].notifies(timeout=0.2, stop_after=1)) == []
    assert world["sibling"].execute("SELECT 1").fetchone() == (1,)  # the same role's other session lives
    answers = "\n".join(gateway["answers"])
    for secret in (FILE_SECRET, LO_SECRET, ACTIVITY_SECRET, "SCRAM-SHA-256$", "md5", str(server.root)):
        assert secret not in answers, secret
    after = attempt(gateway, "SELECT current_setting('default_transaction_read_only') AS ro, "
                             "current_setting('search_path') AS sp")
    assert after == repr([("on", "public")])  # the source's search_path, as every connection starts with it
    write = attempt(gateway, f"DELETE FROM {TABLE}")
    assert "read-only" in write or "permission denied" in write or "QV-002" in write
