"""Files, Delta and Iceberg sources end to end: the gateway on a free port, queried with ADBC Flight SQL."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests.lake.conftest import require_modules

require_modules("deltalake", "pyiceberg")

from deltalake import write_deltalake  # noqa: E402

from nexus_flight.core.source import SourceSpec  # noqa: E402
from tests.lake.conftest import sales_table, write_hive  # noqa: E402

flightsql = pytest.importorskip("adbc_driver_flightsql.dbapi")


@pytest.fixture(scope="module")
def lake_gateway(tmp_path_factory):
    from pyiceberg.catalog.sql import SqlCatalog

    from nexus_flight.core.settings import ServerSettings
    from nexus_flight.server.app.gateway import Gateway

    root = tmp_path_factory.mktemp("lake_gateway")
    data = sales_table(600)
    write_hive(data, pa.fs.LocalFileSystem(), str(root / "files"))
    write_deltalake(str(root / "delta"), data.slice(0, 200), partition_by=["region"])
    write_deltalake(str(root / "delta"), data.slice(200), mode="append", partition_by=["region"])
    uri, warehouse = f"sqlite:///{root}/catalog.db", f"file://{root}/warehouse"
    catalog = SqlCatalog("gw", uri=uri, warehouse=warehouse)
    catalog.create_namespace("shop")
    iceberg = catalog.create_table("shop.sales", schema=data.select(["id", "region", "amount"]).schema)
    iceberg.append(data.select(["id", "region", "amount"]))
    sources = (
        SourceSpec(
            "lakefiles",
            "files",
            {"tables": [{"name": "sales", "location": str(root / "files"), "hive_partitioning": True}]},
        ),
        SourceSpec("lakedelta", "delta", {"tables": [{"name": "sales", "location": str(root / "delta")}]}),
        SourceSpec(
            "lakeice",
            "iceberg",
            {
                "catalog": {"type": "sql", "name": "gw", "properties": {"uri": uri, "warehouse": warehouse}},
                "tables": [{"name": "sales", "identifier": "shop.sales"}],
            },
        ),
    )
    gateway = Gateway(ServerSettings(port=0, data_dir=root / "data", demo_scale=None), sources).start()
    yield gateway, data, sources
    gateway.shutdown()


@pytest.fixture
def client(lake_gateway):
    gateway, _, _ = lake_gateway
    conn = flightsql.connect(gateway.location, autocommit=True)
    yield conn
    conn.close()


def fetch(conn, sql: str) -> list[tuple]:
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


@pytest.mark.parametrize("catalog", ["lakefiles", "lakedelta", "lakeice"])
def test_each_lake_source_answers_like_pyarrow(client, lake_gateway, catalog):
    _, data, _ = lake_gateway
    got = fetch(
        client, f"SELECT region, count(*), sum(amount) FROM {catalog}.main.sales GROUP BY 1 ORDER BY 1"
    )
    expected = {}
    for row in data.to_pylist():
        n, total = expected.get(row["region"], (0, 0.0))
        expected[row["region"]] = (n + 1, total + row["amount"])
    assert [(r, n) for r, n, _ in got] == [(r, v[0]) for r, v in sorted(expected.items())]
    assert [t for _, _, t in got] == pytest.approx([v[1] for _, v in sorted(expected.items())])


def test_time_travel_through_the_gateway(client):
    assert fetch(client, 'SELECT count(*) FROM lakedelta.main."sales@v0"') == [(200,)]
    assert fetch(client, "SELECT count(*) FROM lakedelta.main.sales") == [(600,)]


def test_lake_tables_in_the_metadata(client):
    objects = client.adbc_get_objects(depth="tables").read_all().to_pylist()
    catalogs = {o["catalog_name"]: o for o in objects}
    for name in ("lakefiles", "lakedelta", "lakeice"):
        tables = [
            t["table_name"] for s in catalogs[name]["catalog_db_schemas"] for t in s["db_schema_tables"]
        ]
        assert tables == ["sales"]
    schema = client.adbc_get_table_schema("sales", catalog_filter="lakefiles", db_schema_filter="main")
    assert schema.names == ["id", "amount", "day", "region"]


def test_file_readers_are_refused_through_the_gateway(client):
    import adbc_driver_manager

    with pytest.raises(adbc_driver_manager.Error) as info:
        fetch(client, "SELECT count(*) FROM read_csv('/etc/passwd')")
    assert "QV-005" in str(info.value)


def test_second_line_holds_with_the_validator_off(lake_gateway, tmp_path):
    """With the validator switched off, DuckDB itself refuses file access and writes."""
    import adbc_driver_manager

    from nexus_flight.core.settings import ServerSettings
    from nexus_flight.server.app.gateway import Gateway

    _, _, specs = lake_gateway
    sources = [s for s in specs if s.name == "lakefiles"]
    settings = ServerSettings(port=0, data_dir=tmp_path, demo_scale=None, validate_sql=False)
    unguarded = Gateway(settings, sources).start()
    try:
        with flightsql.connect(unguarded.location, autocommit=True) as conn:
            with pytest.raises(adbc_driver_manager.Error, match="disabled by configuration"):
                fetch(conn, "SELECT count(*) FROM read_csv('/etc/passwd')")
            with pytest.raises(adbc_driver_manager.Error, match="read-only"):
                fetch(conn, "CREATE TABLE lakefiles.main.copy AS SELECT 1")
            assert fetch(conn, "SELECT count(*) FROM lakefiles.main.sales") == [(600,)]
    finally:
        unguarded.shutdown()


def test_history_event_records_the_table_version_read(client, lake_gateway):
    """The query event (what history stores) names the Delta version and Iceberg snapshot a query read."""
    import time

    gateway, _, _ = lake_gateway
    events = []
    gateway.service.observers.append(events.append)
    try:
        fetch(client, "SELECT count(*) FROM lakedelta.main.sales")
        fetch(client, 'SELECT count(*) FROM lakedelta.main."sales@v0"')
        fetch(client, "SELECT count(*) FROM lakeice.main.sales")
        deadline = time.monotonic() + 5
        while len(events) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        gateway.service.observers.remove(events.append)
    latest, first, iceberg = events[:3]
    assert latest.table_version == "sales@1" and first.table_version == "sales@0"
    assert iceberg.table_version and iceberg.table_version.startswith("sales@")
