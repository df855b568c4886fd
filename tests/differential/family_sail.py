"""The ``sail`` family: a second upstream Flight SQL server, Sail (Spark SQL on DataFusion), over the same parquet.

Tables are declared in Sail as its users declare them (``CREATE TABLE … USING parquet LOCATION …``), in database
``tpch``; clients write Spark SQL, which the gateway passes through. The reference is Sail's own answer through
ADBC Flight SQL, straight to Sail. Sail has no GetSchema (the gateway describes a query from its FlightInfo) and
cannot prepare statements, so it binds no parameters.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from backends.base import SourceSpec
from tests.differential.family_flightsql import WIDE_AT_RUN_TIME, readable_zoo_columns, upstream_zoo
from tests.differential.harness import Family
from tests.differential.lake_data import zoo_table
from tests.differential.queries import PARAMETERS
from tests.support.flightsql_upstreams import running_sail
from tests.support.tpch import TPCH_TABLES

_NO_PARAMETERS = "Sail cannot prepare a statement, so it binds no parameters"


@pytest.fixture(scope="session")
def family_sail(tpch_dir, tmp_path_factory) -> Family:
    import adbc_driver_flightsql.dbapi as flightsql

    zoo_file = tmp_path_factory.mktemp("diff-sail") / "type_zoo.parquet"
    pq.write_table(zoo_table("parquet"), zoo_file)
    tables = {name: tpch_dir / f"{name}.parquet" for name in TPCH_TABLES} | {"type_zoo": zoo_file}
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
        yield Family(
            name="sail",
            source=SourceSpec("sail", "flightsql", {"uri": uri}),
            dialect="spark",
            native=native,
            schema="tpch",
            zoo=upstream_zoo(served),
            **WIDE_AT_RUN_TIME,
            engine_cannot={"parameters": _NO_PARAMETERS} | dict.fromkeys(PARAMETERS, _NO_PARAMETERS),
        )
        connection.close()
