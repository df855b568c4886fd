"""Wide values and wide rows: streamed whole, with the engine's own lengths, below the clients' message limit."""

from __future__ import annotations

import adbc_driver_manager
import pytest

MB = 1_000_000


def ask(client, sql: str):
    with client.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def _text(family, size: int) -> str:
    return family.for_gateway(f"select {family.repeat_text.format(n=size)} as w")


def _blob(family, size: int) -> str:
    if family.repeat_blob is None:
        pytest.skip(f"{family.name} has no binary type apart from its text")
    return family.for_gateway(f"select {family.repeat_blob.format(n=size)} as w")


@pytest.mark.parametrize("size", [1 * MB, 15 * MB], ids=["1MB", "15MB"])
def test_one_wide_text_value(family, client, size):
    value = ask(client, _text(family, size)).column(family.result_name("w"))[0].as_py()
    assert len(value) == size and set(value) == {"x"}


@pytest.mark.parametrize("size", [1 * MB, 15 * MB], ids=["1MB", "15MB"])
def test_one_wide_blob_value(family, client, size):
    value = ask(client, _blob(family, size)).column(family.result_name("w"))[0].as_py()
    assert isinstance(value, bytes) and len(value) == size and set(value) == {ord("x")}


@pytest.mark.parametrize("make", [_text, _blob], ids=["text", "blob"])
def test_a_value_over_the_message_limit_is_refused_naming_it(family, client, make):
    """20 MB in one row cannot fit the 16 MiB message clients accept: the error says so and what to raise."""
    with pytest.raises(adbc_driver_manager.Error) as failure:
        ask(client, make(family, 20 * MB))
    message = str(failure.value)
    assert "INVALID_ARGUMENT" in message and "16777216 bytes" in message, message
    assert "adbc.flight.sql.client_option.with_max_msg_size" in message and "max_message_bytes" in message


@pytest.mark.parametrize("make", [_text, _blob], ids=["text", "blob"])
def test_a_20MB_value_arrives_when_client_and_gateway_raise_the_limit(family, raised_limit_client, make):  # noqa: N802
    value = ask(raised_limit_client, make(family, 20 * MB)).column(family.result_name("w"))[0].as_py()
    assert len(value) == 20 * MB


def test_wide_rows_are_split_into_messages_the_client_accepts(family, client):
    """Each row is small, but 60k of them are far more than one 16 MiB message: batches are sized by bytes."""
    sql = "select l_orderkey, l_linenumber, " + family.repeat_text.replace("'x'", "l_comment").format(n=10) + (
        " as w from lineitem"
    )
    expected = family.native(family.for_engine(sql), None)
    got = ask(client, family.for_gateway(sql))
    assert got.num_rows == len(expected)
    name = family.result_name("w")
    lengths = sorted(len(v) for v in got.column(name).to_pylist())
    expected_column = expected.column(name).to_pylist() if hasattr(expected, "column") else [r[2] for r in expected]
    assert lengths == sorted(len(v) for v in expected_column)
