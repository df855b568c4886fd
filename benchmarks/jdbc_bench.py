"""The Flight SQL JDBC driver vs ADBC reading the same 6M-row result from one gateway, in one run.

Reads ``SELECT * FROM lineitem`` (TPC-H sf1, 6,001,215 rows × 16 columns) to the end, best of N each:
- JDBC, ``ResultSet.next()`` with ``getObject`` on every column (what a BI tool does with a result);
- JDBC, ``next()`` with ``getLong`` on the first column only (the driver's floor: batches decoded, rows walked);
- ADBC, ``fetch_arrow_table()`` (columnar, no per-value objects).

Usage: python benchmarks/jdbc_bench.py [--scale 1] [--repeat 3]
Needs the Java clients built by tests/install-clients.sh. The gateway runs as ``python -m server serve`` with
the TPC-H demo generated at the given scale into benchmarks/.data.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.flight_sql_bench import start_nexus  # noqa: E402
from tests.clients import toolchain  # noqa: E402

QUERY = "SELECT * FROM lineitem"


def adbc_rows_per_second(uri: str, repeat: int) -> tuple[int, float]:
    best, rows = float("inf"), 0
    with flightsql.connect(uri, autocommit=True) as conn:
        for _ in range(repeat):
            with conn.cursor() as cur:
                started = time.perf_counter()
                cur.execute(QUERY)
                rows = cur.fetch_arrow_table().num_rows
                best = min(best, time.perf_counter() - started)
    return rows, rows / best


def jdbc_rows_per_second(port: int, repeat: int) -> dict[str, tuple[int, float]]:
    url = f"jdbc:arrow-flight-sql://127.0.0.1:{port}/?useEncryption=false"
    lines = [f"connect\tconnect\t{url}\tuser=bench\tpassword=bench"]
    for mode in ("all", "first"):
        lines += [f"{mode}-{i}\tcount\t{QUERY}\t\\N\t{mode}" for i in range(repeat)]
    with tempfile.TemporaryDirectory() as tmp:
        scenarios = Path(tmp) / "bench.tsv"
        scenarios.write_text("\n".join(lines) + "\n")
        done = subprocess.run([*toolchain.java_command("JdbcScenarios"), str(scenarios)], capture_output=True,
                              text=True, check=True)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    out = {}
    for mode in ("all", "first"):
        runs = [r["result"] for r in records if r["name"].startswith(mode + "-")]
        out[mode] = (runs[0]["rows"], max(r["rowsPerSecond"] for r in runs))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data_dir = ROOT / "benchmarks" / ".data" / f"nexus-sf{args.scale:g}"
    data_dir.mkdir(parents=True, exist_ok=True)
    proc, uri = start_nexus(data_dir, args.scale)
    try:
        port = int(uri.rsplit(":", 1)[1])
        jdbc = jdbc_rows_per_second(port, args.repeat)
        rows, adbc = adbc_rows_per_second(uri, args.repeat)
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"{QUERY} (TPC-H sf{args.scale:g}, {rows:,} rows), best of {args.repeat}:")
    print(f"  JDBC getObject on every column: {jdbc['all'][1] / 1e6:.2f} M rows/s")
    print(f"  JDBC getLong on the first column: {jdbc['first'][1] / 1e6:.2f} M rows/s")
    print(f"  ADBC fetch_arrow_table: {adbc / 1e6:.2f} M rows/s")
    print(f"  ratio JDBC (every column) / ADBC: {jdbc['all'][1] / adbc:.2f}")
    assert jdbc["all"][0] == jdbc["first"][0] == rows, "the clients read different row counts"


if __name__ == "__main__":
    main()
