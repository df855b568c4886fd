"""Grants and policies on a MariaDB whose own sql_mode reads quotes otherwise: ANSI_QUOTES and NO_BACKSLASH_ESCAPES.

Grants and policies read a statement's tables and columns from the validator's tree. Were the server to read a
statement otherwise, what the tree does not show would be read without its grant or policy: ``"secret"`` a string
to the tree and a column to a server in ANSI_QUOTES, or ``'a\\', secret FROM cols -- '`` one string to the tree and a
column of a table to a server in NO_BACKSLASH_ESCAPES. The sources' sessions set the mode the gateway reads in,
whatever the server's own (``backends/mysql.py``). bob holds the column ``Name`` of ``cols`` and the table ``staff``,
whose rows are filtered to his region (ASIA) and whose ``ssn`` is masked. The gateway, catalog and MariaDB are real.
"""

from __future__ import annotations

import pyarrow.flight as flight
import pytest

from tests.security.conftest import BOB_PASSWORD, module_store, query_as, serving_catalog
from tests.support.mysql_reader import READER_PASSWORD, engine_answer, fresh_database, global_sql_mode

DATABASE = "grant_modes"
DDL = [
    "CREATE TABLE cols (id int, Name varchar(20), secret varchar(20))",
    "INSERT INTO cols VALUES (1, 'shown', 'hidden')",
    "CREATE TABLE staff (id int, region varchar(10), ssn varchar(11))",
    "INSERT INTO staff VALUES (1, 'ASIA', '111-11-1111'), (2, 'EUROPE', '222-22-2222')",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_data_dir, mariadb_server):
    from nexus_flight.catalog.grants import add_grant
    from nexus_flight.catalog.policies import PolicySpec, add_policy

    options = fresh_database(mariadb_server, DATABASE, DDL)
    # The gateway's connections start so.
    with global_sql_mode(mariadb_server, "ANSI_QUOTES,NO_BACKSLASH_ESCAPES"), \
            module_store(tmp_path_factory.mktemp("maria-modes") / "data") as store:
        store.add_source("maria", "mariadb", options, {"password": READER_PASSWORD})
        add_grant(store, "analyst", "maria", DATABASE, "cols", columns=["Name"])
        add_grant(store, "analyst", "maria", DATABASE, "staff")
        staff = f"maria.{DATABASE}.staff"
        add_policy(store, PolicySpec("asia-only", "row_filter", staff, expression="region = {user.region}"))
        add_policy(store, PolicySpec("mask-ssn", "column_mask", staff, column="ssn", expression="'***'"))
        with serving_catalog(store, demo_data_dir, "maria", {"bob": BOB_PASSWORD}) as (client, tokens):
            yield {"client": client, "token": tokens["bob"], "server": mariadb_server}


def run(world, sql: str):
    return query_as(world["client"], world["token"], sql)


@pytest.mark.parametrize("sql", ['SELECT "secret" FROM cols', 'SELECT "Name" FROM "cols" WHERE "secret" = \'hidden\''])
def test_a_double_quoted_column_needs_its_grant(world, sql):
    with pytest.raises(flight.FlightUnauthorizedError, match="secret"):
        run(world, sql)


@pytest.mark.parametrize("reach", ["secret FROM cols", "ssn, region FROM staff"])
def test_a_backslash_escapes_a_quote_for_the_server_too(world, reach):
    got = run(world, f"SELECT 'a\\', {reach} -- ' AS t")
    assert got.to_pylist() == [{"t": f"a', {reach} -- "}]


def test_double_quoted_names_read_the_filtered_and_masked_rows(world):
    got = run(world, 'SELECT "id", "ssn", "region" FROM "staff" WHERE "region" <> \'EUROPE\' OR "ssn" LIKE \'2%\'')
    assert got.to_pylist() == [{"id": 1, "ssn": "***", "region": "ASIA"}]


def test_the_granted_column_in_double_quotes_answers_as_mariadb(world):
    got = run(world, 'SELECT "Name" FROM "cols"')
    assert (got.column_names, [tuple(r.values()) for r in got.to_pylist()]) == engine_answer(
        world["server"], DATABASE, "SELECT `Name` FROM `cols`")
