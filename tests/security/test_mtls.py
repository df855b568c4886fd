"""Client certificates as identities: with ``--tls-client-ca`` and ``mtls`` among the methods, a verified
certificate's first subject alternative name (else its CN) is the user, as gRPC reports the peer identity."""

from __future__ import annotations

import pyarrow.flight as flight
import pytest
import trustme

from nexus_flight.catalog.users import add_user, update_user
from nexus_flight.core.errors import ConfigError
from nexus_flight.core.settings import AuthSettings, TLSSettings
from tests.security.conftest import ALICE_PASSWORD, bearer, sign_in
from tests.security.test_sign_in import count, refused

MTLS = AuthSettings(enabled=True, methods=["password", "api_key", "mtls"])


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = trustme.CA()
    root = tmp_path_factory.mktemp("mtls")
    server = ca.issue_cert("localhost", "127.0.0.1")
    server.private_key_pem.write_to_path(root / "server.key")
    (root / "server.pem").write_bytes(b"".join(b.bytes() for b in server.cert_chain_pems))
    ca.cert_pem.write_to_path(root / "ca.pem")
    clients = {
        "carol": ca.issue_cert(common_name="carol"),  # no SAN: the CN names the user
        "dave": ca.issue_cert("dave@example.com", common_name="ignored-cn"),  # the SAN names the user
        "eve": ca.issue_cert(common_name="eve"),  # no such user
    }
    return {"root": root, "ca": ca, "clients": clients}


def _gateway(secure_gateway, pki, auth=MTLS):
    root = pki["root"]
    return secure_gateway(auth=auth, tls=TLSSettings(cert_file=root / "server.pem", key_file=root / "server.key",
                                                     client_ca_file=root / "ca.pem"))


def _client(secured, pki, name) -> flight.FlightClient:
    cert = pki["clients"][name]
    return flight.FlightClient(f"grpc+tls://localhost:{secured.gateway.port}",
                               tls_root_certs=pki["ca"].cert_pem.bytes(),
                               cert_chain=cert.cert_chain_pems[0].bytes(), private_key=cert.private_key_pem.bytes())


def test_a_certificate_names_the_user_by_cn_or_san(secure_gateway, store, pki):
    add_user(store, "carol", roles=["admin"])
    add_user(store, "dave@example.com", roles=["admin"])
    secured = _gateway(secure_gateway, pki)
    assert count(_client(secured, pki, "carol"), None) == 25
    assert count(_client(secured, pki, "dave"), None) == 25


def test_a_certificate_naming_no_user_or_a_disabled_one_is_unauthenticated(secure_gateway, store, pki):
    add_user(store, "carol", roles=["admin"])
    secured = _gateway(secure_gateway, pki)
    assert refused(lambda: count(_client(secured, pki, "eve"), None)) == "invalid or revoked credentials: sign in again"
    update_user(store, "carol", disabled=True)
    secured.security.authenticator.identities.refresh()
    refused(lambda: count(_client(secured, pki, "carol"), None))


def test_a_bearer_token_still_wins_over_the_certificate(secure_gateway, store, pki):
    """Tokens are still accepted on every call; only the Handshake is unavailable in this mode."""
    secured = _gateway(secure_gateway, pki)
    token = secured.security.authenticator.issue_service_token("alice", 600)[0]
    client = _client(secured, pki, "eve")
    assert count(client, bearer(token)) == 25
    with pytest.raises(NotImplementedError, match="authentication mechanism"):
        sign_in(client, "alice", ALICE_PASSWORD)


def test_adbc_with_a_client_certificate(secure_gateway, store, pki):
    import adbc_driver_flightsql.dbapi as flightsql

    add_user(store, "carol", roles=["admin"])
    secured = _gateway(secure_gateway, pki)
    cert = pki["clients"]["carol"]
    options = {
        "adbc.flight.sql.client_option.tls_root_certs": pki["ca"].cert_pem.bytes().decode(),
        "adbc.flight.sql.client_option.mtls_cert_chain": cert.cert_chain_pems[0].bytes().decode(),
        "adbc.flight.sql.client_option.mtls_private_key": cert.private_key_pem.bytes().decode(),
    }
    with flightsql.connect(f"grpc+tls://localhost:{secured.gateway.port}", db_kwargs=options,
                           autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM region")
        assert cur.fetchone() == (5,)


def test_certificate_identities_need_a_client_ca(secure_gateway, pki):
    root = pki["root"]
    with pytest.raises(ConfigError, match="^AU-010: sign-in by client certificate"):
        secure_gateway(auth=MTLS, tls=TLSSettings(cert_file=root / "server.pem", key_file=root / "server.key"))
