"""The least-privilege login a MySQL-family source should use, as the README tells users to create it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

READER = "nexus_reader"
READER_PASSWORD = "Reader-Pass-42"


def reader_statements(database: str) -> list[str]:
    """The statements a user runs (README, "Read-only, twice"): a login that can only read one database."""
    return [
        f"CREATE USER IF NOT EXISTS '{READER}'@'%' IDENTIFIED BY '{READER_PASSWORD}'",
        f"GRANT SELECT, SHOW VIEW ON `{database}`.* TO '{READER}'@'%'",
    ]


def ensure_reader(server, database: str) -> dict:
    """Create the reader on ``server`` (idempotent) with SELECT on ``database``; return a source's options."""
    con = server.connect()
    try:
        with con.cursor() as cur:
            for statement in reader_statements(database):
                cur.execute(statement)
    finally:
        con.close()
    return server.options(database, username=READER)


def reader_spec(server, database: str, name: str = "mysrc", **options):
    """A ``mysql`` SourceSpec that logs in as the reader."""
    from nexus_flight.core.source import SourceSpec

    return SourceSpec(name, "mysql", {**ensure_reader(server, database), **options}, {"password": READER_PASSWORD})


def fresh_database(server, database: str, ddl: list[str]) -> dict:
    """``database`` made anew on ``server`` by ``ddl`` (as root), and the reader's options for it."""
    with server.connect() as con, con.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {database}")
        cur.execute(f"CREATE DATABASE {database}")
        cur.execute(f"USE {database}")
        for statement in ddl:
            cur.execute(statement)
    return ensure_reader(server, database)


def engine_answer(server, database: str, sql: str) -> tuple[list[str], list[tuple]]:
    """The server's own answer to ``sql`` in ``database`` (as root, through pymysql): column names and rows."""
    with server.connect(database) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]


@contextmanager
def global_sql_mode(server, mode: str) -> Iterator[None]:
    """The server's global ``sql_mode`` (what new connections start with) set to ``mode`` for the block."""
    with server.connect() as con, con.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.sql_mode")
        (before,) = cur.fetchone()
        cur.execute("SET GLOBAL sql_mode = %s", (mode,))
        try:
            yield
        finally:
            cur.execute("SET GLOBAL sql_mode = %s", (before,))
