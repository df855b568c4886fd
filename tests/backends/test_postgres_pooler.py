"""PostgreSQL behind PgBouncer (Debian's 1.18), as many deployments run it: transaction pooling.

The gateway's connections carry their settings as startup options (read-only transactions, the source's
statement_timeout, standard_conforming_strings, search_path). PgBouncer refuses such a connection
("unsupported startup parameter: options", which reached clients as INTERNAL), and with the common
``ignore_startup_parameters = options`` it silently drops them: queries ran read-write, without the source's
timeout. Behind either, every transaction now sets them itself. The backend runs statements directly here: the
second line of defence is tested without the validator.
"""

from __future__ import annotations

import pytest

from nexus_flight.backends.postgres import PostgresBackend
from nexus_flight.core.errors import QueryTimeoutError, ReadOnlyViolationError
from nexus_flight.core.source import SourceSpec
from tests.support.results import run
from tests.support.servers import private_pgbouncer

SCHEMA = "nexus_pooler"


@pytest.fixture(scope="module", params=["refused", "dropped"])
def bouncer(request, postgres_server):
    """PgBouncer in transaction mode that refuses startup options, or one that drops them."""
    import psycopg

    with psycopg.connect(postgres_server.dsn(), autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        con.execute(f"CREATE SCHEMA {SCHEMA}")
        con.execute(f"CREATE TABLE {SCHEMA}.t AS SELECT g AS id, 'x\\y' || g AS s FROM generate_series(1, 5) g")
        con.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {postgres_server.reader}")
        con.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {postgres_server.reader}")
    with private_pgbouncer(postgres_server, ignore_startup_options=request.param == "dropped") as port:
        yield postgres_server, port


def _backend(bouncer, **options) -> PostgresBackend:
    server, port = bouncer
    return PostgresBackend(SourceSpec("pooled", "postgres", {**server.options(), "port": port, "pool_size": 2,
                                                             "search_path": SCHEMA, **options}))


def _direct(server, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(server.dsn(user=server.reader), autocommit=True) as con:
        return con.execute(sql).fetchall()


def test_answers_through_the_pooler_are_the_servers(bouncer):
    with _backend(bouncer) as backend:
        for _ in range(3):  # each pooled connection, each transaction
            got = run(backend, "SELECT id, s FROM t WHERE s LIKE 'x\\%' ORDER BY id")  # the search path; '\' is text
            assert [tuple(r.values()) for r in got.to_pylist()] == _direct(
                bouncer[0], f"SELECT id, s FROM {SCHEMA}.t WHERE s LIKE 'x\\%' ORDER BY id")
            got = run(backend, "SELECT id FROM t WHERE id > ? ORDER BY id", [[3]])
            assert got.column("id").to_pylist() == [4, 5]


def test_every_transaction_is_read_only_and_cannot_be_switched_back(bouncer):
    with _backend(bouncer, pool_size=1) as backend:
        for sql in (f"CREATE TABLE {SCHEMA}.hole (a int)", f"DELETE FROM {SCHEMA}.t",
                    "SELECT set_config('transaction_read_only', 'off', false)"):
            with pytest.raises(ReadOnlyViolationError):
                run(backend, sql)
        run(backend, "SELECT set_config('default_transaction_read_only', 'off', false)")
        with pytest.raises(ReadOnlyViolationError):  # the next borrower, the same connection
            run(backend, f"CREATE TABLE {SCHEMA}.hole (a int)")
        settings = run(backend, "SELECT current_setting('transaction_read_only') AS ro, "
                                "current_setting('standard_conforming_strings') AS scs").to_pylist()
        assert settings == [{"ro": "on", "scs": "on"}]
    assert _direct(bouncer[0], f"SELECT count(*) FROM {SCHEMA}.t") == [(5,)]


def test_the_sources_statement_timeout_is_the_servers_own(bouncer):
    with _backend(bouncer, statement_timeout_seconds=0.3) as backend:
        with pytest.raises(QueryTimeoutError) as info:
            run(backend, "SELECT pg_sleep(5)")
    assert "statement timeout" in info.value.message
