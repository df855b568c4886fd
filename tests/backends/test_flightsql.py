"""The upstream Flight SQL backend against a real ROAPI server (started here on free ports, TPC-H parquet)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nexus_flight.backends.base import DATABASE_TYPE_NAME
from nexus_flight.backends.flightsql import FlightSQLBackend
from nexus_flight.core.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    LimitExceededError,
    NotFoundError,
    ReadOnlyViolationError,
    UnsupportedError,
)
from nexus_flight.core.source import QueryLimits, SourceSpec
from tests.backends.conftest import TPCH_QUERIES, normalized
from tests.support.flightsql_upstreams import running_roapi, running_sail
from tests.support.results import cancel_after_first_batch, plan_for, run
from tests.support.services import free_port


@pytest.fixture(scope="module")
def backend(roapi):
    with FlightSQLBackend(SourceSpec("upstream", "flightsql", {"uri": roapi})) as b:
        yield b


@pytest.fixture(scope="module")
def odd_types(tmp_path_factory):
    """ROAPI serving a parquet file of the types it mishandles or that need unwrapping, as a source."""
    path = tmp_path_factory.mktemp("roapi-odd") / "odd.parquet"
    pq.write_table(
        pa.table(
            {
                "d": pa.array(["a", None]).dictionary_encode(),
                "ll": pa.array([[1], None], pa.large_list(pa.int64())),
                "lv": pa.array([["x", None], None], pa.list_(pa.string_view())),
                "mv": pa.array([[("k", b"v")], None], pa.map_(pa.string_view(), pa.binary_view())),
            }
        ),
        path,
    )
    with running_roapi({"odd": path}) as uri, FlightSQLBackend(SourceSpec("odd", "flightsql", {"uri": uri})) as b:
        yield b


def test_views_inside_lists_and_maps_arrive_as_plain_types(odd_types):
    table = run(odd_types, "SELECT lv, mv FROM odd")
    assert table.schema.field("lv").type == pa.list_(pa.field("element", pa.string()))
    assert table.schema.field("mv").type == pa.map_(pa.string(), pa.binary())
    assert table.column("lv").to_pylist() == [["x", None], None]
    assert table.column("mv").to_pylist() == [[("k", b"v")], None]
    assert odd_types.get_schema(plan_for(odd_types, "SELECT lv, mv FROM odd")) == pa.schema(
        [pa.field(f.name, f.type, f.nullable) for f in table.schema]
    )


@pytest.mark.parametrize("column", ["d", "ll"])
def test_a_column_the_upstream_announces_wrongly_is_named_with_the_way_around(odd_types, column):
    """ROAPI announces dictionary and large_list columns but streams them decoded: ADBC refuses such a stream."""
    with pytest.raises(BackendError, match="announced one schema and streamed another.*CAST"):
        run(odd_types, f"SELECT {column} FROM odd")
    assert run(odd_types, "SELECT CAST(d AS VARCHAR) AS d FROM odd").column("d").to_pylist() == ["a", None]


def test_a_message_over_the_sources_limit_names_the_option(roapi):
    spec = SourceSpec("upstream", "flightsql", {"uri": roapi, "max_message_bytes": 1024 * 1024})
    sql = "SELECT REPEAT('x', 2000000 + r_regionkey) AS w FROM region WHERE r_regionkey = 0"
    with FlightSQLBackend(spec) as b, pytest.raises(LimitExceededError, match="2.0 MB.*max_message_bytes"):
        run(b, sql)
    with FlightSQLBackend(SourceSpec("upstream", "flightsql", {"uri": roapi})) as b:
        assert len(run(b, sql).column("w")[0].as_py()) == 2000000


@pytest.fixture(scope="module")
def sail(tpch_dir):
    """Sail, a Spark SQL engine with a Flight SQL server, with TPC-H's nation as a table of parquet."""
    import adbc_driver_flightsql.dbapi as flightsql

    with running_sail() as uri:
        with flightsql.connect(uri, autocommit=True) as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE nation USING parquet LOCATION '{tpch_dir / 'nation.parquet'}'")
            cursor.fetchall()
        yield uri


