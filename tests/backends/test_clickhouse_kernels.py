"""The vectorised conversions of ClickHouse's Arrow encodings give ClickHouse's own text, value for value.

Each column is read as ClickHouse streams it (ArrowStream from the engine behind the stand-in, see
``test_clickhouse.py``) next to ``toString`` of the same value computed by ClickHouse, and the kernel's output must
equal that text: edge values, random values, NULLs, and slices that do not start at the first value.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pyarrow as pa
import pytest

from nexus_flight.backends import clickhouse_kernels as kernels

SETTINGS = {"output_format_arrow_string_as_string": 1, "output_format_arrow_low_cardinality_as_dictionary": 0}


@pytest.fixture(scope="module")
def engine(clickhouse_server):
    client = clickhouse_server.client()
    yield client
    client.close()


def stream(client, sql: str, parameters=None) -> pa.Table:
    response = client.raw_stream(sql, parameters, SETTINGS, fmt="ArrowStream")
    return pa.ipc.open_stream(response).read_all().combine_chunks()


def check(converted: pa.Array, expected: pa.Array) -> None:
    assert converted.type == pa.utf8()
    assert converted.to_pylist() == expected.to_pylist()
    for offset, length in ((1, 7), (5, len(expected) - 9)):
        assert converted.slice(offset, length).to_pylist() == expected.slice(offset, length).to_pylist()


def _groups(rng: random.Random) -> str:
    return "".join(f"{rng.randrange(65536) if rng.random() < 0.4 else 0:04x}" for _ in range(8))


IPV6_EDGES = [
    "::", "::1", "1::", "::1.2.3.4", "::ffff:1.2.3.4", "::ffff:0:0", "64:ff9b::1.2.3.4", "2001:db8::1",
    "2001:db8:0:0:1:0:0:1", "2001:0:0:1::1", "fe80::1:0:0:0", "::ffff:255.255.255.255", "::fffe:1.2.3.4",
    "::2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "0:0:1::", "::0.1.0.0", "::0.0.1.2", "1:0:0:2:0:0:0:3",
    "1:0:0:2:0:0:3:4", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "0:ffff::", "::ffff:0:1:2",
]


def test_ipv6_text_is_clickhouses_own(engine):
    rng = random.Random(7)
    hexes = [_groups(rng) for _ in range(20_000)]
    table = stream(
        engine,
        "SELECT a, toString(a) AS t FROM (SELECT toIPv6(x) AS a, 0 AS o, 0 AS i FROM "
        "(SELECT arrayJoin({edges:Array(String)}) AS x) UNION ALL SELECT toIPv6(IPv6NumToString(toFixedString("
        "unhex(h), 16))), 1, 0 FROM (SELECT arrayJoin({hexes:Array(String)}) AS h) UNION ALL "
        "SELECT NULL, 2, number FROM numbers(3)) ORDER BY o, i",
        {"edges": IPV6_EDGES, "hexes": hexes},
    )
    check(kernels.ipv6_text(table.column("a").chunk(0)), table.column("t").chunk(0))


def test_ipv4_text_is_clickhouses_own(engine):
    table = stream(
        engine,
        "SELECT if(number % 97 = 0, NULL, toIPv4(multiply(number, 2654435761) % 4294967296)) AS a, "
        "toString(a) AS t FROM numbers(20000) UNION ALL SELECT toIPv4('255.255.255.255'), '255.255.255.255'",
    )
    expected = pa.array([None if a is None else t for a, t in zip(*table.to_pydict().values(), strict=True)])
    check(kernels.ipv4_text(table.column("a").chunk(0)), expected)


def _wide(rng: random.Random, bits: int, signed: bool) -> int:
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return rng.choice([low, high, 0, -1 if signed else 1, rng.randint(low, high), rng.randint(-(10**9), 10**9)
                       if signed else rng.randint(0, 10**12), rng.randint(low, high) >> rng.randrange(bits)])


@pytest.mark.parametrize("ch_type", ["Int128", "UInt128", "Int256", "UInt256"])
def test_wide_integers_are_exact(engine, ch_type):
    """(U)Int128 as decimal256(39, 0), (U)Int256 as decimal text: ClickHouse's own digits, extremes included."""
    signed, bits = ch_type.startswith("Int"), int(ch_type[-3:])
    rng = random.Random(bits + signed)
    values = [str(_wide(rng, bits, signed)) for _ in range(5_000)]
    table = stream(
        engine,
        f"SELECT if(i % 50 = 7, NULL, to{ch_type}(v)) AS a, toString(a) AS t FROM "
        "(SELECT arrayJoin(arrayZip({v:Array(String)}, range(length({v:Array(String)})))) AS z, z.1 AS v, z.2 AS i)",
        {"v": values},
    )
    column, texts = table.column("a").chunk(0), table.column("t").chunk(0)
    if bits == 256:
        check(kernels.wide_int_to_text(column, signed), texts)
        return
    got = kernels.wide_int_to_decimal(column, signed)
    assert got.type == pa.decimal256(39, 0)
    expected = [None if t is None else Decimal(t) for t in texts.to_pylist()]
    assert got.to_pylist() == expected
    assert got.slice(3, 10).to_pylist() == expected[3:13]


def test_intervals_and_bfloat16(engine):
    table = stream(
        engine,
        "SELECT toIntervalMonth(number - 2) AS m, toIntervalSecond(number * 1000) AS s, "
        "if(number = 1, NULL, toBFloat16(number / 4 - 1)) AS b FROM numbers(5)",
    )
    months = kernels.interval_from_count(table.column("m").chunk(0), 1, 0, 0).to_pylist()
    assert [(v.months, v.days, v.nanoseconds) for v in months] == [(n - 2, 0, 0) for n in range(5)]
    seconds = kernels.interval_from_count(table.column("s").chunk(0), 0, 0, 1_000_000_000).to_pylist()
    assert [v.nanoseconds for v in seconds] == [n * 10**12 for n in range(5)]
    assert kernels.bfloat16_to_float32(table.column("b").chunk(0)).to_pylist() == [-1.0, None, -0.5, -0.25, 0.0]
