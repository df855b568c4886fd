"""Sessions without sign-in follow a cookie the gateway gives, or the token of a Handshake, not the connection.

Behind a proxy a connection is the proxy's: shared by clients, and not kept from one call to the next. A client
without sign-in that sets session options gets an ``arrow_flight_session_id`` cookie; clients that keep cookies
(ADBC with its cookie middleware) carry their session to any connection and any replica. A client
that handshakes (the JDBC driver, ``authenticate_basic_token``) gets a token that keys its session
on every replica sharing the catalog.
"""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow.flight as flight
import pytest

from nexus_flight.catalog.store import CatalogStore
from nexus_flight.core.settings import ServerSettings
from nexus_flight.server.app.gateway import Gateway
from nexus_flight.server.app.replicas import shared_sessions
from nexus_flight.server.flight.protocol import flight as fpb
from tests.support import flightsql_raw as raw


class _Cookies(flight.ClientMiddlewareFactory):
    """Keeps the cookies a server sets and sends them back, as a browser does."""

    def __init__(self, jar: dict[str, str] | None = None) -> None:
        self.jar = jar if jar is not None else {}

    def start_call(self, info):
        return _CookieCall(self.jar)


class _CookieCall(flight.ClientMiddleware):
    def __init__(self, jar: dict[str, str]) -> None:
        self.jar = jar

    def sending_headers(self):
        if not self.jar:
            return {}
        return {"cookie": "; ".join(f"{k}={v}" for k, v in self.jar.items())}

    def received_headers(self, headers):
        for value in headers.get("set-cookie", []):
            name, _, rest = value.partition("=")
            self.jar[name.strip()] = rest.split(";")[0]


def _set(client: flight.FlightClient, options=None, **values: str) -> None:
    request = fpb.SetSessionOptionsRequest()
    for name, value in values.items():
        request.session_options[name].string_value = value
    [result] = client.do_action(flight.Action("SetSessionOptions", request.SerializeToString()), options)
    parsed = fpb.SetSessionOptionsResult()
    parsed.ParseFromString(result.body.to_pybytes())
    assert dict(parsed.errors) == {}


def _dialect(client: flight.FlightClient, options=None) -> str:
    [result] = client.do_action(flight.Action("GetSessionOptions", b""), options)
    got = fpb.GetSessionOptionsResult()
    got.ParseFromString(result.body.to_pybytes())
    return got.session_options["dialect"].string_value if "dialect" in got.session_options else ""


POSTGRES_ONLY = "SELECT n_name::text AS n FROM nation WHERE n_nationkey = 3 AND n_name ILIKE 'c%'"


def test_a_cookie_carries_the_session_to_another_connection(gateway):
    jar: dict[str, str] = {}
    with flight.connect(gateway.location, middleware=[_Cookies(jar)]) as first:
        _set(first, dialect="postgres")
    assert set(jar) == {"arrow_flight_session_id"} and len(jar["arrow_flight_session_id"]) >= 32
    # Another connection with the cookie (what a proxy's next call is) is the same session ...
    with flight.connect(gateway.location, middleware=[_Cookies(dict(jar))]) as second:
        assert _dialect(second) == "postgres"
        _, table = raw.info_and_table(second, raw.pb.CommandStatementQuery(query=POSTGRES_ONLY))
        assert table.to_pylist() == [{"n": "CANADA"}]
    # ... and another client's is not.
    other_jar: dict[str, str] = {}
    with flight.connect(gateway.location, middleware=[_Cookies(other_jar)]) as other:
        assert _dialect(other) == ""
        _set(other, dialect="mysql")
        assert _dialect(other) == "mysql"
    assert other_jar["arrow_flight_session_id"] != jar["arrow_flight_session_id"]
    with flight.connect(gateway.location, middleware=[_Cookies(dict(jar))]) as again:
        assert _dialect(again) == "postgres"


def test_a_client_without_cookies_keeps_its_session_on_its_connection(gateway):
    """flightsql-dbapi and ADBC without its cookie middleware send no cookie: their connection is the session."""
    with flight.connect(gateway.location) as client:
        _set(client, dialect="postgres")
        assert _dialect(client) == "postgres"
        _, table = raw.info_and_table(client, raw.pb.CommandStatementQuery(query=POSTGRES_ONLY))
        assert table.to_pylist() == [{"n": "CANADA"}]


def test_adbc_with_its_cookie_middleware_keeps_the_session(gateway):
    with flightsql.connect(gateway.location, autocommit=True,
                           db_kwargs={"adbc.flight.sql.rpc.with_cookie_middleware": "true"}) as conn:
        conn.adbc_connection.set_options(**{"adbc.flight.sql.session.option.dialect": "postgres"})
        with conn.cursor() as cur:
            cur.execute(POSTGRES_ONLY)
            assert cur.fetchall() == [("CANADA",)]


@pytest.fixture
def two_replicas(tmp_path, demo_data_dir):
    """Two gateways without sign-in sharing one catalog's sessions, as replicas behind a proxy are."""
    store = CatalogStore(data_dir=tmp_path / "catalog")
    replicas = [Gateway(ServerSettings(port=0, data_dir=demo_data_dir), sessions=shared_sessions(store)).start()
                for _ in range(2)]
    yield replicas
    for replica in replicas:
        replica.shutdown()
    store.close()


def test_a_cookie_session_is_served_by_another_replica(two_replicas):
    a, b = two_replicas
    jar: dict[str, str] = {}
    with flight.connect(a.location, middleware=[_Cookies(jar)]) as client:
        _set(client, dialect="postgres")
    with flight.connect(b.location, middleware=[_Cookies(dict(jar))]) as client:
        assert _dialect(client) == "postgres"
        _, table = raw.info_and_table(client, raw.pb.CommandStatementQuery(query=POSTGRES_ONLY))
        assert table.to_pylist() == [{"n": "CANADA"}]


def test_a_handshake_token_session_is_served_by_another_replica(two_replicas):
    """Without authentication a Handshake's token proves nothing, but it is random: it names its client anywhere."""
    a, b = two_replicas
    with flight.connect(a.location) as client:
        header = client.authenticate_basic_token("anyone", "anything")
        options = flight.FlightCallOptions(headers=[header])
        _set(client, options, dialect="postgres")
    with flight.connect(b.location) as client:
        assert _dialect(client, options) == "postgres"
        assert _dialect(client) == ""  # without the token: a session of its own
