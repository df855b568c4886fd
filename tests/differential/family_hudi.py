"""The ``hudi`` family: copy-on-write tables laid out as ``tests/lake/hudi_tables.py`` does (no Python Hudi writer
exists), one commit per table of tpchgen-cli's rows as they are, and a zoo of the types a Hudi (Avro) schema holds.

Reference: DuckDB's own parquet reader over the base files of each table's latest file slices, as hudi-rs lists
them. The gateway reads the same slices through a pyarrow dataset scanned by DuckDB.
"""

from __future__ import annotations

import pytest
from hudi import HudiReadOptions, HudiTable

from tests.differential.harness import Family
from tests.differential.lake_data import lake_family, read_parquet, reference, tpch_tables, zoo_table
from tests.lake.hudi_tables import CowTable

INSTANT = "20261201000000000"


@pytest.fixture(scope="session")
def family_hudi(tpch_dir, tmp_path_factory) -> Family:
    root = tmp_path_factory.mktemp("diff-hudi")
    tables = {**tpch_tables(tpch_dir), "type_zoo": zoo_table("hudi")}
    views = {}
    for name, data in tables.items():
        CowTable(root / name, name, data.column_names[0], None).commit(INSTANT, data)
        slices = HudiTable(str(root / name)).get_file_slices(HudiReadOptions())
        views[name] = read_parquet([str(root / name / s.base_file_relative_path()) for s in slices])
    options = {"tables": [{"name": n, "location": str(root / n)} for n in tables]}
    return lake_family("hudi", "hudi", options, reference(views), "hudi")
