"""Gateways, data and certificates the real-client tests share, and the hooks that fill the conformance matrix."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus_flight.core.settings import ServerSettings
from nexus_flight.core.source import SourceSpec
from nexus_flight.server.app.gateway import Gateway
from tests.clients import matrix

PG_SCHEMA = "client_types"

#: One row of every PostgreSQL type the JDBC getters are read for, one row of NULLs, one of edge values.
PG_TABLES = f"""
DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE;
CREATE SCHEMA {PG_SCHEMA};
CREATE TABLE {PG_SCHEMA}.everything (
    id integer PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, r4 real, r8 double precision,
    num numeric(12, 4), flag boolean, txt text, vc varchar(20), day date, tod time,
    ts timestamp, tstz timestamptz, bin bytea, ints integer[]
);
INSERT INTO {PG_SCHEMA}.everything VALUES
    (1, -32768, 2147483647, -9223372036854775808, 1.5, -2.25, 12345678.1234, true, 'Zürich 東京 ✓', 'naïve',
     '1995-03-15', '13:45:30', '2020-01-02 03:04:05.123456', '2020-06-30 23:59:59.5+00', '\\xdeadbeef', '{{1,2,3}}'),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (3, 0, 0, 0, 0, 0, -0.0001, false, '', '', '1970-01-01', '00:00:00', '1969-12-31 23:59:59',
     '1900-01-01 00:00:00+00', '\\x', '{{}}');
CREATE TABLE {PG_SCHEMA}.child (
    id integer PRIMARY KEY, parent_id integer CONSTRAINT child_parent_fk REFERENCES {PG_SCHEMA}.everything (id)
);
INSERT INTO {PG_SCHEMA}.child VALUES (10, 1), (11, 3);
CREATE VIEW {PG_SCHEMA}.everything_ids AS SELECT id FROM {PG_SCHEMA}.everything;
"""


@pytest.fixture(scope="session")
def client_pg_source(postgres_server) -> SourceSpec:
    """A PostgreSQL source whose ``client_types`` schema holds the tables above."""
    import psycopg

    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(PG_TABLES)
    return SourceSpec("pg", "postgres", postgres_server.options())


@pytest.fixture(scope="session")
def clients_gateway(demo_data_dir, client_pg_source) -> Iterator[Gateway]:
    """The demo catalog plus PostgreSQL as catalog ``pg``, on a free port."""
    gw = Gateway(ServerSettings(port=0, data_dir=demo_data_dir), [client_pg_source]).start()
    yield gw
    gw.shutdown()


@pytest.fixture(scope="session")
def query_events(clients_gateway) -> list:
    """Every query the clients gateway finished, in order (status success, cancelled, timeout …)."""
    events: list = []
    clients_gateway.service.observers.append(events.append)
    return events


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A test CA (trustme), the server's certificate for localhost, and the CA as a PKCS#12 trust store for JDBC."""
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    root = tmp_path_factory.mktemp("client-pki")
    paths = {"ca": root / "ca.pem", "cert": root / "server.pem", "key": root / "server.key",
             "truststore": root / "truststore.p12"}
    ca.cert_pem.write_to_path(paths["ca"])
    server.private_key_pem.write_to_path(paths["key"])
    paths["cert"].write_bytes(b"".join(b.bytes() for b in server.cert_chain_pems))
    keytool = shutil.which("keytool")
    if keytool:
        subprocess.run([keytool, "-importcert", "-noprompt", "-alias", "nexus-test-ca", "-file", str(paths["ca"]),
                        "-keystore", str(paths["truststore"]), "-storetype", "PKCS12", "-storepass", "changeit"],
                       check=True, capture_output=True)
    return paths


@pytest.fixture(scope="session")
def tls_gateway(demo_data_dir, pki) -> Iterator[Gateway]:
    """The demo catalog over TLS with the test CA's certificate for localhost."""
    tls = {"cert_file": pki["cert"], "key_file": pki["key"]}
    gw = Gateway(ServerSettings(port=0, data_dir=demo_data_dir, tls=tls)).start()
    yield gw
    gw.shutdown()


def _cell(item) -> tuple[str, str] | None:
    marker = item.get_closest_marker("matrix")
    if marker is None:
        return None
    callspec = getattr(item, "callspec", None)
    client = marker.kwargs.get("client") or (callspec.params.get("client") if callspec else None)
    return client, marker.args[0]


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "matrix(capability, client=None): the conformance-matrix cell a test fills")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    cell = _cell(item)
    if cell is None or report.skipped:
        return
    if report.when == "call" or report.failed:
        matrix.record(*cell, report.passed)


def pytest_sessionfinish(session, exitstatus) -> None:
    matrix.write_if_complete()
