"""One suite over every database backend, choosing its checks from each backend's declared capabilities.

Each source serves TPC-H's ``nation`` table (loaded by the fixtures of the per-backend modules).
"""

from __future__ import annotations

import shutil
import typing
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from nexus_flight.backends.base import Backend
from nexus_flight.backends.registry import BACKENDS, backend_class
from nexus_flight.core.errors import NotFoundError, ReadOnlyViolationError
from nexus_flight.core.source import QueryLimits, SourceSpec
from tests.backends.conftest import options
from tests.support.results import cancel_after_first_batch, plan_for, run

KINDS = ("duckdb", "postgres", "mysql", "flightsql", "snowflake", "sqlite", "clickhouse", "bigquery")
#: The pip extra that installs each family's driver (DuckDB is a core dependency).
EXTRAS = {"duckdb": None, "postgres": "postgres", "mysql": "mysql", "flightsql": "flightsql",
          "snowflake": "snowflake", "sqlite": "sqlite", "clickhouse": "clickhouse", "bigquery": "bigquery"}


@dataclass
class Source:
    backend: Backend
    db_schema: str
    nation: str  # how a query names the nation table
    parameters: bool = True  # ROAPI, an upstream without bound parameters, says False


def _duckdb(request) -> Source:
    demo = next(request.getfixturevalue("demo_data_dir").glob("tpch_sf0_01.duckdb"))
    copy = request.getfixturevalue("tmp_path_factory").mktemp("conformance") / "tpch.duckdb"
    shutil.copy(demo, copy)  # its own file: a second source on the demo file would share its DuckDB instance
    spec = SourceSpec("c_duck", "duckdb", {"path": str(copy)})
    return Source(backend_class("duckdb")(spec), "main", "nation")


def _postgres(request) -> Source:
    request.getfixturevalue("pg_tpch")
    spec = SourceSpec("c_pg", "postgres", request.getfixturevalue("postgres_server").options())
    return Source(backend_class("postgres")(spec), "nexus_tpch", "nexus_tpch.nation")


def _mysql(request) -> Source:
    from tests.support.mysql_reader import reader_spec

    request.getfixturevalue("mysql_tpch")
    spec = reader_spec(request.getfixturevalue("mariadb_server"), "nexus_tpch", name="c_my")
    return Source(backend_class("mysql")(spec), "nexus_tpch", "nexus_tpch.nation")


def _flightsql(request) -> Source:
    spec = SourceSpec("c_fs", "flightsql", {"uri": request.getfixturevalue("roapi")})
    return Source(backend_class("flightsql")(spec), "public", "nation", parameters=False)


def _snowflake(request) -> Source:
    spec = SourceSpec("c_sf", "snowflake", options(request.getfixturevalue("loaded")), {"password": "x"})
    return Source(backend_class("snowflake")(spec), "TPCH", "nation")


def _sqlite(request) -> Source:
    spec = SourceSpec("c_lite", "sqlite", {"path": str(request.getfixturevalue("sqlite_file"))})
    return Source(backend_class("sqlite")(spec), "main", "nation")


def _clickhouse(request) -> Source:
    """ClickHouse's engine behind the HTTP stand-in (tests/support/clickhouse_standin.py says why)."""
    request.getfixturevalue("clickhouse_tpch")
    spec = SourceSpec("c_ch", "clickhouse", request.getfixturevalue("clickhouse_server").options())
    return Source(backend_class("clickhouse")(spec), "tpch", "tpch.nation")


def _bigquery(request) -> Source:
    request.getfixturevalue("bigquery_tpch")
    spec = SourceSpec("c_bq", "bigquery", request.getfixturevalue("bigquery_emulator").options())
    return Source(backend_class("bigquery")(spec), "tpch", "tpch.nation")


@pytest.fixture(scope="module", params=KINDS)
def source(request):
    made = {
        "duckdb": _duckdb,
        "postgres": _postgres,
        "mysql": _mysql,
        "flightsql": _flightsql,
        "snowflake": _snowflake,
        "sqlite": _sqlite,
        "clickhouse": _clickhouse,
        "bigquery": _bigquery,
    }[request.param](request)
    yield made
    made.backend.close()


@pytest.mark.parametrize("kind", KINDS)
def test_registered_with_an_extra(kind):
    assert BACKENDS[kind][1] == EXTRAS[kind]
    cls = backend_class(kind)
    assert f"{cls.__module__}:{cls.__name__}" == BACKENDS[kind][0] and cls.kind == kind


