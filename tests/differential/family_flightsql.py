"""The ``flightsql`` family: ROAPI (DataFusion behind Flight SQL) serving tpchgen-cli's parquet and the parquet zoo.

The reference is ROAPI's own answer through ADBC Flight SQL, straight to ROAPI; the gateway reaches the same
server as an upstream Flight SQL source. ROAPI has no bound parameters (``do_put_prepared_statement_query not
implemented``): every parameter query is something the engine itself cannot run.

Two of ROAPI's ways are allowed for. It answers an empty result with an empty schema, so the reference then takes
the schema ROAPI describes for the query (GetSchema); the gateway announces that one. And DataFusion folds a
constant wide value slowly (1.4 s for 15 MB of text, 14 s for the same as binary, both sides paying it), so the
wide values take their length from a table and are computed when the query runs (``WIDE_AT_RUN_TIME``).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nexus_flight.core.source import SourceSpec
from tests.differential.harness import Family, TypeCase
from tests.differential.lake_data import zoo_columns, zoo_table
from tests.differential.queries import PARAMETERS
from tests.support.flightsql_upstreams import running_roapi
from tests.support.tpch import TPCH_TABLES

_NO_PARAMETERS = "ROAPI has no bound parameters: it answers do_put_prepared_statement_query as not implemented"
_NO_METADATA = "ROAPI's GetTables answer does not match the Flight SQL schema, which the ADBC client refuses"
#: 0, read from a table: a wide value of n + _ZERO characters is computed when the query runs, never folded.
_ZERO = "(select min(r_regionkey) from region)"
#: Wide values as DataFusion-based upstreams make them fast (``Family.repeat_text`` / ``repeat_blob``).
WIDE_AT_RUN_TIME = {
    "repeat_text": f"repeat('x', {{n}} + {_ZERO})",
    "repeat_blob": f"cast(repeat('x', {{n}} + {_ZERO}) as blob)",
}

#: The Arrow type the gateway returns for each parquet zoo column ROAPI serves, where it differs from ROAPI's own.
_GATEWAY_TYPE = {
    "txt_view": pa.string(),
    "bl_view": pa.binary(),
    "li_text": pa.list_(pa.field("element", pa.string())),
}
#: What the type table says of a column served as written.
_NOTES = {
    "f64_nan": "NaN",
    "f64_inf": "-infinity",
    "txt_empty": "empty string, not NULL",
    "tstz_kolkata": "the zone passes through",
    "tstz_ny_ms": "the zone passes through",
}
#: Zoo columns ROAPI (and Sail: both encode with arrow-rs) announce with one type and stream with another: ADBC
#: refuses the stream, for every client.
_ANNOUNCED_WRONG = {
    "txt_dict": "announced as dictionary<int32, string>, streamed as string",
    "li_large": "announced as large_list<int64>, streamed as list<int64>",
}


def readable_zoo_columns() -> list[str]:
    """The parquet zoo's columns an arrow-rs Flight SQL server streams as it announces them."""
    return [column.name for column in zoo_columns("parquet") if column.name not in _ANNOUNCED_WRONG]


def upstream_zoo(served: pa.Schema) -> tuple[TypeCase, ...]:
    """The zoo of an upstream that serves the parquet zoo with the types of ``served`` (its own answer's)."""
    cases = []
    for column in zoo_columns("parquet"):
        if column.name in _ANNOUNCED_WRONG:
            continue
        engine = served.field(column.name).type
        note = f"written as {column.arrow}" if column.arrow != engine else _NOTES.get(column.name, "")
        cases.append(TypeCase(column.name, str(engine), _GATEWAY_TYPE.get(column.name, engine), note=note))
    return tuple(cases)


def upstream_tables(tpch_dir: Path, folder: Path) -> dict[str, Path]:
    """The files an upstream serves, by table name: tpchgen-cli's TPC-H and the parquet zoo (written in ``folder``)."""
    zoo_file = folder / "type_zoo.parquet"
    pq.write_table(zoo_table("parquet"), zoo_file)
    return {name: tpch_dir / f"{name}.parquet" for name in TPCH_TABLES} | {"type_zoo": zoo_file}


def upstream_family(
    name: str, uri: str, native, dialect: str, schema: str, served: pa.Schema, no_parameters: str, no_metadata: str
) -> Family:
    """A Flight SQL family: the upstream at ``uri`` as source ``name``, answering itself through ``native``."""
    return Family(
        name=name,
        source=SourceSpec(name, "flightsql", {"uri": uri}),
        dialect=dialect,
        native=native,
        schema=schema,
        zoo=upstream_zoo(served),
        **WIDE_AT_RUN_TIME,
        engine_cannot={"parameters": no_parameters, "table_metadata": no_metadata}
        | dict.fromkeys(PARAMETERS, no_parameters),
    )


@pytest.fixture(scope="session")
def family_flightsql(tpch_dir, tmp_path_factory) -> Family:
    import adbc_driver_flightsql.dbapi as flightsql

    with running_roapi(upstream_tables(tpch_dir, tmp_path_factory.mktemp("diff-flightsql"))) as uri:
        connection = flightsql.connect(uri, autocommit=True)

        def native(sql, parameters):
            with connection.cursor() as cursor:
                cursor.execute(sql, parameters)
                answer = cursor.fetch_arrow_table()
                if answer.num_columns == 0:
                    answer = cursor.adbc_execute_schema(sql).empty_table()
                return answer

        with connection.cursor() as cursor:
            served = cursor.adbc_execute_schema(f"select {', '.join(readable_zoo_columns())} from public.type_zoo")
        yield upstream_family("flightsql", uri, native, "postgres", "public", served, _NO_PARAMETERS, _NO_METADATA)
        connection.close()
