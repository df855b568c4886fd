"""TPC-H Q1 and Q6 over lineitem on moto's S3 server: the lake backends against in-process readers.

Routes, all reading the same objects from the same emulator:

* ``files backend``: ``backends.files.FilesBackend`` (pyarrow S3 dataset handed to a locked DuckDB);
* ``duckdb httpfs``: DuckDB's own parquet reader with the httpfs extension (loaded from the
  ``duckdb-extension-httpfs`` wheel), in-process, no gateway layers;
* ``duckdb over pyarrow``: a pyarrow S3 dataset registered on a plain DuckDB connection, in-process;
* ``delta backend`` / ``iceberg backend``: the same rows as a Delta table and as an Iceberg table (SQL
  catalog on sqlite, data files on S3 added with ``add_files``) read through ``DeltaBackend`` /
  ``IcebergBackend``.

Bytes are counted at a TCP relay in front of the emulator (what each route really fetched). The pushdown
section compares a selective filter with a full scan, and the same filter on a dataset whose string_view
columns stop DuckDB from pushing filters into pyarrow (duckdb/duckdb#20703), which the backend avoids.

Run: ``python benchmarks/lake_bench.py --scale 1 --parts 8`` (data from tpchgen-cli, kept in ``--data-dir``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import duckdb  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402
import pyarrow.fs as pafs  # noqa: E402

from nexus_flight.backends.arrow_scan import scannable  # noqa: E402
from nexus_flight.backends.delta import DeltaBackend  # noqa: E402
from nexus_flight.backends.files import FilesBackend  # noqa: E402
from nexus_flight.backends.iceberg import IcebergBackend  # noqa: E402
from nexus_flight.core.source import QueryLimits, SourceSpec  # noqa: E402
from tests.lake.byte_counter import CountingRelay  # noqa: E402
from tests.support.results import plan_for  # noqa: E402
from tests.support.services import free_port, port_open  # noqa: E402

BUCKET = "tpch"
KEY, SECRET, REGION = "bench-key", "bench-secret", "us-east-1"

Q1 = """
SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, sum(l_extendedprice) AS sum_base_price,
       sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price,
       sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, avg(l_quantity) AS avg_qty,
       avg(l_extendedprice) AS avg_price, avg(l_discount) AS avg_disc, count(*) AS count_order
FROM lineitem
WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL '90' DAY
GROUP BY l_returnflag, l_linestatus
ORDER BY l_returnflag, l_linestatus
"""

Q6 = """
SELECT sum(l_extendedprice * l_discount) AS revenue
FROM lineitem
WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01'
  AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24