@pytest.mark.parametrize("kind", KINDS)
def test_declared_contract(kind):
    cls = backend_class(kind)
    assert cls.read_only_guard.strip()
    model = cls.config_model
    assert model.model_config.get("frozen") is True
    assert model.model_config.get("extra") == "forbid"
    for name, field in model.model_fields.items():
        if any(word in name for word in ("password", "token", "private_key")):
            assert SecretStr in typing.get_args(field.annotation), name


@pytest.mark.parametrize("kind", KINDS)
def test_the_options_model_is_the_one_the_catalog_reads(kind):
    """One declaration: the catalog's view of a family's options is its backend's own model, read without the
    driver (``backends/options/``), and the catalog's example of the family validates with it."""
    from nexus_flight.backends.options import options_model
    from nexus_flight.catalog.source_types import SOURCE_TYPES

    model = backend_class(kind).config_model
    assert options_model(kind) is model
    assert model.__module__.startswith("nexus_flight.backends.options.")
    for source_type in (t for t in SOURCE_TYPES.values() if t.family == kind):
        options, secrets, _ = source_type.example
        model(**{**options, **secrets})


@pytest.mark.parametrize("kind", KINDS)
def test_options_model_hides_secrets_refuses_unknown_keys_and_is_frozen(kind):
    """Built from the catalog's own example of the family, with its secrets given a recognisable value."""
    from pydantic import ValidationError

    from nexus_flight.catalog.source_types import SOURCE_TYPES

    model = backend_class(kind).config_model
    source_type = next(t for t in SOURCE_TYPES.values() if t.family == kind)
    options, secrets, _ = source_type.example
    marked = {name: f"nexus-secret-{name}" for name in secrets}
    config = model(**{**options, **marked})
    for value in marked.values():
        assert value not in repr(config) and value not in str(config)
    with pytest.raises(ValidationError):
        model(**{**options, **marked}, nexus_unknown_option=1)
    first = next(iter(model.model_fields))
    with pytest.raises(ValidationError):
        setattr(config, first, getattr(config, first))


def test_query_and_schema_agree(source):
    sql = f"SELECT n_nationkey, n_name FROM {source.nation} ORDER BY n_nationkey"
    table = run(source.backend, sql)
    assert table.num_rows == 25
    assert [n.lower() for n in table.column_names] == ["n_nationkey", "n_name"]
    assert table.column(1).to_pylist()[:2] == ["ALGERIA", "ARGENTINA"]
    schema = source.backend.get_schema(plan_for(source.backend, sql))
    assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in table.schema]


def test_bound_parameters(source):
    if not (source.backend.capabilities.parameters and source.parameters):
        pytest.skip("this source has no bound parameters")
    sql = f"SELECT n_name FROM {source.nation} WHERE n_nationkey = ?"
    assert run(source.backend, sql, [[3]]).column(0).to_pylist() == ["CANADA"]
    assert len(source.backend.get_parameter_schema(plan_for(source.backend, sql))) == 1


def test_writes_refused_by_the_backend_itself(source):
    with pytest.raises(ReadOnlyViolationError):
        run(source.backend, f"INSERT INTO {source.nation} VALUES (99, 'X', 0, 'y')")
    with pytest.raises(ReadOnlyViolationError):
        run(source.backend, f"DELETE FROM {source.nation}")
    assert run(source.backend, f"SELECT count(*) AS n FROM {source.nation}").column(0).to_pylist()[0] == 25


def test_keys_when_declared(source):
    if not source.backend.capabilities.keys:
        pytest.skip("this backend reports no keys")
    keys = source.backend.primary_keys(source.db_schema, "NATION" if source.db_schema == "TPCH" else "nation")
    assert [k.column.lower() for k in keys] == ["n_nationkey"]


def test_unknown_table_is_not_found(source):
    with pytest.raises(NotFoundError):
        source.backend.table_schema(source.db_schema, "nexus_no_such_table")


def test_cancel_ends_the_stream(source):
    plan = plan_for(source.backend, f"SELECT * FROM {source.nation}")
    execution = source.backend.execute(plan, None, QueryLimits(batch_rows=5))
    cancel_after_first_batch(execution)
    assert run(source.backend, f"SELECT count(*) AS n FROM {source.nation}").column(0).to_pylist()[0] == 25
