"""Each database backend end to end: a gateway serving it, queried with the real ADBC Flight SQL client."""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pytest

from nexus_flight.core.source import SourceSpec
from tests.backends.conftest import TPCH_QUERIES, normalized, options
from tests.support.mysql_reader import reader_spec
from tests.support.plan_reads import record_plan_reads


def query(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetch_arrow_table()


def test_postgres_through_the_gateway(make_gateway, pg_tpch, duckdb_tpch, postgres_server):
    spec = SourceSpec("pgsrc", "postgres", postgres_server.options())
    gw = make_gateway(sources=(spec,), demo_scale=None)
    with flightsql.connect(gw.location, autocommit=True) as conn:
        table = query(conn, "SELECT n_name FROM pgsrc.nexus_tpch.nation WHERE n_nationkey = ?", (3,))
        assert table.column("n_name").to_pylist() == ["CANADA"]
        total = query(conn, "SELECT sum(l_extendedprice) AS s FROM pgsrc.nexus_tpch.lineitem")
        expected = duckdb_tpch.execute("SELECT sum(l_extendedprice) FROM lineitem").fetchone()[0]
        assert total.column("s")[0].as_py() == expected  # sum over numeric(15,2): an exact decimal of scale 2
        assert total.schema.field("s").type == pa.decimal128(38, 2)
        objects = conn.adbc_get_objects(depth="tables", catalog_filter="pgsrc").read_all().to_pylist()
        schemas = {s["db_schema_name"]: s for s in objects[0]["catalog_db_schemas"]}
        assert "lineitem" in {t["table_name"] for t in schemas["nexus_tpch"]["db_schema_tables"]}


def test_postgres_refuses_writes_with_the_validator_off(make_gateway, pg_tpch, postgres_server):
    spec = SourceSpec("pgsrc", "postgres", postgres_server.options())
    gw = make_gateway(sources=(spec,), demo_scale=None, validate_sql=False)
    with flightsql.connect(gw.location, autocommit=True) as conn:
        with pytest.raises(flightsql.Error, match="read-only transaction"):
            query(conn, "CREATE TABLE nexus_tpch.nexus_e2e (a int)")


def test_mysql_through_the_gateway(make_gateway, mysql_tpch, mariadb_server):
    gw = make_gateway(sources=(reader_spec(mariadb_server, "nexus_tpch"),), demo_scale=None)
    with flightsql.connect(gw.location, autocommit=True) as conn:
        table = query(conn, "SELECT n_name FROM mysrc.nexus_tpch.nation WHERE n_nationkey = ?", (3,))
        assert table.column("n_name").to_pylist() == ["CANADA"]
        prices = query(conn, "SELECT o_totalprice FROM mysrc.nexus_tpch.orders LIMIT 1")
        assert str(prices.schema.field("o_totalprice").type) == "decimal128(15, 2)"
        names = query(conn, "SELECT count(*), avg(n_nationkey) FROM nation")
        assert names.column_names == ["count(*)", "avg(n_nationkey)"]
        objects = conn.adbc_get_objects(depth="tables", catalog_filter="mysrc").read_all().to_pylist()
        schemas = {s["db_schema_name"]: s for s in objects[0]["catalog_db_schemas"]}
        assert list(schemas) == ["nexus_tpch"]  # the configured database only
        assert "lineitem" in {t["table_name"] for t in schemas["nexus_tpch"]["db_schema_tables"]}


def test_sqlite_through_the_gateway(make_gateway, sqlite_file):
    spec = SourceSpec("litesrc", "sqlite", {"path": str(sqlite_file)})
    gw = make_gateway(sources=(spec,), demo_scale=None)
    with flightsql.connect(gw.location, autocommit=True) as conn:
        table = query(conn, "SELECT n_name FROM litesrc.main.nation WHERE n_nationkey = ?", (3,))
        assert table.column("n_name").to_pylist() == ["CANADA"]


def test_flightsql_upstream_through_the_gateway(make_gateway, roapi):
    spec = SourceSpec("upstream", "flightsql", {"uri": roapi})
    gw = make_gateway(sources=(spec,), demo_scale=None)
    with flightsql.connect(gw.location, autocommit=True) as conn:
        table = query(conn, "SELECT n_name FROM upstream.public.nation WHERE n_nationkey = 3")
        assert table.column("n_name").to_pylist() == ["CANADA"]


def test_snowflake_through_the_gateway(make_gateway, loaded):
    spec = SourceSpec("snow", "snowflake", options(loaded), {"password": "x"})
    gw = make_gateway(sources=(spec,), demo_scale=None)
    with flightsql.connect(gw.location, autocommit=True) as conn:
        table = query(conn, "SELECT n_name FROM snow.tpch.nation WHERE n_nationkey = ?", (3,))
        assert table.column(0).to_pylist() == ["CANADA"]


@pytest.fixture(scope="module")
def tpch_gateway(pg_tpch, mysql_tpch, tmp_path_factory, postgres_server, mariadb_server):
    """One gateway serving the PostgreSQL and MariaDB copies of TPC-H."""
    from nexus_flight.core.settings import ServerSettings
    from nexus_flight.server.app.gateway import Gateway

    sources = (
        SourceSpec("pgsrc", "postgres", postgres_server.options()),
        reader_spec(mariadb_server, "nexus_tpch"),
    )
    config = ServerSettings(port=0, demo_scale=None, data_dir=tmp_path_factory.mktemp("gw"))
    gw = Gateway(config, sources).start()
    yield gw
    gw.shutdown()


@pytest.mark.parametrize("source", ["pgsrc", "mysrc"])
@pytest.mark.parametrize("name", sorted(TPCH_QUERIES))
def test_tpch_through_the_gateway_matches_duckdb(tpch_gateway, duckdb_tpch, source, name):
    expected = duckdb_tpch.execute(TPCH_QUERIES[name].format(s="")).to_arrow_table()
    with flightsql.connect(tpch_gateway.location, autocommit=True) as conn:
        got = query(conn, TPCH_QUERIES[name].format(s=f"{source}.nexus_tpch."))
    assert got.column_names == expected.column_names
    assert normalized(got) == normalized(expected)


def test_duckdb_functions_mean_nothing_on_a_mysql_source(make_gateway, mysql_tpch, mariadb_server):
    """DuckDB no longer runs a MySQL source's SQL: query() and read_csv() are not MySQL's, so nothing runs them.

    The validator refuses functions outside MySQL's allow-list; with it off, MariaDB itself has no such syntax.
    """
    spec = reader_spec(mariadb_server, "nexus_tpch", name="my_engine")
    for validate_sql, refusal in ((True, "QV-0|SQL syntax"), (False, "SQL syntax")):
        gw = make_gateway(sources=(spec,), demo_scale=None, validate_sql=validate_sql)
        with flightsql.connect(gw.location, autocommit=True) as conn:
            for sql in ("SELECT * FROM query('SELECT 42')", "SELECT * FROM read_csv('/etc/passwd')"):
                with conn.cursor() as cur, pytest.raises(flightsql.ProgrammingError, match=refusal):
                    cur.execute(sql)
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM nation")
                assert cur.fetchone()[0] == 25


def test_plain_postgres_queries_are_decided_on_postgresqls_reading_alone(
    make_gateway, pg_tpch, postgres_server, monkeypatch
):
    """On a PostgreSQL default source, queries without a catalog-qualified name reach PostgreSQL on its own
    reading alone and answer what PostgreSQL's own client answers; sqlglot's tree is read only for the query whose
    result is an unconstrained numeric (the backend follows its scale through the tree); an attack written so that
    only PostgreSQL decodes it is still refused."""
    import psycopg

    record = record_plan_reads(monkeypatch)
    spec = SourceSpec("pgsrc", "postgres", postgres_server.options())
    gw = make_gateway(sources=(spec,), demo_scale=None, default_source="pgsrc")
    queries = [
        "SELECT n_name, n_regionkey FROM nexus_tpch.nation WHERE n_name LIKE 'UNITED%' ORDER BY n_name",
        "SELECT r_name, count(*) AS n FROM nexus_tpch.nation JOIN nexus_tpch.region ON n_regionkey = r_regionkey "
        "GROUP BY r_name ORDER BY r_name",
        "SELECT sum(l_extendedprice * (1 - l_discount)) AS revenue FROM nexus_tpch.lineitem WHERE l_discount > 0.05",
    ]
    with flightsql.connect(gw.location, autocommit=True) as conn, psycopg.connect(postgres_server.dsn()) as own:
        for sql in queries:
            got = [tuple(row.values()) for row in query(conn, sql).to_pylist()]
            assert got == own.execute(sql).fetchall(), sql
        assert record.decided == [True] * len(queries) and record.reads == [queries[2]]
        with pytest.raises(flightsql.ProgrammingError, match=r"QV-0(05|11)"):
            query(conn, "SELECT U&\"\\0070g_read_file\"('/etc/hostname')")
