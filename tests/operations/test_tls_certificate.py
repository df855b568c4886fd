"""The served TLS certificate's dates: ``nexus-flight serve`` refuses one no client would accept, and publishes when
the one it serves expires.

Real parts: the served process, gRPC's TLS and a pyarrow.flight client verifying the certificate against its CA.
The certificates are made with ``cryptography`` because ``openssl req`` cannot set past or future dates.
"""

from __future__ import annotations

import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import pyarrow.flight as flight
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from tests.operations.serving import serving, share_demo

pytestmark = pytest.mark.timeout(120)


def _certificate(folder: Path, begins: datetime, expires: datetime) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 valid from ``begins`` to ``expires``, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    names = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1"))])
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(begins).not_valid_after(expires)
        .add_extension(names, critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _serve_refused(data: Path, cert_file: Path, key_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["nexus-flight", "serve", "--data-dir", str(data), "--port", "0",
                           "--tls-cert", str(cert_file), "--tls-key", str(key_file)],
                          capture_output=True, text=True, timeout=60)


def test_an_expired_or_future_certificate_is_refused_naming_it(tmp_path, demo_data_dir):
    data = share_demo(tmp_path / "data", demo_data_dir)
    now = datetime.now(UTC)
    expired = _certificate(tmp_path, now - timedelta(days=90), now - timedelta(days=2))
    result = _serve_refused(data, *expired)
    assert result.returncode == 2
    assert f"the TLS certificate {expired[0]} expired on {now - timedelta(days=2):%Y-%m-%d}" in result.stderr
    assert "--tls-cert" in result.stderr and "Traceback" not in result.stderr

    future = _certificate(tmp_path, now + timedelta(days=3), now + timedelta(days=90))
    result = _serve_refused(data, *future)
    assert result.returncode == 2
    assert f"is not valid before {now + timedelta(days=3):%Y-%m-%d}" in result.stderr


def test_a_certificate_near_its_expiry_is_served_warned_of_and_its_expiry_published(tmp_path, demo_data_dir):
    data = share_demo(tmp_path / "data", demo_data_dir)
    now = datetime.now(UTC).replace(microsecond=0)
    cert_file, key_file = _certificate(tmp_path, now - timedelta(days=80), now + timedelta(days=5))
    with serving(data, "--tls-cert", str(cert_file), "--tls-key", str(key_file), "--http-port", "0") as served:
        client = flight.FlightClient(served.location, tls_root_certs=cert_file.read_bytes())
        assert served.location.startswith("grpc+tls://")
        client.wait_for_available(timeout=10)
        with urllib.request.urlopen(served.http + "/metrics", timeout=5) as answer:
            text = answer.read().decode()
        [expiry] = [s.value for family in text_string_to_metric_families(text) for s in family.samples
                    if s.name == "nexus_tls_certificate_expiry_timestamp_seconds"]
        assert expiry == (now + timedelta(days=5)).timestamp()
        assert any(f"the TLS certificate {cert_file} expires on" in line and "in 4 days" in line
                   for line in served.err), served.err[-5:]
