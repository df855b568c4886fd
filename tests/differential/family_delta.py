"""The ``delta`` family: each TPC-H table and the zoo written with ``deltalake.write_deltalake`` as they are.

Reference: DuckDB's own parquet reader over the data files of each table's current version, as the Delta log lists
them (``DeltaTable.file_uris()``; the tables are append-only, so those files are the table). DuckDB's ``delta_scan``
extension would be the natural reference, but version 1.5.5 reads every column of delta-rs 1.6 tables that carry
parquet field ids as NULL. The gateway reads the tables through deltalake's pyarrow datasets scanned by DuckDB.
"""

from __future__ import annotations

import pytest
from deltalake import DeltaTable, write_deltalake

from tests.differential.harness import Family
from tests.differential.lake_data import lake_family, read_parquet, reference, tpch_tables, zoo_table


@pytest.fixture(scope="session")
def family_delta(tpch_dir, tmp_path_factory) -> Family:
    root = tmp_path_factory.mktemp("diff-delta")
    tables = {**tpch_tables(tpch_dir), "type_zoo": zoo_table("delta")}
    for name, table in tables.items():
        write_deltalake(str(root / name), table)
    views = {name: read_parquet(DeltaTable(str(root / name)).file_uris()) for name in tables}
    options = {"tables": [{"name": n, "location": str(root / n)} for n in tables]}
    return lake_family("delta", "delta", options, reference(views), "delta")
