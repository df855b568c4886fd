"""The served TLS certificate's validity: refused at start when no client would accept it, watched until it expires.

gRPC serves an expired certificate without a word; every TLS client then fails its handshake with an error about
the peer, far from the cause. The gateway serves the certificate it was started with (a renewed file is read at
the next start), so its expiry is published as a metric to alert on and warned of when near.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from nexus_flight.core.errors import ConfigError

log = logging.getLogger(__name__)

#: A certificate expiring sooner than this is warned of at start.
WARN_BEFORE = timedelta(days=14)


def certificate_expiry(cert_file: Path, now: datetime | None = None) -> datetime:
    """When the served (first) certificate of ``cert_file`` expires.

    Raises:
        ConfigError: it has expired or is not valid yet, naming the file, the date and the fix.

    """
    leaf = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
    now = now or datetime.now(UTC)
    begins, expires = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if expires <= now:
        raise ConfigError(f"the TLS certificate {cert_file} expired on {expires:%Y-%m-%d %H:%M} UTC: no client "
                          "would accept it; renew it and give the new one with --tls-cert")
    if begins > now:
        raise ConfigError(f"the TLS certificate {cert_file} is not valid before {begins:%Y-%m-%d %H:%M} UTC (is "
                          "this machine's clock right?): no client would accept it yet")
    if expires - now < WARN_BEFORE:
        log.warning("the TLS certificate %s expires on %s UTC, in %d days: renew it and restart the gateway",
                    cert_file, f"{expires:%Y-%m-%d %H:%M}", (expires - now).days)
    return expires