def test_an_upstream_without_get_schema_is_described_from_its_flight_info(sail):
    """Sail answers GetSchema (ADBC's execute_schema) as not implemented; its FlightInfo carries the schema."""
    with FlightSQLBackend(SourceSpec("sail", "flightsql", {"uri": sail})) as b:
        schema = b.get_schema(plan_for(b, "SELECT n_nationkey, n_name FROM nation"))
        assert schema.names == ["n_nationkey", "n_name"]
        assert schema.field("n_name").type == pa.utf8()
        table = run(b, "SELECT n_nationkey, n_name FROM nation WHERE n_name = 'CHINA'")
        assert table.to_pylist() == [{"n_nationkey": 18, "n_name": "CHINA"}]


def test_parameters_on_an_upstream_without_prepared_statements_are_unsupported(sail):
    """Sail cannot prepare a statement; ADBC then mistakes bound values for a bulk ingestion."""
    with FlightSQLBackend(SourceSpec("sail", "flightsql", {"uri": sail})) as b:
        with pytest.raises(UnsupportedError, match="cannot bind parameters"):
            run(b, "SELECT n_name FROM nation WHERE n_nationkey = ?", [[3]])
        assert run(b, "SELECT n_name FROM nation WHERE n_nationkey = 3").column("n_name").to_pylist() == ["CANADA"]


def test_parameters_through_the_gateway_on_such_an_upstream_are_refused_clearly(sail, tmp_path):
    """Through a gateway the statement is described with its placeholders unbound, which Sail fails as internal."""
    import adbc_driver_flightsql.dbapi as flightsql

    from nexus_flight.core.settings import ServerSettings
    from nexus_flight.server.app.gateway import Gateway

    gateway = Gateway(ServerSettings(port=0, data_dir=tmp_path, demo_scale=None),
                      [SourceSpec("sail", "flightsql", {"uri": sail})]).start()
    try:
        with flightsql.connect(gateway.location, autocommit=True) as conn, conn.cursor() as cur:
            with pytest.raises(flightsql.ProgrammingError, match="INVALID_ARGUMENT.*cannot bind parameters"):
                cur.execute("SELECT n_name FROM nation WHERE n_nationkey = ?", parameters=(3,))
            cur.execute("SELECT n_name FROM nation WHERE n_nationkey = 3")
            assert cur.fetchall() == [("CANADA",)]
    finally:
        gateway.shutdown()


def test_config_validation():
    with pytest.raises(ConfigError):
        FlightSQLBackend(SourceSpec("u", "flightsql", {"uri": "http://x"}))
    with pytest.raises(ConfigError):
        FlightSQLBackend(SourceSpec("u", "flightsql", {"uri": "grpc://x:1", "username": "a"}, {"token": "t"}))


@pytest.mark.parametrize("name", sorted(TPCH_QUERIES))
def test_tpch_matches_duckdb_over_parquet(backend, duckdb_tpch, name):
    expected = duckdb_tpch.execute(TPCH_QUERIES[name].format(s="")).to_arrow_table()
    got = run(backend, TPCH_QUERIES[name].format(s=""))
    assert got.column_names == expected.column_names
    assert normalized(got) == normalized(expected)


def test_types_are_plain_for_clients(backend):
    table = run(backend, "SELECT * FROM lineitem LIMIT 3")
    assert table.schema.field("l_comment").type == pa.utf8()  # string_view upstream
    assert table.schema.field("l_extendedprice").type == pa.decimal128(15, 2)
    assert table.schema.field("l_shipdate").type == pa.date32()
    assert backend.get_schema(plan_for(backend, "SELECT * FROM lineitem")) == pa.schema(
        [pa.field(f.name, f.type, f.nullable) for f in table.schema]
    )


