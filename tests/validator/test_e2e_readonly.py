"""The read-only promise end to end: both corpora through the real ADBC Flight SQL client.

Every DuckDB attack is sent to the running demo gateway; each must be refused with its rule id and the gRPC
status of its error class, and afterwards the demo database file, a sentinel file the attacks aim at and an
output directory they try to write to must be exactly as before. Every legitimate DuckDB query must return
rows. A second gateway with the validator switched off shows DuckDB's connection-level defence refusing the
writes and file access on its own.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pytest
from adbc_driver_manager import AdbcStatusCode

from nexus_flight.core.errors import ReadOnlyViolationError
from nexus_flight.server.query.sql.rules import RULES
from tests.validator.corpus import DUCKDB_ATTACKS, DUCKDB_LEGIT, POSTGRES_ATTACKS

SENTINEL_TEXT = "id,secret\n1,do-not-read\n"

# The ADBC driver passes SQL as a C string: text after a NUL never leaves the client, and an empty query is
# refused before it is sent. Those attacks are covered by the validator's unit tests.
_SENT = [(rule, sql) for rule, sql in DUCKDB_ATTACKS if sql.strip(" ;") and "\x00" not in sql]


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    """A sentinel file the attacks read or overwrite, and an empty directory they try to write into."""
    root = tmp_path_factory.mktemp("attack-targets")
    sentinel = root / "sentinel.csv"
    sentinel.write_text(SENTINEL_TEXT)
    out = root / "out"
    out.mkdir()
    return sentinel, out


def fill(sql: str, target) -> str:
    sentinel, out = target
    return sql.replace("{SENTINEL}", str(sentinel)).replace("{OUT}", str(out))


def fingerprint(directory: Path) -> dict[str, tuple[int, str]]:
    """Every file under a directory with its size and SHA-256, but the queries' scratch folder (``spill``)."""
    found = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.relative_to(directory).parts[0] != "spill":
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path.relative_to(directory))] = (path.stat().st_size, digest)
    return found


def data_checksum(conn) -> list[tuple]:
    """Row counts and a content hash of every demo table, read through the gateway."""
    cur = conn.cursor()
    rows = []
    for table in ("customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"):
        cur.execute(f"SELECT count(*), sum(hash(t)) FROM {table} AS t")
        rows.append((table, *cur.fetchone()))
    cur.execute("SELECT count(*) FROM information_schema.tables")
    rows.append(("tables", *cur.fetchone()))
    cur.close()
    return rows


@pytest.fixture(scope="module")
def conn(gateway):
    connection = flightsql.connect(gateway.location, autocommit=True)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def before(conn, demo_data_dir, target):
    """The state the attacks must leave untouched, taken before the first one."""
    sentinel, out = target
    return {
        "data": data_checksum(conn),
        "files": fingerprint(demo_data_dir),
        "sentinel": (sentinel.read_text(), sentinel.stat().st_mtime_ns),
        "out": sorted(os.listdir(out)),
    }


def refusal(conn, sql: str, parameters=None):
    cur = conn.cursor()
    try:
        with pytest.raises(flightsql.Error) as caught:
            cur.execute(sql, parameters)
            cur.fetch_arrow_table()
    finally:
        cur.close()
    return caught.value


def test_enough_attacks_are_sent():
    assert len(_SENT) >= 150


@pytest.mark.parametrize(("rule", "sql"), _SENT, ids=lambda v: repr(v)[:50])
def test_attack_is_refused_through_flight_sql(conn, before, target, rule, sql):
    error = refusal(conn, fill(sql, target))
    text = str(error)
    assert f"{rule}: " in text, text
    assert "Traceback" not in text and 'File "' not in text
    if issubclass(RULES[rule].error, ReadOnlyViolationError):
        assert error.status_code == AdbcStatusCode.UNAUTHORIZED, text
        assert "PermissionDenied" in text
    else:
        assert error.status_code == AdbcStatusCode.INVALID_ARGUMENT, text


@pytest.fixture(scope="module")
def postgres_session(gateway):
    """A connection whose session writes PostgreSQL: the gateway transpiles to DuckDB for the demo."""
    connection = flightsql.connect(
        gateway.location, db_kwargs={"adbc.flight.sql.rpc.with_cookie_middleware": "true"}, autocommit=True
    )
    connection.adbc_connection.set_options(**{"adbc.flight.sql.session.option.dialect": "postgres"})
    yield connection
    connection.close()


@pytest.mark.parametrize(("rule", "sql"), POSTGRES_ATTACKS, ids=lambda v: repr(v)[:50])
def test_postgres_dialect_attack_is_refused_through_flight_sql(postgres_session, before, target, rule, sql):
    text = str(refusal(postgres_session, fill(sql, target)))
    assert f"{rule}: " in text, text


