"""TPC-H 1-22, everyday query shapes and bound parameters: the gateway's answer is the engine's own answer."""

from __future__ import annotations

import pytest

from tests.differential.harness import assert_same_answer, is_ordered
from tests.differential.queries import EVERYDAY, PARAMETERS, TPCH


def ask(client, sql: str, parameters=None):
    with client.cursor() as cur:
        cur.execute(sql, parameters)
        return cur.fetch_arrow_table()


def compare(family, client, query_id: str, sql: str, parameters=None) -> None:
    if query_id in family.engine_cannot:
        pytest.skip(f"{family.name} itself cannot run {query_id}: {family.engine_cannot[query_id]}")
    sql = family.spelled.get(query_id, sql)
    expected = family.native(family.native_sql(family.for_engine(sql)), parameters)
    got = ask(client, family.for_gateway(sql), parameters)
    expected_names = expected.column_names if hasattr(expected, "column_names") else None
    if expected_names is not None:
        assert got.column_names == expected_names
    assert_same_answer(got, expected, ordered=is_ordered(sql))


@pytest.mark.parametrize("query_id", sorted(TPCH))
def test_tpch(family, client, query_id):
    compare(family, client, query_id, TPCH[query_id])


@pytest.mark.parametrize("query_id", sorted(EVERYDAY))
def test_everyday_queries(family, client, query_id):
    compare(family, client, query_id, EVERYDAY[query_id])


@pytest.mark.parametrize("query_id", sorted(PARAMETERS))
def test_parameters(family, client, query_id):
    sql, parameters = PARAMETERS[query_id]
    compare(family, client, query_id, sql, parameters)
