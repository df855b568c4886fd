"""Sessions of clients that neither sign in nor keep cookies, behind nginx in front of two replicas.

Behind a proxy the replicas see nginx's connections, not the clients': each carries many clients' calls, and one
client's calls arrive over several. With ``client_connection_header`` the gateway keys such a client's session on
the connection nginx names in ``x-client-connection`` (``deploy/nginx.conf``), and shares it through the catalog
like a cookie's: each client keeps its own options, on every replica. Everything real: two ``nexus-flight serve``
processes on one catalog, Debian's nginx with the deployment's file, pyarrow.flight and ADBC as clients; counts
are compared with pyarrow's own reading of the parquet files.
"""

from __future__ import annotations

import os
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from nexus_flight.catalog.vault import generate_key
from nexus_flight.server.flight.protocol import flight as fpb
from nexus_flight.server.query.session import shareable
from tests.operations.serving import serve_many, share_demo, start_nginx, stop_behind_proxy
from tests.support import flightsql_raw as raw
from tests.support.services import free_port

pytestmark = pytest.mark.timeout(120)

COUNT_TRIPS = "SELECT count(*) AS n FROM trips"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory, demo_data_dir):
    root = tmp_path_factory.mktemp("proxy-sessions")
    files = root / "trips"
    files.mkdir()
    for part in range(2):
        pq.write_table(pa.table({"trip": pa.array(range(part * 50, part * 50 + 70), pa.int64())}),
                       files / f"part-{part}.parquet")
    config = root / "gateway.toml"
    config.write_text(f"""
[server.auth]
client_address_header = "x-forwarded-for"
client_connection_header = "x-client-connection"

[[sources]]
name = "files"
type = "local_files"
options = {{ tables = [ {{ name = "trips", location = "{files}" }} ] }}
""")
    saved = os.environ.get("NEXUS_FLIGHT_MASTER_KEY")
    os.environ["NEXUS_FLIGHT_MASTER_KEY"] = generate_key()  # tickets signed on one replica, redeemed on the other
    replicas, proxy = [], None
    try:
        data = share_demo(root / "data", demo_data_dir)
        replicas = serve_many(2, data, "--config", str(config), "--http-port", "0")
        port = free_port()
        proxy = start_nginx([r.location.removeprefix("grpc://") for r in replicas], port, root / "nginx")
        yield {"proxy": f"grpc://127.0.0.1:{port}", "replicas": replicas, "trips": ds.dataset(files).count_rows()}
    finally:
        stop_behind_proxy(proxy, replicas)
        if saved is None:
            os.environ.pop("NEXUS_FLIGHT_MASTER_KEY", None)
        else:
            os.environ["NEXUS_FLIGHT_MASTER_KEY"] = saved


def _set_catalog(client: flight.FlightClient, catalog: str) -> None:
    request = fpb.SetSessionOptionsRequest()
    request.session_options["catalog"].string_value = catalog
    [result] = client.do_action(flight.Action("SetSessionOptions", request.SerializeToString()))
    parsed = fpb.SetSessionOptionsResult()
    parsed.ParseFromString(result.body.to_pybytes())
    assert dict(parsed.errors) == {}


def _catalog_option(client: flight.FlightClient) -> str | None:
    [result] = client.do_action(flight.Action("GetSessionOptions", b""))
    got = fpb.GetSessionOptionsResult()
    got.ParseFromString(result.body.to_pybytes())
    return got.session_options["catalog"].string_value if "catalog" in got.session_options else None


def _queries_per_replica(replicas) -> list[float]:
    counts = []
    for replica in replicas:
        with urllib.request.urlopen(replica.http + "/metrics", timeout=5) as answer:
            text = answer.read().decode()
        counts.append(sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
                          if s.name == "nexus_queries_total"))
    return counts


def test_each_client_keeps_its_own_session_on_every_replica(proxied):
    """Two pyarrow.flight clients, no sign-in, no cookies: one's catalog option is its own, wherever a call lands."""
    chosen = flight.FlightClient(proxied["proxy"])
    other = flight.FlightClient(proxied["proxy"])
    _set_catalog(chosen, "files")
    before = _queries_per_replica(proxied["replicas"])
    for _ in range(4):  # three calls a round, each balanced on its own: both replicas plan, run and answer each
        _, table = raw.info_and_table(chosen, raw.pb.CommandStatementQuery(query=COUNT_TRIPS))
        assert table.to_pylist() == [{"n": proxied["trips"]}]
        assert _catalog_option(chosen) == "files"
    after = _queries_per_replica(proxied["replicas"])
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    # The other client, over its own connection to the same nginx, never chose a catalog.
    assert _catalog_option(other) == "demo"  # the default source
    with pytest.raises(pa.ArrowKeyError, match="trips does not exist"):
        other.get_flight_info(raw.descriptor(raw.pb.CommandStatementQuery(query=COUNT_TRIPS)))
    assert _catalog_option(chosen) == "files"
    chosen.do_action(flight.Action("CloseSession", b""))
    assert _catalog_option(chosen) == "demo"
    chosen.close()
    other.close()


def test_adbc_connections_without_cookies_keep_their_current_catalog_apart(proxied):
    """ADBC's current catalog (SetSessionOptions) without its cookie middleware, two connections side by side."""
    with (flightsql.connect(proxied["proxy"], autocommit=True) as on_files,
          flightsql.connect(proxied["proxy"], autocommit=True) as on_default):
        on_files.adbc_current_catalog = "files"
        with on_files.cursor() as files_cursor, on_default.cursor() as default_cursor:
            for _ in range(3):
                files_cursor.execute(COUNT_TRIPS)
                assert files_cursor.fetch_arrow_table().to_pylist() == [{"n": proxied["trips"]}]
                default_cursor.execute("SELECT count(*) AS n FROM nation")
                assert default_cursor.fetch_arrow_table().to_pylist() == [{"n": 25}]
        assert on_files.adbc_current_catalog == "files"
        assert on_default.adbc_current_catalog != "files"


@pytest.mark.parametrize(("key", "shared"), [
    ("conn:proxy-host/812/40", True),  # a connection the proxy names: the same on every replica
    ("key:3f9c@conn:proxy-host/812/40", True),  # an API key's session on such a connection
    ("key:3f9c@ipv4:127.0.0.1:51234", False),  # an API key's session on this process's own peer
    ("peer:ipv4:127.0.0.1:51234", False),
    ("cookie:Zm9v", True),
    ("sid:1234", True),
])
def test_which_session_keys_replicas_share(key, shared):
    assert shareable(key) is shared
