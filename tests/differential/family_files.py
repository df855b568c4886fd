"""The ``files`` family on local disk: tpchgen-cli's parquet files where the tool wrote them, and a parquet zoo.

Reference: DuckDB's own parquet reader (``read_parquet``) over the same files. The gateway reads them through
pyarrow datasets scanned by DuckDB, a different route.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from tests.differential.harness import Family
from tests.differential.lake_data import lake_family, read_parquet, reference, zoo_table
from tests.support.tpch import TPCH_TABLES


@pytest.fixture(scope="session")
def family_files(tpch_dir, tmp_path_factory) -> Family:
    zoo_file = tmp_path_factory.mktemp("diff-files") / "type_zoo.parquet"
    pq.write_table(zoo_table("parquet"), zoo_file)
    locations = {name: str(tpch_dir / f"{name}.parquet") for name in TPCH_TABLES}
    locations["type_zoo"] = str(zoo_file)
    tables = [{"name": name, "location": location} for name, location in locations.items()]
    native = reference({name: read_parquet([location]) for name, location in locations.items()})
    return lake_family("files", "files", {"tables": tables}, native, "parquet")
