"""The ``system`` catalog reads only what a query needs of the history and the audit trail, and no less.

Each answer of the system backend (which narrows the history it reads from the query's own WHERE,
``catalog/system_pushdown.py``) is compared with DuckDB's answer to the same query over the whole tables, on both
catalog databases (SQLite compares stored timestamps as text, PostgreSQL as timestamps): the narrowing may only
ever drop rows the query would drop. The queries include every shape the narrowing must leave alone, and a
generated set mixing bounds, equalities, OR, NOT, joins and subqueries.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
import sqlglot

from nexus_flight.catalog import system_tables
from nexus_flight.catalog.audit import AuditLog, AuditRecord
from nexus_flight.catalog.history import QueryRecord, QueryRecorder
from nexus_flight.catalog.system_backend import SystemBackend
from nexus_flight.catalog.system_tables import LOG_TABLES, SYSTEM_TABLES
from nexus_flight.core.errors import LimitExceededError
from nexus_flight.core.plan import plan_sql
from nexus_flight.core.reading import reading_for
from nexus_flight.core.source import QueryLimits

#: A fixed point the history is written around: literals in the queries name times relative to it.
T0 = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
USERS = ("alice", "bob", "carol")
STATUSES = ("success", "error", "rejected")


@pytest.fixture
def history(store):
    """120 queries an hour apart before T0 plus 30 in the last minutes (``now()`` bounds), and audit events."""
    now = datetime.now(UTC)
    records = [QueryRecord(f"SELECT {i}", STATUSES[i % 3], source="ab"[i % 2], user=USERS[i % 3],
                           created_at=T0 - timedelta(hours=i)) for i in range(120)]
    records += [QueryRecord(f"SELECT 'recent {i}'", "success", source="a", user=USERS[i % 3],
                            created_at=now - timedelta(minutes=i)) for i in range(30)]
    # Ties at the edge of "the newest two": the second and third newest share their time to the microsecond.
    records += [QueryRecord(f"SELECT 'tie {i}'", "success", source="a", user="tie",
                            created_at=T0 - timedelta(hours=(0, 1, 1, 2)[i])) for i in range(4)]
    QueryRecorder(store).write_many(records)
    log = AuditLog(store, background=False)
    log.write_many([AuditRecord("auth_failure", actor=USERS[i % 3], created_at=T0 - timedelta(minutes=7 * i))
                    for i in range(40)])
    return store


def _ts(hours: float) -> str:
    return f"TIMESTAMPTZ '{(T0 - timedelta(hours=hours)).isoformat()}'"


QUERIES = [
    f"SELECT id FROM query_history WHERE created_at >= {_ts(10)}",
    f"SELECT id FROM query_history WHERE created_at > {_ts(10)}",  # the boundary row, to the microsecond
    f"SELECT id FROM query_history WHERE {_ts(10)} < created_at",
    f"SELECT id FROM query_history WHERE created_at BETWEEN {_ts(30)} AND {_ts(5)}",
    "SELECT id FROM query_history WHERE created_at >= now() - INTERVAL 10 MINUTE",
    "SELECT id FROM query_history WHERE created_at > date_trunc('day', now())",
    "SELECT id FROM query_history WHERE created_at >= current_date - 1",
    "SELECT id FROM query_history WHERE created_at >= TIMESTAMP '2026-11-29 00:00:00'",
    "SELECT id FROM query_history WHERE created_at >= '2026-11-29 06:00:00+00'",
    "SELECT id FROM query_history WHERE user_name = 'bob' AND status = 'error'",
    "SELECT id FROM query_history h WHERE h.user_name = 'bob' AND h.created_at >= now() - INTERVAL 1 HOUR",
    "SELECT count(*) FROM query_history WHERE source_name = 'a' AND sql_sha256 <> ''",
    # shapes the narrowing must leave alone (or narrow only where safe)
    f"SELECT id FROM query_history WHERE created_at >= {_ts(10)} OR user_name = 'bob'",
    f"SELECT id FROM query_history WHERE NOT (created_at >= {_ts(10)})",
    f"SELECT id FROM query_history WHERE created_at <= {_ts(10)}",
    "SELECT id FROM query_history WHERE created_at >= now() - to_hours(length(user_name) * 20)",
    "SELECT id FROM query_history WHERE created_at >= (SELECT max(created_at) FROM audit_events)",
    f"SELECT a.id FROM query_history a JOIN query_history b ON a.id = b.id WHERE a.created_at >= {_ts(3)}",
    f"SELECT id FROM query_history WHERE created_at >= {_ts(3)} UNION ALL SELECT id FROM query_history",
    f"WITH query_history AS (SELECT 'x' AS id, TIMESTAMPTZ '2000-01-01' AS created_at) "
    f"SELECT id FROM query_history WHERE created_at >= {_ts(3)}",
    "SELECT * FROM query_history AS h(x, user_name) WHERE user_name = 'bob'",
    "SELECT count(*) FROM query_history WHERE user_name = 'bob' USING SAMPLE reservoir(5 ROWS) REPEATABLE (42)",
    f"SELECT h.id FROM query_history h, audit_events e WHERE h.user_name = e.actor AND e.kind = 'auth_failure' "
    f"AND h.created_at >= {_ts(2)}",
    f"SELECT id FROM (SELECT * FROM query_history WHERE created_at >= {_ts(20)}) WHERE user_name = 'carol'",
    f"SELECT s.name, (SELECT count(*) FROM query_history q WHERE q.source_name = s.name AND "
    f"q.created_at >= {_ts(24)}) AS n FROM sources s",
    "SELECT id FROM query_history WHERE status = 'success' AND user_name = ?",
    "SELECT id FROM query_history WHERE created_at >= ?",
    "SELECT count(*) FROM audit_events WHERE kind = 'auth_failure' "
    "AND created_at > TIMESTAMPTZ '2026-11-30 10:00:00+00'",
    "SELECT count(*) FROM query_history WHERE user_name = 'BOB'",
    "SELECT id FROM query_history WHERE status IN ('error', 'rejected') AND user_name IN ('bob')",
    "SELECT id FROM query_history WHERE status NOT IN ('error', 'rejected')",
    "SELECT id FROM query_history WHERE user_name IN (SELECT actor FROM audit_events)",
    # the newest rows: ORDER BY created_at DESC with a LIMIT
    "SELECT id, created_at FROM query_history ORDER BY created_at DESC LIMIT 5",
    "SELECT id FROM query_history ORDER BY created_at DESC LIMIT 5 OFFSET 3",
    "SELECT id FROM query_history WHERE user_name = 'bob' ORDER BY created_at DESC LIMIT 4",
    "SELECT id FROM query_history WHERE user_name = 'tie' ORDER BY created_at DESC, id DESC LIMIT 2",
    "SELECT id FROM query_history WHERE user_name = 'tie' ORDER BY created_at DESC, id ASC LIMIT 2",
    "SELECT id FROM query_history WHERE user_name <> 'bob' ORDER BY created_at DESC LIMIT 4",
    "SELECT id FROM query_history ORDER BY created_at ASC LIMIT 3",
    "SELECT user_name, count(*) OVER () AS n FROM query_history ORDER BY created_at DESC LIMIT 3",
    "SELECT max(id) FROM query_history ORDER BY max(created_at) DESC LIMIT 1",
    "SELECT id FROM query_history ORDER BY created_at DESC LIMIT 0",
    "SELECT * FROM (SELECT id, user_name FROM query_history ORDER BY created_at DESC LIMIT 6) WHERE user_name = 'bob'",
    "SELECT id FROM query_history q ORDER BY q.created_at DESC LIMIT 3",
]


def _generated(count: int, seed: int = 7) -> list[str]:
    """Random mixes of bounds, equalities, OR, NOT, joins and subqueries over the history."""
    rng = random.Random(seed)
    terms = [lambda: f"created_at {rng.choice(['>', '>=', '<', '<=', '='])} {_ts(rng.randint(0, 130))}",
             lambda: f"user_name {rng.choice(['=', '<>'])} '{rng.choice(USERS)}'",
             lambda: f"status = '{rng.choice(STATUSES)}'",
             lambda: "created_at >= now() - INTERVAL 5 MINUTE",
             lambda: f"source_name = '{rng.choice('abc')}'"]
    queries = []
    for _ in range(count):
        parts = [rng.choice(terms)() for _ in range(rng.randint(1, 4))]
        where = parts[0]
        for part in parts[1:]:
            where = f"{where} {rng.choice(['AND', 'AND', 'OR'])} {'NOT ' if rng.random() < 0.15 else ''}({part})"
        shape = rng.choice([
            "SELECT id FROM query_history WHERE {w}",
            "SELECT q.id FROM query_history q WHERE {w}",
            "SELECT id FROM (SELECT * FROM query_history WHERE {w}) t",
            "SELECT q.id FROM query_history q JOIN (SELECT name FROM sources) s ON s.name = q.source_name WHERE {w}",
            "SELECT id FROM query_history WHERE {w} EXCEPT SELECT id FROM query_history WHERE user_name = 'bob'",
        ])
        query = shape.format(w=where)
        if "EXCEPT" not in query and rng.random() < 0.4:
            query += f" ORDER BY {'q.' if 'q.id' in query else ''}created_at DESC LIMIT {rng.randint(1, 40)}"
        queries.append(query)
    return queries


def _run(backend: SystemBackend, sql: str, parameters=None) -> list:
    execution = backend.execute(plan_sql(sql, "duckdb", "system"), parameters, QueryLimits(timeout_seconds=30))
    try:
        return sorted(map(repr, execution.reader.read_all().to_pylist()))
    finally:
        execution.close()


def _engine(store, sql: str, parameters=None, user: str | None = None) -> list:
    """DuckDB's own answer over the whole tables (one user's history rows alone, for a user), in UTC as the gateway."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'Etc/UTC'")
        for name, build in SYSTEM_TABLES.items():
            table = system_tables.query_history_table(store, user) if name == "query_history" else build(store)
            con.register(name, table)
        return sorted(map(repr, con.execute(sql, parameters).to_arrow_table().to_pylist()))