def test_results_stream_in_batches(backend):
    execution = backend.execute(plan_for(backend, "SELECT * FROM lineitem"), None, QueryLimits())
    sizes = [b.num_rows for b in execution.reader]
    execution.close()
    assert sum(sizes) == 60175
    assert len(sizes) > 1


def test_cancel_mid_stream(backend):
    execution = backend.execute(plan_for(backend, "SELECT * FROM lineitem"), None, QueryLimits())
    cancel_after_first_batch(execution)
    assert run(backend, "SELECT count(*) AS n FROM region").column("n").to_pylist() == [5]


def test_non_queries_are_not_sent_upstream(backend):
    for sql in (
        "CREATE TABLE nexus_written AS SELECT 1",
        "INSERT INTO region VALUES (9, 'x', 'y')",
        "DROP TABLE region",
    ):
        with pytest.raises(ReadOnlyViolationError):
            run(backend, sql)
    with pytest.raises(NotFoundError):  # never created
        run(backend, "SELECT * FROM nexus_written")


def test_table_schema_and_missing_table(backend):
    schema = backend.table_schema("public", "nation")
    assert schema.names == ["n_nationkey", "n_name", "n_regionkey", "n_comment"]
    assert schema.field("n_name").type == pa.utf8()
    with pytest.raises(NotFoundError):
        backend.table_schema("public", "nope")


def test_roapi_catalog_browsing_fails_clearly(backend):
    # ROAPI answers GetDbSchemas/GetTables with a schema the ADBC driver rejects (TEST_SERVERS.md).
    with pytest.raises(UnsupportedError, match="metadata answer"):
        backend.list_tables()


def test_parameter_schema_falls_back_to_utf8(backend):
    schema = backend.get_parameter_schema(plan_for(backend, "SELECT * FROM nation WHERE n_nationkey = ?"))
    assert schema.field(0).type == pa.utf8()


def test_unknown_table(backend):
    with pytest.raises(NotFoundError, match="table '.*nope' not found"):
        run(backend, "SELECT * FROM nope")


def test_wrong_port_is_unavailable():
    with FlightSQLBackend(SourceSpec("upstream", "flightsql", {"uri": f"grpc://127.0.0.1:{free_port()}"})) as b:
        with pytest.raises(BackendUnavailableError) as info:
            b.ping()
    assert info.value.details["source"] == "upstream"
    assert "connection refused" in info.value.message


@pytest.fixture
def peer(make_gateway):
    """A second Nexus Flight gateway (the demo catalog) as the upstream."""
    return make_gateway()


def test_peer_gateway_catalog_browsing_and_parameters(peer):
    spec = SourceSpec("peer", "flightsql", {"uri": peer.location, "username": "reader"}, {"password": "pw"})
    with FlightSQLBackend(spec) as b:
        assert "demo.main" in b.list_schemas()
        tables = {t.name for t in b.list_tables("demo.main")}
        assert {"lineitem", "nation"} <= tables
        assert b.table_schema("demo.main", "customer").field("c_acctbal").type == pa.decimal128(15, 2)
        plan = plan_for(b, "SELECT n_name FROM nation WHERE n_nationkey = ?")
        assert b.get_parameter_schema(plan).field(0).type == pa.int64()
        table = run(b, "SELECT n_name FROM nation WHERE n_nationkey = ?", [[3], [1]])
        assert table.column("n_name").to_pylist() == ["CANADA", "ARGENTINA"]


def test_peer_gateway_with_a_pinned_catalog(peer):
    with FlightSQLBackend(SourceSpec("peer", "flightsql", {"uri": peer.location, "catalog": "demo"})) as b:
        assert b.list_schemas() == ["main"]
        assert "orders" in {t.name for t in b.list_tables("main")}
        orders = b.table_schema("main", "orders")
        assert orders.field("o_totalprice").type == pa.decimal128(15, 2)
        # The upstream's own type names (a DuckDB demo: DuckDB's) are passed on, not Arrow's.
        assert orders.field("o_totalprice").metadata[DATABASE_TYPE_NAME] == b"DECIMAL(15,2)"
