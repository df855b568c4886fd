"""Bearer JWTs from external identity providers, verified against configured issuers, audiences and keys.

The provider here is a set of real RSA, EC and Ed25519 keys (cryptography) published as a JWKS file or served by a
real HTTP server, and tokens signed with PyJWT as an OIDC provider signs them. Attacks are built by hand where PyJWT
refuses to build them (``alg: none``, HMAC keyed with the provider's public key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from nexus_flight.catalog.audit import search_audit
from nexus_flight.catalog.grants import add_grant
from nexus_flight.catalog.users import add_user, update_user
from nexus_flight.core.settings import AuthSettings, OidcIssuerSettings
from tests.security.conftest import bearer
from tests.security.test_sign_in import count, refused

ISSUER = "https://idp.example.test/realms/acme"
AUDIENCE = "nexus-gateway"


class Provider:
    """An identity provider's signing keys and the tokens it issues."""

    def __init__(self) -> None:
        self.keys = {
            "rsa-1": (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256", RSAAlgorithm),
            "ec-1": (ec.generate_private_key(ec.SECP256R1()), "ES256", ECAlgorithm),
            "ed-1": (ed25519.Ed25519PrivateKey.generate(), "EdDSA", OKPAlgorithm),
        }

    def jwks(self, kids=None) -> dict:
        entries = []
        for kid, (key, alg, algorithm) in self.keys.items():
            if kids is None or kid in kids:
                entry = json.loads(algorithm.to_jwk(key.public_key()))
                entries.append({**entry, "kid": kid, "use": "sig", "alg": alg})
        return {"keys": entries}

    def token(self, kid: str = "rsa-1", **overrides) -> str:
        key, alg, _ = self.keys[kid]
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "0f1e-uuid", "preferred_username": "carol",
                  "realm_access": {"roles": ["analyst", "not-a-gateway-role"]}, "region": "AMERICA",
                  "iat": now, "nbf": now, "exp": now + 300}
        claims.update(overrides)
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _settings(**issuer) -> AuthSettings:
    fields = {"issuer": ISSUER, "audience": AUDIENCE, "user_claim": "preferred_username",
              "roles_claim": "realm_access.roles", "attribute_claims": {"region": "region"}, **issuer}
    return AuthSettings(enabled=True, methods=["password", "oidc"], oidc=[OidcIssuerSettings(**fields)])


@pytest.fixture(autouse=True)
def analysts_read_the_demo(store):
    add_grant(store, "analyst", "demo")


@pytest.fixture
def provider() -> Provider:
    return Provider()


@pytest.fixture
def jwks_file(provider, tmp_path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(provider.jwks()))
    return path


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1", "ed-1"])
def test_rs256_es256_and_eddsa_tokens_sign_in_with_their_claims(secure_gateway, provider, jwks_file, kid):
    secured = secure_gateway(auth=_settings(jwks_file=jwks_file))
    assert count(secured.client(), bearer(provider.token(kid))) == 25
    principal = secured.security.authenticator.bearer(provider.token(kid), None).principal
    assert (principal.name, principal.auth_method) == ("carol", "oidc")
    assert principal.roles == {"analyst", "not-a-gateway-role"} and principal.attributes["region"] == "AMERICA"


