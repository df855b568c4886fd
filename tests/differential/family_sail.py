"""The ``sail`` family: a second upstream Flight SQL server, Sail (Spark SQL on DataFusion), over the same parquet.

Tables are declared in Sail as its users declare them (``CREATE TABLE … USING parquet LOCATION …``), in database
``tpch``; clients write Spark SQL, which the gateway passes through. The reference is Sail's own answer through
ADBC Flight SQL, straight to Sail. Sail has no GetSchema (the gateway describes a query from its FlightInfo) and
cannot prepare statements, so it binds no parameters.
"""

from __future__ import annotations

import pytest

from tests.differential.family_flightsql import readable_zoo_columns, upstream_family, upstream_tables
from tests.differential.harness import Family
from tests.support.flightsql_upstreams import running_sail

_NO_PARAMETERS = "Sail cannot prepare a statement, so it binds no parameters"
_NO_METADATA = "Sail answers GetDbSchemas and GetTables as not implemented"


@pytest.fixture(scope="session")
def family_sail(tpch_dir, tmp_path_factory) -> Family:
    import adbc_driver_flightsql.dbapi as flightsql

    tables = upstream_tables(tpch_dir, tmp_path_factory.mktemp("diff-sail"))
    with running_sail() as uri:
        connection = flightsql.connect(uri, autocommit=True)

        def native(sql, parameters):
            with connection.cursor() as cursor:
                cursor.execute(sql, parameters)
                return cursor.fetch_arrow_table()

        native("CREATE DATABASE IF NOT EXISTS tpch", None)
        for name, path in tables.items():
            native(f"CREATE TABLE IF NOT EXISTS tpch.{name} USING parquet LOCATION '{path}'", None)
        served = native(f"SELECT {', '.join(readable_zoo_columns())} FROM tpch.type_zoo LIMIT 0", None).schema
        yield upstream_family("sail", uri, native, "spark", "tpch", served, _NO_PARAMETERS, _NO_METADATA)
        connection.close()