def test_every_answer_is_the_engines_over_the_whole_tables(history):
    """All queries on one catalog (one history each: writing it is most of the time), every mismatch listed."""
    mismatches = []
    with SystemBackend(history) as backend:
        for sql in QUERIES + _generated(60):
            parameters = ([["bob"]] if sql.endswith("user_name = ?") else [[T0 - timedelta(hours=4)]] if "?" in sql
                          else None)
            if _run(backend, sql, parameters) != _engine(history, sql, parameters[0] if parameters else None):
                mismatches.append(sql)
    assert mismatches == []


def test_a_users_own_rows_stay_their_own_when_narrowed(history):
    with SystemBackend(history) as backend, reading_for("bob"):
        mismatches = [sql for sql in QUERIES[:12] if _run(backend, sql) != _engine(history, sql, user="bob")]
    assert mismatches == []


def test_only_the_tables_a_query_names_are_read(history, monkeypatch):
    read: list[str] = []
    original = system_tables.log_table

    def noted(store, table, *args, **kwargs):
        read.append(table.name)
        return original(store, table, *args, **kwargs)

    monkeypatch.setattr(system_tables, "log_table", noted)
    with SystemBackend(history) as backend:
        _run(backend, "SELECT name FROM sources")
        backend.get_schema(plan_sql("SELECT * FROM query_history JOIN audit_events ON true", "duckdb", "system"))
        assert read == []
        _run(backend, "SELECT count(*) FROM audit_events")
        assert read == ["audit_events"]


