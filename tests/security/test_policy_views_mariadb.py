"""Views through a row filter on a real MariaDB source: its ``information_schema.VIEWS`` tells what each reads.

bob's rows of ``staff`` are filtered to his region; ``depts`` has no policy. A view over ``depts`` alone answers
what MariaDB itself answers (asked through pymysql); a view that reads ``staff`` (directly, through another view,
a join or a CTE named like the open table) or calls a function the validator refuses is refused naming why; alice, an
administrator, reads every view as MariaDB answers it. The gateway, catalog and MariaDB are real.
"""

from __future__ import annotations

from decimal import Decimal

import pyarrow.flight as flight
import pytest

from tests.security.conftest import (
    module_store,
    query_as,
    serving_region_filtered,
    sorted_rows,
)
from tests.support.mysql_reader import READER_PASSWORD, engine_answer, fresh_database

DATABASE = "policy_views"
DDL = [
    "CREATE TABLE staff (id int, region varchar(10), salary decimal(10, 2))",
    "INSERT INTO staff VALUES (1, 'ASIA', 10.50), (2, 'EUROPE', 20.25), (3, 'ASIA', NULL)",
    "CREATE TABLE depts (region varchar(10), name varchar(20))",
    "INSERT INTO depts VALUES ('ASIA', 'Asia'), ('EUROPE', 'Europe'), ('US', NULL)",
    "CREATE VIEW depts_v AS SELECT region, upper(name) AS name, CAST(1.5 AS DECIMAL(10, 2)) AS rate FROM depts",
    "CREATE VIEW depts_vv AS SELECT name, rate FROM depts_v WHERE region <> 'US'",
    "CREATE VIEW staff_v AS SELECT * FROM staff",
    "CREATE VIEW staff_vv AS SELECT id FROM staff_v",
    "CREATE VIEW depts_staff AS SELECT d.name, s.salary FROM depts d JOIN staff s ON s.region = d.region",
    "CREATE VIEW shadow_cte AS WITH depts AS (SELECT id, region FROM staff) SELECT * FROM depts",
    "CREATE VIEW depts_sleep AS SELECT region, sleep(0) AS s FROM depts",
]
OPEN = ("depts_v", "depts_vv")
REFUSED = {
    "staff_v": f"reading maria.{DATABASE}.staff, which has policies",
    "staff_vv": f"reading maria.{DATABASE}.staff (through maria.{DATABASE}.staff_v), which has policies",
    "depts_staff": f"reading maria.{DATABASE}.staff, which has policies",
    "shadow_cte": f"reading maria.{DATABASE}.staff, which has policies",
    "depts_sleep": "the definition of maria.policy_views.depts_sleep is refused by the read-only validator: QV-004",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_data_dir, mariadb_server):
    options = fresh_database(mariadb_server, DATABASE, DDL)
    with module_store(tmp_path_factory.mktemp("maria-views") / "data") as store:
        store.add_source("maria", "mariadb", options, {"password": READER_PASSWORD})
        with serving_region_filtered(store, demo_data_dir, "maria", (f"{DATABASE}.staff",)) as served:
            client, tokens = served
            yield {"client": client, "tokens": tokens, "server": mariadb_server}


def run(world, sql: str, user: str = "bob"):
    return query_as(world["client"], world["tokens"][user], sql)


def engine(world, sql: str) -> tuple[list[str], list[tuple]]:
    """MariaDB's own answer, through pymysql."""
    return engine_answer(world["server"], DATABASE, sql)


@pytest.mark.parametrize("view", OPEN)
def test_a_view_over_the_open_table_answers_as_mariadb_does(world, view):
    got = run(world, f"SELECT * FROM {DATABASE}.{view}")
    names, expected = engine(world, f"SELECT * FROM {view}")
    assert got.column_names == names
    assert sorted_rows(got) == sorted(expected, key=repr)
    assert Decimal("1.50") in got.column("rate").to_pylist()
    assert got.schema == run(world, f"SELECT * FROM {DATABASE}.{view}", user="alice").schema


@pytest.mark.parametrize("view", sorted(REFUSED))
def test_a_view_that_could_reach_the_filtered_table_is_refused(world, view):
    with pytest.raises(flight.FlightUnauthorizedError) as info:
        run(world, f"SELECT * FROM {DATABASE}.{view}")
    assert f"maria.{DATABASE}.{view} is a view" in str(info.value)
    assert REFUSED[view] in str(info.value)


def test_an_administrator_reads_every_view_as_mariadb_does(world):
    for view in (*OPEN, *REFUSED):
        names, expected = engine(world, f"SELECT * FROM {view}")
        got = run(world, f"SELECT * FROM {DATABASE}.{view}", user="alice")
        assert got.column_names == names, view
        assert sorted_rows(got) == sorted(expected, key=repr), view
