"""Tables that hand out another table's rows on a real MariaDB source: MERGE (and federated) tables.

bob's rows of ``staff`` (MyISAM) are filtered to his region. ``staff_all`` is a MERGE table over ``staff``: MariaDB
lists it as a base table, yet reading it reads ``staff``'s rows, so without a look at its engine it would hand bob
every region. The source's metadata (``information_schema.TABLES.ENGINE``) marks such tables as reading from
elsewhere: bob is refused naming it (directly and through a view), a policy on the MERGE table itself lets it be
read through that policy, and alice, an administrator, reads it as MariaDB answers. The gateway, catalog and MariaDB
are real (FEDERATED, CONNECT and SPIDER are not installed on the suite's MariaDB; they are listed the same way).
"""

from __future__ import annotations

import pyarrow.flight as flight
import pytest

from tests.security.conftest import (
    module_store,
    query_as,
    serving_region_filtered,
    sorted_rows,
)
from tests.support.mysql_reader import READER_PASSWORD, engine_answer, fresh_database

DATABASE = "policy_merge"
DDL = [
    "CREATE TABLE staff (id int, region varchar(10), salary decimal(10, 2)) ENGINE=MyISAM",
    "INSERT INTO staff VALUES (1, 'ASIA', 10.50), (2, 'EUROPE', 20.25), (3, 'ASIA', NULL)",
    "CREATE TABLE staff_all (id int, region varchar(10), salary decimal(10, 2)) ENGINE=MERGE UNION=(staff)",
    "CREATE TABLE staff_guarded (id int, region varchar(10), salary decimal(10, 2)) ENGINE=MERGE UNION=(staff)",
    "CREATE TABLE depts (region varchar(10), name varchar(20))",
    "INSERT INTO depts VALUES ('ASIA', 'Asia'), ('EUROPE', 'Europe')",
    "CREATE VIEW staff_all_v AS SELECT id, region FROM staff_all",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_data_dir, mariadb_server):
    options = fresh_database(mariadb_server, DATABASE, DDL)
    with module_store(tmp_path_factory.mktemp("maria-merge") / "data") as store:
        store.add_source("maria", "mariadb", options, {"password": READER_PASSWORD})
        filtered = (f"{DATABASE}.staff", f"{DATABASE}.staff_guarded")
        with serving_region_filtered(store, demo_data_dir, "maria", filtered) as served:
            client, tokens = served
            yield {"client": client, "tokens": tokens, "server": mariadb_server}


def run(world, sql: str, user: str = "bob"):
    return query_as(world["client"], world["tokens"][user], sql)


def engine(world, sql: str) -> tuple[list[str], list[tuple]]:
    """MariaDB's own answer, through pymysql."""
    return engine_answer(world["server"], DATABASE, sql)


@pytest.mark.parametrize("sql", [
    f"SELECT * FROM {DATABASE}.staff_all",
    f"SELECT id FROM {DATABASE}.staff_all WHERE region = 'EUROPE'",
    f"SELECT region FROM {DATABASE}.depts UNION SELECT region FROM {DATABASE}.staff_all",
])
def test_a_merge_table_over_a_filtered_table_is_refused(world, sql):
    with pytest.raises(flight.FlightUnauthorizedError) as info:
        run(world, sql)
    assert f"maria.{DATABASE}.staff_all is a foreign table" in str(info.value)


def test_a_view_over_a_merge_table_is_refused(world):
    with pytest.raises(flight.FlightUnauthorizedError) as info:
        run(world, f"SELECT * FROM {DATABASE}.staff_all_v")
    assert f"maria.{DATABASE}.staff_all_v is a view" in str(info.value)
    assert "staff_all" in str(info.value)


def test_a_merge_table_with_a_policy_of_its_own_is_read_through_it(world):
    got = run(world, f"SELECT id, region, salary FROM {DATABASE}.staff_guarded")
    names, expected = engine(world, "SELECT id, region, salary FROM staff WHERE region = 'ASIA'")
    assert got.column_names == names and sorted_rows(got) == sorted(expected, key=repr)


def test_the_open_table_still_answers_as_mariadb_does(world):
    got = run(world, f"SELECT * FROM {DATABASE}.depts")
    names, expected = engine(world, "SELECT * FROM depts")
    assert got.column_names == names and sorted_rows(got) == sorted(expected, key=repr)


def test_an_administrator_reads_the_merge_tables_as_mariadb_does(world):
    for table in ("staff_all", "staff_guarded", "staff_all_v"):
        names, expected = engine(world, f"SELECT * FROM {table}")
        got = run(world, f"SELECT * FROM {DATABASE}.{table}", user="alice")
        assert got.column_names == names, table
        assert sorted_rows(got) == sorted(expected, key=repr), table
