"""The ``iceberg`` family: a pyiceberg SQL catalog; each TPC-H table and the zoo appended as they are.

Reference: DuckDB's own Iceberg reader (``iceberg_scan`` of each table's current metadata file, from the
``duckdb-extension-iceberg`` wheel), which reads the manifests and data files itself. The gateway plans the scan
with pyiceberg and hands DuckDB a pyarrow dataset (or pyiceberg's reader for nested columns).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tests.differential.harness import Family
from tests.differential.lake_data import lake_family, reference, tpch_tables, zoo_table


def _extension(name: str) -> str:
    import importlib

    module = importlib.import_module(f"duckdb_extension_{name}")
    return str(next(Path(module.__file__).parent.rglob(f"{name}.duckdb_extension")))


@pytest.fixture(scope="session")
def family_iceberg(tpch_dir, tmp_path_factory) -> Family:
    from pyiceberg.catalog.sql import SqlCatalog

    root = tmp_path_factory.mktemp("diff-iceberg")
    properties = {"uri": f"sqlite:///{root}/catalog.db", "warehouse": f"file://{root}/warehouse"}
    catalog = SqlCatalog("differential", **properties)
    catalog.create_namespace("tpch")
    views = {}
    tables = {**tpch_tables(tpch_dir), "type_zoo": zoo_table("iceberg")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Iceberg does not have a dictionary type": it stores the strings
        for name, data in tables.items():
            table = catalog.create_table(f"tpch.{name}", schema=data.schema)
            table.append(data)
            views[name] = f"iceberg_scan('{table.metadata_location}')"
    setup = tuple(f"LOAD '{_extension(name)}'" for name in ("avro", "iceberg"))
    options = {
        "catalog": {"type": "sql", "name": "differential", "properties": properties},
        "tables": [{"name": name, "identifier": f"tpch.{name}"} for name in tables],
    }
    return lake_family("iceberg", "iceberg", options, reference(views, setup), "iceberg")
