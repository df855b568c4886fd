"""Row filters and column masks against real engines: DuckDB, SQLite and PostgreSQL behind one gateway.

Every answer is compared with the engine's own: the gateway's answer to a query under the policies equals the
engine's answer (through its own client) to the filtered query written by hand, and equals, through the gateway,
an administrator's answer to that hand-written query (names and Arrow types too).
"""

from __future__ import annotations

from decimal import Decimal

import pyarrow.flight as flight
import pytest

from tests.security.policy_world import ENGINES, SCHEMA, build, visible


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_data_dir, postgres_server):
    instance = build(tmp_path_factory.mktemp("policies"), demo_data_dir, postgres_server, "answers")
    yield instance
    instance.close()


def normal(rows):
    """Rows in a comparable form: numbers as exact text (SQLite keeps 70000.00 as an integer), sorted."""
    def value(v):
        if isinstance(v, Decimal | float | int) and not isinstance(v, bool):
            return f"{Decimal(str(v)):.2f}"
        return v
    return sorted((tuple(value(v) for v in row) for row in rows), key=repr)


def rows_of(table):
    return [tuple(r.values()) for r in table.to_pylist()]


HAND_WRITTEN = "SELECT id, name, region, salary, NULL AS ssn FROM staff WHERE region = 'EU'"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_filtered_and_masked_table_answers_like_the_hand_written_query(world, engine):
    got = world.run(f"SELECT * FROM {engine}.{SCHEMA[engine]}.staff")
    names, expected = world.engine(engine, HAND_WRITTEN, truth=False)
    assert got.column_names == names == ["id", "name", "region", "salary", "ssn"]
    assert normal(rows_of(got)) == normal(expected) == normal(visible())
    admin = world.run(f"SELECT id, name, region, salary, CAST(NULL AS VARCHAR(20)) AS ssn "
                      f"FROM {engine}.{SCHEMA[engine]}.staff WHERE region = 'EU'", user="alice")
    assert got.schema == admin.schema  # the mask is NULL of the column's own type
    assert got.sort_by("id").equals(admin.sort_by("id"))


@pytest.mark.parametrize("engine", ENGINES)
def test_an_unmask_role_sees_raw_values_of_its_rows_and_an_admin_everything(world, engine):
    table = f"{engine}.{SCHEMA[engine]}.staff"
    carol = world.run(f"SELECT * FROM {table}", user="carol")
    _, expected = world.engine(engine, "SELECT * FROM staff WHERE region = 'EU'", truth=False)
    assert normal(rows_of(carol)) == normal(expected) == normal(visible(unmask=True))
    alice = world.run(f"SELECT * FROM {table}", user="alice")
    _, everything = world.engine(engine, "SELECT * FROM staff", truth=False)
    assert normal(rows_of(alice)) == normal(everything) and len(everything) == 6


@pytest.mark.parametrize("engine", ENGINES)
def test_attribute_values_are_literals_never_sql(world, engine):
    assert world.run(f"SELECT * FROM {engine}.{SCHEMA[engine]}.staff", user="quinn").num_rows == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_a_user_without_the_attribute_is_refused_naming_it(world, engine):
    with pytest.raises(flight.FlightUnauthorizedError, match="needs the user attribute 'region'"):
        world.run(f"SELECT id FROM {engine}.{SCHEMA[engine]}.staff", user="nora")


@pytest.mark.parametrize("engine", ENGINES)
def test_tables_without_policies_are_untouched(world, engine):
    got = world.run(f"SELECT * FROM {engine}.{SCHEMA[engine]}.depts")
    _, expected = world.engine(engine, "SELECT * FROM depts", truth=False)
    assert normal(rows_of(got)) == normal(expected)
