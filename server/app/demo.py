"""The embedded demo catalog: the eight TPC-H tables, generated locally on first start and cached.

Data comes from ``tpchgen-cli`` (a Python package shipping the generator binary; its output matches dbgen), is
loaded into a DuckDB file once, and that file is then opened read-only. Nothing is downloaded.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

from nexus_flight.core.errors import ConfigError

log = logging.getLogger(__name__)

TPCH_TABLES = ("customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier")
_PRIMARY_KEYS = {
    "customer": "c_custkey",
    "nation": "n_nationkey",
    "orders": "o_orderkey",
    "part": "p_partkey",
    "partsupp": "ps_partkey, ps_suppkey",
    "region": "r_regionkey",
    "supplier": "s_suppkey",
}


def _scale_label(scale: float) -> str:
    return f"{scale:g}".replace(".", "_")


def demo_database(data_dir: Path, scale: float) -> Path:
    """Return the demo DuckDB file for ``scale``, generating it on first use."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"tpch_sf{_scale_label(scale)}.duckdb"
    if path.exists():
        return path
    log.info("generating TPC-H scale %s into %s (first start only)", scale, path)
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".tpch-") as tmp:
        parquet_dir = Path(tmp) / "parquet"
        generate_parquet(parquet_dir, scale)
        partial = Path(tmp) / path.name
        _load(partial, parquet_dir)
        os.replace(partial, path)  # atomic: a crash never leaves a half-built database behind
    return path


def generate_parquet(out_dir: Path, scale: float) -> None:
    """Write the eight TPC-H tables as parquet files with tpchgen-cli."""
    exe = shutil.which("tpchgen-cli") or str(Path(sys.executable).parent / "tpchgen-cli")
    if not Path(exe).exists():
        raise ConfigError("tpchgen-cli is not installed: pip install tpchgen-cli (a dependency of nexus-flight)")
    out_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [exe, "parquet", "-s", f"{scale:g}", f"--output-dir={out_dir}"], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise ConfigError(f"tpchgen-cli failed: {result.stderr.strip()[:500]}")


def _load(db_path: Path, parquet_dir: Path) -> None:
    con = duckdb.connect(str(db_path))
    try:
        for name in TPCH_TABLES:
            source = parquet_dir / f"{name}.parquet"
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet(?)", [str(source)])
        for name, key in _PRIMARY_KEYS.items():
            # DuckDB cannot add a primary key to an existing table: rebuild with the constraint declared.
            columns = con.execute(f"DESCRIBE {name}").fetchall()
            ddl = ", ".join(f"{c[0]} {c[1]} NOT NULL" if c[0] in key.split(", ") else f"{c[0]} {c[1]}" for c in columns)
            con.execute(f"CREATE TABLE {name}_pk ({ddl}, PRIMARY KEY ({key}))")
            con.execute(f"INSERT INTO {name}_pk SELECT * FROM {name}")
            con.execute(f"DROP TABLE {name}")
            con.execute(f"ALTER TABLE {name}_pk RENAME TO {name}")
        con.execute("CHECKPOINT")
    finally:
        con.close()