def test_a_query_past_the_row_limit_is_refused_until_narrowed(history):
    """154 history rows, a limit of 100: the whole history is refused; the last hour and the newest ten are not."""
    with SystemBackend(history, max_log_rows=100) as backend:
        with pytest.raises(LimitExceededError, match=r"read 154 rows.*system_table_rows=100.*created_at"):
            _run(backend, "SELECT count(*) FROM query_history")
        for sql in ("SELECT count(*) AS n FROM query_history WHERE created_at >= now() - INTERVAL 1 HOUR",
                    "SELECT sql_text, status FROM query_history ORDER BY created_at DESC LIMIT 10"):
            assert _run(backend, sql) == _engine(history, sql)
    assert LOG_TABLES["query_history"].count(history) == 154


def test_through_adbc_the_limit_is_named_and_a_narrowed_query_answers(history, tmp_path):
    import adbc_driver_flightsql.dbapi as flightsql

    from nexus_flight.catalog.directory import CatalogSourceDirectory
    from nexus_flight.core.settings import ServerSettings
    from nexus_flight.server.app.gateway import Gateway

    path = tmp_path / "sales.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    history.add_source("sales", "duckdb", {"path": str(path)})
    directory = CatalogSourceDirectory(history, default="sales", refresh_seconds=0, system_table_rows=100)
    gateway = Gateway(ServerSettings(port=0, data_dir=tmp_path, demo_scale=None), sources=directory).start()
    narrowed = ("SELECT user_name, count(*) AS n FROM query_history "
                "WHERE created_at >= now() - INTERVAL 1 HOUR GROUP BY user_name ORDER BY user_name")
    try:
        with flightsql.connect(gateway.location, autocommit=True) as conn:
            conn.adbc_current_catalog = "system"
            with conn.cursor() as cur:
                with pytest.raises(flightsql.ProgrammingError, match=r"read 154 rows.*system_table_rows=100"):
                    cur.execute("SELECT count(*) FROM query_history")
                    cur.fetchall()  # the snapshot is read when the query runs (DoGet)
                cur.execute(narrowed)
                got = cur.fetch_arrow_table().to_pylist()
    finally:
        gateway.shutdown()
    assert sorted(map(repr, got)) == _engine(history, narrowed)


def test_garbled_statements_narrow_nothing_and_never_raise():
    """Statements cut and spliced at random (what a fuzzer sends): the narrowing answers or declines, never fails."""
    from nexus_flight.catalog.system_pushdown import pushed_down

    rng = random.Random(11)
    pieces = " ".join(QUERIES + _generated(40)).split()
    tables = {name: log.table for name, log in LOG_TABLES.items()}
    with duckdb.connect() as con:
        def constant(expression):
            try:
                return con.execute(f"SELECT CAST(({expression}) AS TIMESTAMPTZ)").fetchone()[0]
            except duckdb.Error:
                return None

        for _ in range(1500):
            start = rng.randrange(len(pieces))
            sql = " ".join(pieces[start:start + rng.randint(3, 40)])
            if rng.random() < 0.5:
                sql = "SELECT * FROM query_history WHERE " + sql
            try:
                tree = sqlglot.parse_one(sql, read="duckdb")
            except sqlglot.errors.SqlglotError:
                tree = None
            assert isinstance(pushed_down(tree, tables, constant), dict)