"""

FULL = "SELECT sum(l_extendedprice) AS s FROM lineitem"
SELECTIVE = "SELECT sum(l_extendedprice) AS s FROM lineitem WHERE l_orderkey < 60000"


def start_moto() -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [shutil.which("moto_server") or "moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not port_open("127.0.0.1", port, 0.2):
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit("moto_server did not start")
        time.sleep(0.05)
    return process, port


def generate(data_dir: Path, scale: float, parts: int) -> list[Path]:
    target = data_dir / f"sf{scale:g}-{parts}"
    if not any(target.rglob("*.parquet")):
        target.mkdir(parents=True, exist_ok=True)
        command = ["tpchgen-cli", "parquet", "-s", f"{scale:g}", "--tables=lineitem"]
        command.append(f"--output-dir={target}")
        if parts > 1:
            command.append(f"--parts={parts}")
        subprocess.run(command, check=True)
    return sorted(target.rglob("*.parquet"))


def upload(client, path: Path, key: str) -> None:
    client.upload_file(str(path), BUCKET, key)


def upload_dir(client, local: Path, prefix: str) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            upload(client, path, f"{prefix}/{path.relative_to(local).as_posix()}")


def settings(port: int) -> dict:
    return {
        "s3_endpoint": f"127.0.0.1:{port}",
        "s3_use_ssl": False,
        "s3_path_style": True,
        "s3_region": REGION,
        "s3_access_key_id": KEY,
    }


def files_backend(port: int) -> FilesBackend:
    spec = SourceSpec(
        "bench",
        "files",
        {**settings(port), "tables": [{"name": "lineitem", "location": f"s3://{BUCKET}/sf/lineitem/"}]},
        {"s3_secret_access_key": SECRET},
    )
    return FilesBackend(spec)


def delta_backend(port: int) -> DeltaBackend:
    spec = SourceSpec(
        "bench",
        "delta",
        {**settings(port), "tables": [{"name": "lineitem", "location": f"s3://{BUCKET}/delta/lineitem"}]},
        {"s3_secret_access_key": SECRET},
    )
    return DeltaBackend(spec)


def iceberg_backend(port: int, catalog_dir: Path) -> IcebergBackend:
    spec = SourceSpec(
        "bench",
        "iceberg",
        {
            **settings(port),
            "catalog": {
                "type": "sql",
                "name": "bench",
                "properties": {
                    "uri": f"sqlite:///{catalog_dir}/catalog.db",
                    "warehouse": f"file://{catalog_dir}",
                },
            },
            "tables": [{"name": "lineitem", "identifier": "tpch.lineitem"}],
        },
        {"s3_secret_access_key": SECRET},
    )
    return IcebergBackend(spec)


def build_iceberg(catalog_dir: Path, port: int, parquet: list[Path]) -> None:
    """An Iceberg table whose data files are the lineitem objects on S3 (metadata on local disk)."""
    import pyarrow.parquet as pq
    from pyiceberg.catalog.sql import SqlCatalog

    from nexus_flight.backends.arrow_scan import plain_schema

    catalog_dir.mkdir(parents=True, exist_ok=True)
    catalog = SqlCatalog(
        "bench",
        uri=f"sqlite:///{catalog_dir}/catalog.db",
        warehouse=f"file://{catalog_dir}",
        **{
            "s3.endpoint": f"http://127.0.0.1:{port}",
            "s3.access-key-id": KEY,
            "s3.secret-access-key": SECRET,
            "s3.region": REGION,
        },
    )
    catalog.create_namespace("tpch")
    schema = plain_schema(pq.read_schema(parquet[0]))
    table = catalog.create_table("tpch.lineitem", schema=schema)
    table.add_files([f"s3://{BUCKET}/sf/lineitem/{path.name}" for path in parquet])


def backend_runner(backend):
    def run(sql: str):
        execution = backend.execute(plan_for(backend, sql), None, QueryLimits(timeout_seconds=3600))
        try:
            return execution.reader.read_all().to_pylist()
        finally:
            execution.close()

    return run


def httpfs_runner(port: int):
    import duckdb_extension_httpfs

    extension = next(Path(duckdb_extension_httpfs.__file__).parent.rglob("httpfs.duckdb_extension"))
    db = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    db.execute(f"LOAD '{extension}'")
    # DuckDB 1.5 caches file blocks across queries: off, so each query fetches what it needs (as the backend).
    db.execute("SET enable_external_file_cache = false")
    db.execute(
        f"CREATE SECRET s3 (TYPE S3, KEY_ID '{KEY}', SECRET '{SECRET}', REGION '{REGION}', "
        f"ENDPOINT '127.0.0.1:{port}', URL_STYLE 'path', USE_SSL false)"
    )
    db.execute(f"CREATE VIEW lineitem AS SELECT * FROM read_parquet('s3://{BUCKET}/sf/lineitem/*.parquet')")
    return lambda sql: db.execute(sql).arrow().read_all().to_pylist()


def pyarrow_dataset(port: int, plain: bool = True) -> ds.Dataset:
    filesystem = pafs.S3FileSystem(
        access_key=KEY, secret_key=SECRET, region=REGION, endpoint_override=f"127.0.0.1:{port}", scheme="http"
    )
    dataset = ds.dataset(f"{BUCKET}/sf/lineitem/", filesystem=filesystem, format="parquet")
    return scannable(dataset) if plain else dataset


def pyarrow_runner(port: int, plain: bool = True):
    db = duckdb.connect()
    db.register("lineitem", pyarrow_dataset(port, plain))
    return lambda sql: db.execute(sql).arrow().read_all().to_pylist()


def timed(run, sql: str, repeat: int) -> tuple[float, list]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run(sql)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def fetched(relay: CountingRelay, run, sql: str) -> tuple[int, int]:
    relay.reset()
    run(sql)
    return relay.received, relay.requests


def close(a, b, tolerance: float = 1e-6) -> bool:
    def numbers(rows):
        return [float(v) if not isinstance(v, str) else v for row in rows for v in row.values()]

    for x, y in zip(numbers(a), numbers(b), strict=True):
        if isinstance(x, str) or isinstance(y, str):
            if x != y:
                return False
        elif abs(x - y) > tolerance * max(1.0, abs(x)):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--parts", type=int, default=1, help="lineitem split into this many parquet objects")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/nexus-lake-bench"))
    args = parser.parse_args()

    parquet = generate(args.data_dir, args.scale, args.parts)
    size = sum(path.stat().st_size for path in parquet)
    process, port = start_moto()
    relay = CountingRelay(port)
    try:
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            region_name=REGION,
        )
        client.create_bucket(Bucket=BUCKET)
        for path in parquet:
            upload(client, path, f"sf/lineitem/{path.name}")

        from deltalake import write_deltalake

        delta_dir = args.data_dir / f"delta-sf{args.scale:g}-{args.parts}"
        if not delta_dir.exists():
            write_deltalake(str(delta_dir), scannable(ds.dataset([str(p) for p in parquet])).to_table())
        upload_dir(client, delta_dir, "delta/lineitem")
        catalog_dir = args.data_dir / f"iceberg-sf{args.scale:g}-{port}"
        build_iceberg(catalog_dir, port, parquet)

        print(
            f"lineitem sf{args.scale:g}: {size / 1e6:.1f} MB parquet in {len(parquet)} object(s), "
            f"moto_server S3 on 127.0.0.1:{port}"
        )
        routes = {
            "files backend": lambda p: backend_runner(files_backend(p)),
            "duckdb httpfs (in-process)": httpfs_runner,
            "duckdb over pyarrow (in-process)": pyarrow_runner,
            "delta backend": lambda p: backend_runner(delta_backend(p)),
            "iceberg backend": lambda p: backend_runner(iceberg_backend(p, catalog_dir)),
        }
        reference = {}
        print(f"\n{'route':36} {'query':6} {'seconds':>8} {'MB fetched':>11} {'requests':>9}  result")
        for name, make in routes.items():
            direct, counted = make(port), make(relay.port)
            for label, sql in (("Q1", Q1), ("Q6", Q6)):
                seconds, result = timed(direct, sql, args.repeat)
                received, requests = fetched(relay, counted, sql)
                reference.setdefault(label, result)
                same = "same" if close(result, reference[label]) else "DIFFERENT"
                print(f"{name:36} {label:6} {seconds:8.2f} {received / 1e6:11.1f} {requests:9d}  {same}")

        print("\nper-query table resolution (listing / log / catalog and manifests), median of 5")
        for name, backend in (
            ("files backend", files_backend(port)),
            ("delta backend", delta_backend(port)),
            ("iceberg backend", iceberg_backend(port, catalog_dir)),
        ):
            backend._bind("lineitem")  # the files backend lists once, then reuses the listing
            spent = []
            for _ in range(5):
                start = time.perf_counter()
                backend._bind("lineitem")
                spent.append(time.perf_counter() - start)
            print(f"  {name:36} {statistics.median(spent) * 1000:8.1f} ms")

        print(
            "\npushdown (files backend unless noted): a selective filter on l_orderkey vs a full column scan"
        )
        backend = backend_runner(files_backend(relay.port))
        for label, run, sql in (
            ("full scan of one column", backend, FULL),
            ("l_orderkey < 60000", backend, SELECTIVE),
            ("l_orderkey < 60000, string_view dataset", pyarrow_runner(relay.port, plain=False), SELECTIVE),
            ("l_orderkey < 60000, duckdb httpfs", httpfs_runner(relay.port), SELECTIVE),
        ):
            start = time.perf_counter()
            received, requests = fetched(relay, run, sql)
            seconds = time.perf_counter() - start
            print(f"  {label:44} {received / 1e6:9.2f} MB {requests:6d} requests  {seconds:6.2f} s")
    finally:
        relay.close()
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
