"""Every type of each engine: the documented Arrow type, the engine's own values, NULLs first, and parameters."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.differential.harness import assert_same_answer, type_table_markdown

TYPE_TABLES = Path(__file__).parent / "types"


def ask(client, sql: str, parameters=None):
    with client.cursor() as cur:
        cur.execute(sql, parameters)
        return cur.fetch_arrow_table()


def zoo_query(family) -> str:
    columns = ", ".join(case.column for case in family.zoo)
    return f"select id, {columns} from {family.zoo_table} order by id"


def test_zoo_types_are_the_documented_ones(family, client):
    got = ask(client, family.for_gateway(zoo_query(family)))
    assert got.column_names == [family.result_name(name) for name in ("id", *(case.column for case in family.zoo))]
    types = {case.column: got.schema.field(family.result_name(case.column)).type for case in family.zoo}
    wrong = {
        case.column: f"{case.engine_type}: documented {case.arrow}, got {types[case.column]}"
        for case in family.zoo
        if types[case.column] != case.arrow
    }
    assert not wrong


def test_zoo_values_are_the_engines(family, client):
    sql = zoo_query(family)
    expected = family.native(family.for_engine(sql), None)
    assert_same_answer(ask(client, family.for_gateway(sql)), expected, ordered=True)


def test_zoo_parameters_bind_as_the_column_type(family, client):
    if "parameters" in family.engine_cannot:
        pytest.skip(f"{family.name} itself cannot bind parameters: {family.engine_cannot['parameters']}")
    cases = [case for case in family.zoo if case.parameter is not None]
    assert cases, "the zoo declares no parameter values"
    failures = {}
    for case in cases:
        sql = f"select id from {family.zoo_table} where {case.column} = ? order by id"
        try:
            expected = family.native(family.native_sql(family.for_engine(sql)), (case.parameter,))
            got = ask(client, family.for_gateway(sql), (case.parameter,))
            assert_same_answer(got, expected, ordered=True)
            assert got.num_rows == 1, f"{case.parameter!r} matched {got.num_rows} rows"
        except Exception as error:  # noqa: BLE001 - collect every type's failure, then report them together
            failures[case.column] = f"{case.engine_type} bound as {type(case.parameter).__name__}: {error}"
    assert not failures


def test_type_table_is_current(family, request):
    path = TYPE_TABLES / f"{family.name}.md"
    text = type_table_markdown(family)
    if request.config.getoption("--update-type-tables"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists() and path.read_text() == text, (
        f"{path} is stale: run python -m pytest tests/differential --update-type-tables"
    )
