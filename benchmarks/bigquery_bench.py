"""Rows from BigQuery: the backend's stream vs google-cloud-bigquery's own Arrow path vs its rows.

Run from the repository root:  python -m benchmarks.bigquery_bench [--rows 1000000] [--repeat 3]

What answers is bqemulator (``tests/install-emulators.sh`` installs it; started here on free ports), not BigQuery:
no BigQuery is reachable from this machine. The rows come from the query itself (``UNNEST(GENERATE_ARRAY(…))``),
since the emulator loads tables only by streaming inserts. Query results travel as REST pages of JSON on the
emulator (its Storage Read API cannot serve them), so every path here decodes JSON: the ratios compare the
clients over the same pages, not BigQuery's production path, where the Storage Read API sends Arrow.
"""

from __future__ import annotations

import argparse

import pyarrow as pa

from benchmarks.timing import alternating, best, report, via_backend, via_gateway
from nexus_flight.backends.bigquery import BigQueryBackend
from nexus_flight.core.source import SourceSpec

COLUMNS = (
    "x AS id, CAST(MOD(x, 100000) AS NUMERIC) / 100 AS price, CONCAT('customer#', CAST(x AS STRING)) AS name, "
    "TIMESTAMP_ADD(TIMESTAMP '2024-01-01 00:00:00+00', INTERVAL x SECOND) AS ts, MOD(x, 2) = 0 AS flag, "
    "DATE_ADD(DATE '2024-01-01', INTERVAL MOD(x, 1000) DAY) AS day"
)
TYPES = "INT64, NUMERIC, STRING, TIMESTAMP, BOOL, DATE"


def query(rows: int) -> str:
    return f"SELECT {COLUMNS} FROM UNNEST(GENERATE_ARRAY(1, {rows})) AS x"






def via_arrow(client, sql: str, page_size: int) -> int:
    """google-cloud-bigquery's own Arrow path: the job's result pages as Arrow record batches."""
    rows = client.query(sql).result(page_size=page_size)
    return sum(batch.num_rows for batch in rows.to_arrow_iterable(bqstorage_client=None))


def via_rows(client, sql: str) -> int:
    """What users otherwise write: ``client.query(...).result()`` rows, then an Arrow table built from them."""
    result = client.query(sql).result()
    names = [field.name for field in result.schema]
    rows = [tuple(row.values()) for row in result]
    return pa.table({name: [r[i] for r in rows] for i, name in enumerate(names)}).num_rows




def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-gateway", action="store_true", help="skip the Flight SQL gateway measurements")
    args = parser.parse_args()
    from tests.support.services import free_port, running_server
    from tests.support.warehouses import BigQueryEmulator, bigquery_emulator_argv

    rest, grpc = free_port(), free_port()
    with running_server(bigquery_emulator_argv(rest, grpc), rest, "bqemulator", timeout=90):
        measure(args, BigQueryEmulator(rest, grpc))


def measure(args, emulator) -> None:
    options = emulator.options(dataset=None)
    backend = BigQueryBackend(SourceSpec("bench", "bigquery", options))
    client = emulator.client()
    sql = query(args.rows)
    via_backend(backend, query(10))  # the HTTP clients open outside the timing
    via_arrow(client, query(10), backend.config.page_size)
    runs = {
        "google-cloud-bigquery Arrow": lambda: via_arrow(client, sql, backend.config.page_size),
        "backend reader": lambda: via_backend(backend, sql),
    }
    gateway = None
    if not args.no_gateway:
        from nexus_flight.core.settings import ServerSettings
        from nexus_flight.server.app.gateway import Gateway

        gateway = Gateway(
            ServerSettings(port=0, demo_scale=None), [SourceSpec("bq", "bigquery", options)]
        ).start()
        runs["gateway (Flight SQL)"] = lambda: via_gateway(gateway.location, sql)
    results = alternating(runs, args.repeat)
    results["client.query().result() rows"] = best(lambda: via_rows(client, sql), 1)
    title = f"bqemulator (REST pages), {args.rows:,} rows x ({TYPES}), best of {args.repeat}"
    report(title, results, args.rows, "google-cloud-bigquery Arrow")
    backend.close()
    client.close()
    if gateway is not None:
        gateway.shutdown()


if __name__ == "__main__":
    main()
