"""1M rows from ClickHouse: the backend's stream vs clickhouse-connect's own Arrow stream vs its rows.

Run from the repository root:  python -m benchmarks.clickhouse_bench [--rows 1000000] [--repeat 5]

What answers is ClickHouse's engine (chDB) behind the tests' HTTP stand-in (``tests/support/clickhouse_standin.py``),
started here in a process of its own: no clickhouse-server that clickhouse-connect can use installs on this
machine. Every path reads the same HTTP responses from the same stand-in, so the ratios compare the clients; the
absolute times include the stand-in re-framing ClickHouse's Arrow blocks in Python, which a real server does not
do. clickhouse-driver (ClickHouse's native TCP protocol) cannot be measured: the stand-in speaks HTTP only, so the
row-wise peer is clickhouse-connect's own ``query().result_rows``.

Two tables: ``everyday`` (the columns of an events or orders table) and ``addresses`` (UUID, IPv4, IPv6,
Int128, UInt256: types the gateway turns into text or exact decimals, which clickhouse-connect's Arrow path
leaves as ClickHouse's raw encodings, so that row measures the price of the conversion itself).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pyarrow as pa

from benchmarks.timing import alternating, best, report, via_backend, via_gateway
from nexus_flight.backends.clickhouse import ClickHouseBackend
from nexus_flight.core.source import SourceSpec

TABLES = {
    "everyday": (
        "number AS id, toDecimal64(number % 100000 / 100, 2) AS price, concat('customer#', toString(number)) AS name, "
        "toDateTime('2024-01-01 00:00:00', 'UTC') + number AS ts, number % 2 = 0 AS flag, toInt32(number % 50) AS qty, "
        "toLowCardinality(['AUTOMOBILE', 'BUILDING', 'FURNITURE', 'MACHINERY'][number % 4 + 1]) AS segment, "
        "CAST(number % 3 AS Enum8('open' = 0, 'shipped' = 1, 'returned' = 2)) AS status, "
        "if(number % 10 = 0, NULL, number / 7) AS score, toDate('2024-01-01') + number % 1000 AS day",
        "UInt64, Decimal(12,2), String, DateTime('UTC'), Bool, Int32, LowCardinality(String), Enum8, "
        "Nullable(Float64), Date",
    ),
    "addresses": (
        "number AS id, generateUUIDv4(number) AS uid, toIPv4(number * 2654435761 % 4294967296) AS ip4, "
        "toIPv6(IPv6NumToString(toFixedString(unhex(lpad(hex(number * 11400714819323198485), 32, '0')), 16))) AS ip6, "
        "toInt128(number) * 1000000000000 AS big, toUInt256(number) * toUInt256('1000000000000000000000') AS huge",
        "UInt64, UUID, IPv4, IPv6, Int128, UInt256",
    ),
}


def prepare(client, rows: int) -> None:
    client.command("CREATE DATABASE IF NOT EXISTS nexus_bench")
    for name, (columns, _) in TABLES.items():
        client.command(f"DROP TABLE IF EXISTS nexus_bench.{name}")
        client.command(
            f"CREATE TABLE nexus_bench.{name} ENGINE = MergeTree ORDER BY id AS SELECT {columns} FROM numbers({rows})"
        )






def via_arrow_stream(client, sql: str) -> int:
    """clickhouse-connect's fastest Arrow path: ArrowStream batches, text as utf8, nothing converted."""
    with client.query_arrow_stream(sql, use_strings=True) as stream:
        return sum(batch.num_rows for batch in stream)


def via_rows(client, sql: str) -> int:
    """What users otherwise write: the client's rows, then an Arrow table built from them."""
    result = client.query(sql)
    columns = list(zip(*result.result_rows, strict=True))
    table = pa.table({name: _array(values) for name, values in zip(result.column_names, columns, strict=True)})
    return table.num_rows


def _array(values) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # UUIDs, IP addresses, 128-bit ints: text
        return pa.array([None if v is None else str(v) for v in values])




def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-gateway", action="store_true", help="skip the Flight SQL gateway measurements")
    args = parser.parse_args()
    import clickhouse_connect

    from tests.support.services import free_port, running_server
    from tests.support.warehouses import clickhouse_standin_argv

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nexus-ch-bench-") as path:
        argv = clickhouse_standin_argv(port, Path(path) / "db")
        with running_server(argv, port, "the ClickHouse stand-in", timeout=60):
            client = clickhouse_connect.get_client(host="127.0.0.1", port=port, autogenerate_session_id=False)
            prepare(client, args.rows)
            measure(args, port, client)
            client.close()


def measure(args, port: int, client) -> None:
    options = {"host": "127.0.0.1", "port": port, "database": "nexus_bench"}
    backend = ClickHouseBackend(SourceSpec("bench", "clickhouse", options))
    gateway = None
    if not args.no_gateway:
        from nexus_flight.core.settings import ServerSettings
        from nexus_flight.server.app.gateway import Gateway

        source = SourceSpec("ch", "clickhouse", options)
        gateway = Gateway(ServerSettings(port=0, demo_scale=None), [source]).start()
    for name, (_, types) in TABLES.items():
        sql = f"SELECT * FROM nexus_bench.{name}"
        via_backend(backend, f"{sql} LIMIT 10")  # the pooled client opens once, outside the timing
        runs = {
            "clickhouse-connect Arrow stream": lambda sql=sql: via_arrow_stream(client, sql),
            "backend reader": lambda sql=sql: via_backend(backend, sql),
        }
        if gateway is not None:
            remote = f"SELECT * FROM ch.nexus_bench.{name}"
            runs["gateway (Flight SQL)"] = lambda remote=remote: via_gateway(gateway.location, remote)
        results = alternating(runs, args.repeat)
        results["clickhouse-connect rows"] = best(lambda sql=sql: via_rows(client, sql), max(1, args.repeat // 2))
        title = f"{name}: {args.rows:,} rows x ({types}), best of {args.repeat}"
        report(title, results, args.rows, "clickhouse-connect Arrow stream")
    backend.close()
    if gateway is not None:
        gateway.shutdown()


if __name__ == "__main__":
    main()
