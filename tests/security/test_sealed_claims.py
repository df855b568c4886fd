"""Sealed claims: what a ticket carries that only the gateway's replicas may read (an upstream's tickets)."""

from __future__ import annotations

import pytest

from nexus_flight.core.errors import InvalidQueryError
from nexus_flight.server.flight.signed_handles import HandleSigner


def test_sealed_data_opens_only_with_the_key_that_sealed_it():
    signer = HandleSigner()
    secret = b"upstream ticket \x00\x01 grpc://10.0.0.7:32010"
    sealed = signer.seal(secret)
    assert secret not in sealed.encode() and b"10.0.0.7" not in sealed.encode()
    assert signer.unseal(sealed) == secret
    with pytest.raises(InvalidQueryError, match="its sealed part does not open"):
        HandleSigner().unseal(sealed)  # another catalog's gateway
    kid, _, body = sealed.partition(":")
    altered = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    for bad in (f"{kid}:{altered}", f"{kid}:not base64!", "nokey", 17):
        with pytest.raises(InvalidQueryError, match="its sealed part does not open"):
            signer.unseal(bad)
