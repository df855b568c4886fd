"""TLS and mTLS with certificates from trustme, through ADBC and pyarrow."""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow.flight as flight
import pytest
import trustme


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("nexus-client")
    d = tmp_path_factory.mktemp("pki")
    paths = {
        "ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key",
        "client_cert": d / "client.pem", "client_key": d / "client.key",
    }
    ca.cert_pem.write_to_path(paths["ca"])
    server.private_key_pem.write_to_path(paths["key"])
    paths["cert"].write_bytes(b"".join(b.bytes() for b in server.cert_chain_pems))
    client.private_key_pem.write_to_path(paths["client_key"])
    paths["client_cert"].write_bytes(b"".join(b.bytes() for b in client.cert_chain_pems))
    return paths


def test_tls_with_adbc_and_pyarrow(make_gateway, pki):
    gw = make_gateway(tls={"cert_file": pki["cert"], "key_file": pki["key"]})
    assert gw.location.startswith("grpc+tls://")
    ca = pki["ca"].read_text()
    with flightsql.connect(gw.location, db_kwargs={"adbc.flight.sql.client_option.tls_root_certs": ca},
                           autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM region")
        assert cur.fetchone()[0] == 5
    with flight.connect(gw.location, tls_root_certs=ca.encode()) as client:
        assert any(a.type == "CreatePreparedStatement" for a in client.list_actions())


def test_plaintext_client_against_tls_fails_cleanly(make_gateway, pki):
    gw = make_gateway(tls={"cert_file": pki["cert"], "key_file": pki["key"]})
    with flight.connect(f"grpc://127.0.0.1:{gw.port}") as client:
        with pytest.raises(flight.FlightUnavailableError):
            client.list_actions(flight.FlightCallOptions(timeout=5))


def test_mtls_requires_a_client_certificate(make_gateway, pki):
    gw = make_gateway(tls={"cert_file": pki["cert"], "key_file": pki["key"], "client_ca_file": pki["ca"]})
    ca = pki["ca"].read_text()
    options = {
        "adbc.flight.sql.client_option.tls_root_certs": ca,
        "adbc.flight.sql.client_option.mtls_cert_chain": pki["client_cert"].read_text(),
        "adbc.flight.sql.client_option.mtls_private_key": pki["client_key"].read_text(),
    }
    with flightsql.connect(gw.location, db_kwargs=options, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone()[0] == 1
    with flight.connect(gw.location, tls_root_certs=ca.encode()) as client:
        with pytest.raises(flight.FlightError):
            client.list_actions(flight.FlightCallOptions(timeout=5))


def test_tls_config_needs_both_files(make_gateway, pki):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"tls\.key_file\n  Field required"):
        make_gateway(tls={"cert_file": pki["cert"]})