def test_adbc_with_a_providers_token_as_the_authorization_header(secure_gateway, provider, jwks_file):
    import adbc_driver_flightsql.dbapi as flightsql

    secured = secure_gateway(auth=_settings(jwks_file=jwks_file))
    header = {"adbc.flight.sql.authorization_header": f"Bearer {provider.token('ec-1')}"}
    with flightsql.connect(secured.location, db_kwargs=header, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM region")
        assert cur.fetchone() == (5,)


def _alg_none(provider) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = _b64(json.dumps(jwt.decode(provider.token(), options={"verify_signature": False})).encode())
    return f"{header}.{payload}."


def _hmac_with_public_key(provider) -> str:
    """The classic confusion: HS256 "signed" with the RSA public key a naive verifier would use as the secret."""
    public = provider.keys["rsa-1"][0].public_key().public_bytes(serialization.Encoding.PEM,
                                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = _b64(json.dumps(jwt.decode(provider.token(), options={"verify_signature": False})).encode())
    signature = _b64(hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


@pytest.mark.parametrize("case", ["alg_none", "hs256_with_public_key", "expired", "not_yet_valid",
                                  "wrong_audience", "untrusted_issuer", "other_key_same_kid", "no_user_claim",
                                  "tampered"])
def test_bad_provider_tokens_are_unauthenticated(secure_gateway, store, provider, jwks_file, case):
    secured = secure_gateway(auth=_settings(jwks_file=jwks_file))
    now = int(time.time())
    impostor = Provider()
    tokens = {
        "alg_none": lambda: _alg_none(provider),
        "hs256_with_public_key": lambda: _hmac_with_public_key(provider),
        "expired": lambda: provider.token(iat=now - 900, nbf=now - 900, exp=now - 120),
        "not_yet_valid": lambda: provider.token(nbf=now + 600, exp=now + 900),
        "wrong_audience": lambda: provider.token(aud="another-api"),
        "untrusted_issuer": lambda: provider.token(iss="https://evil.example.test/"),
        "other_key_same_kid": lambda: impostor.token("rsa-1"),
        "no_user_claim": lambda: provider.token(preferred_username=None),
        "tampered": lambda: _swap_payload(provider.token(), preferred_username="alice"),
    }
    message = refused(lambda: count(secured.client(), bearer(tokens[case]())))
    assert message == ("the token has expired: sign in again" if case == "expired"
                       else "invalid or revoked credentials: sign in again")
    why = {"alg_none": "algorithm 'none' is not accepted", "hs256_with_public_key": "algorithm 'HS256' is not accepted",
           "expired": "token expired", "not_yet_valid": "token not valid yet",
           "wrong_audience": "InvalidAudienceError", "untrusted_issuer": "is not trusted",
           "other_key_same_kid": "InvalidSignatureError", "no_user_claim": "no 'preferred_username' claim",
           "tampered": "InvalidSignatureError"}[case]
    secured.security.audit.flush()
    reasons = [e["detail"] for e in search_audit(store, kind="auth_failure")]
    assert len(reasons) == 1 and why in reasons[0], reasons


def _swap_payload(token: str, **claims) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{header}.{_b64(json.dumps({**body, **claims}).encode())}.{signature}"


def test_a_catalog_user_of_the_same_name_adds_roles_and_can_be_disabled(secure_gateway, store, provider, jwks_file):
    add_user(store, "carol", roles=["admin"])
    secured = secure_gateway(auth=_settings(jwks_file=jwks_file))
    principal = secured.security.authenticator.bearer(provider.token(), None).principal
    assert {"admin", "analyst"} <= principal.roles
    update_user(store, "carol", disabled=True)
    secured.security.authenticator.identities.refresh()
    refused(lambda: count(secured.client(), bearer(provider.token())))


def test_a_rotated_key_is_found_by_reading_the_keys_again(secure_gateway, provider, jwks_file):
    secured = secure_gateway(auth=_settings(jwks_file=jwks_file))
    assert count(secured.client(), bearer(provider.token("rsa-1"))) == 25
    provider.keys["rsa-2"] = (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256", RSAAlgorithm)
    jwks_file.write_text(json.dumps(provider.jwks()))
    assert count(secured.client(), bearer(provider.token("rsa-2"))) == 25


class _JwksServer:
    """A real HTTP server publishing a JWKS and counting how often it is fetched."""

    def __init__(self, provider: Provider) -> None:
        self.provider, self.kids, self.fetches = provider, None, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's API
                outer.fetches += 1
                body = json.dumps(outer.provider.jwks(outer.kids)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/certs"

    def close(self):
        self.server.shutdown()


def test_keys_from_a_url_are_cached_and_refreshed_on_an_unknown_kid_at_a_bounded_rate(secure_gateway, provider):
    jwks = _JwksServer(provider)
    jwks.kids = {"rsa-1"}
    try:
        secured = secure_gateway(auth=_settings(jwks_url=jwks.url))
        client = secured.client()
        for _ in range(5):
            assert count(client, bearer(provider.token("rsa-1"))) == 25
        assert jwks.fetches == 1  # cached
        for kid in ("made-up-1", "made-up-2", "made-up-3"):  # a flood of unknown kids: at most one refresh
            token = provider.token("rsa-1")
            header, payload, signature = token.split(".")
            forged = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
            refused(lambda forged=forged, payload=payload, signature=signature:
                    count(client, bearer(f"{forged}.{payload}.{signature}")))
        assert jwks.fetches <= 2
        issuer = next(iter(secured.security.authenticator.issuers.values()))
        issuer._fetched_at -= 60  # the minimum refresh interval has passed
        jwks.kids = None  # the provider now publishes its EC key too
        assert count(client, bearer(provider.token("ec-1"))) == 25
    finally:
        jwks.close()


def test_oidc_settings_are_checked():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="AU-010: issuer .* needs exactly one of jwks_url and jwks_file"):
        OidcIssuerSettings(issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ValidationError, match="Input should be 'RS256'"):
        OidcIssuerSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url="https://x/", algorithms=["HS256"])
    with pytest.raises(ValidationError, match="Input should be 'RS256'"):
        OidcIssuerSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url="https://x/", algorithms=["none"])