POSTGRES_LEGIT = [
    ("SELECT to_char(DATE '1995-01-01', 'YYYY') AS y", None),
    ("SELECT n_name::text FROM demo.main.nation WHERE n_nationkey = $1", [3]),
    ("SELECT n_name FROM nation WHERE n_name ILIKE 'c%' AND n_regionkey = ?", [1]),
    ("SELECT DISTINCT ON (n_regionkey) n_regionkey, n_name FROM nation ORDER BY n_regionkey, n_name", None),
    ("SELECT string_agg(r_name, ',') FROM region", None),
    ("SELECT date_trunc('month', o_orderdate) + INTERVAL '1 day' FROM orders LIMIT 3", None),
    ("SELECT EXTRACT(YEAR FROM o_orderdate)::int AS y, count(*) FROM orders GROUP BY 1 ORDER BY 1", None),
    ("SELECT generate_series(1, 3) AS n", None),
]


@pytest.mark.parametrize(("sql", "parameters"), POSTGRES_LEGIT, ids=lambda v: repr(v)[:50])
def test_postgres_dialect_query_returns_rows(postgres_session, sql, parameters):
    cur = postgres_session.cursor()
    try:
        cur.execute(sql, parameters)
        assert cur.fetch_arrow_table().num_rows > 0
    finally:
        cur.close()


def test_nothing_changed_after_the_attacks(conn, before, demo_data_dir, target):
    sentinel, out = target
    assert data_checksum(conn) == before["data"]
    assert fingerprint(demo_data_dir) == before["files"]
    assert (sentinel.read_text(), sentinel.stat().st_mtime_ns) == before["sentinel"]
    assert sorted(os.listdir(out)) == before["out"] == []


@pytest.mark.parametrize("sql", DUCKDB_LEGIT, ids=lambda v: repr(v)[:50])
def test_legitimate_query_returns_rows(conn, sql):
    cur = conn.cursor()
    try:
        cur.execute(sql, [1] if "?" in sql else None)
        table = cur.fetch_arrow_table()
    finally:
        cur.close()
    assert table.num_columns > 0
    assert table.num_rows > 0


# -- the second line of defence, alone -----------------------------------------------------------------

#: Writes and file access DuckDB itself must refuse when the validator lets everything through.
UNGUARDED = [
    "DELETE FROM nation",
    "UPDATE nation SET n_name = 'X'",
    "INSERT INTO nation VALUES (99, 'ATLANTIS', 1, 'x')",
    "CREATE TABLE t AS SELECT 1 AS a",
    "DROP TABLE nation",
    "ALTER TABLE nation ADD COLUMN x INTEGER",
    "SELECT 1; DELETE FROM nation",
    "WITH x AS (DELETE FROM nation RETURNING *) SELECT * FROM x",
    "COPY nation TO '{OUT}/nation.csv'",
    "COPY nation FROM '{SENTINEL}'",
    "EXPORT DATABASE '{OUT}/export'",
    "SELECT * FROM read_csv('{SENTINEL}')",
    "SELECT * FROM read_text('{SENTINEL}')",
    "SELECT * FROM glob('{OUT}/*')",
    "SELECT * FROM '{SENTINEL}'",
    "ATTACH '{OUT}/evil.db' AS evil",
    "ATTACH ':memory:' AS scratch",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "PRAGMA threads = 1",
    "SELECT getenv('HOME')",
]


def test_connection_level_defence_with_the_validator_off(make_gateway, demo_data_dir, target):
    gateway = make_gateway(validate_sql=False)
    sentinel, out = target
    files = fingerprint(demo_data_dir)
    stamp = sentinel.stat().st_mtime_ns
    with flightsql.connect(gateway.location, autocommit=True) as connection:
        data = data_checksum(connection)
        for sql in UNGUARDED:
            text = str(refusal(connection, fill(sql, target)))
            assert "QV-" not in text, text  # the validator is off: DuckDB refused it
            assert "[duckdb]" in text, text
        assert data_checksum(connection) == data
    assert fingerprint(demo_data_dir) == files
    assert sentinel.read_text() == SENTINEL_TEXT and sentinel.stat().st_mtime_ns == stamp
    assert os.listdir(out) == []


def test_validator_off_still_serves_queries(make_gateway):
    gateway = make_gateway(validate_sql=False)
    with flightsql.connect(gateway.location, autocommit=True) as connection:
        cur = connection.cursor()
        cur.execute("SELECT count(*) FROM demo.main.nation")
        assert cur.fetchone()[0] == 25
        cur.close()
