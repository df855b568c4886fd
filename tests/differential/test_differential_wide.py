"""Wide values and wide rows: streamed whole, with the engine's own lengths, below the clients' message limit."""

from __future__ import annotations

import pytest

MB = 1_000_000


def ask(client, sql: str):
    with client.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


@pytest.mark.parametrize("size", [1 * MB, 15 * MB], ids=["1MB", "15MB"])
def test_one_wide_text_value(family, client, size):
    expression = family.repeat_text.format(n=size)
    got = ask(client, family.for_gateway(f"select {expression} as w"))
    value = got.column("w")[0].as_py()
    assert len(value) == size and set(value) == {"x"}


@pytest.mark.xfail(reason="batches are sized by rows only (PostgreSQL's driver alone sizes them by bytes)")
def test_wide_rows_are_split_into_messages_the_client_accepts(family, client):
    """Each row is small, but 60k of them are far more than one 16 MiB message: batches are sized by bytes."""
    sql = "select l_orderkey, l_linenumber, " + family.repeat_text.replace("'x'", "l_comment").format(n=10) + (
        " as w from lineitem"
    )
    expected = family.native(family.for_engine(sql), None)
    got = ask(client, family.for_gateway(sql))
    assert got.num_rows == len(expected)
    lengths = sorted(len(v) for v in got.column("w").to_pylist())
    expected_column = expected.column("w").to_pylist() if hasattr(expected, "column") else [r[2] for r in expected]
    assert lengths == sorted(len(v) for v in expected_column)
